"""Deployment: SavedModel, ONNX (float and int8) and LiteRT files with their parity proven on
the test set (`export`, `litert`), and the one-digit verifier that number mode uses, which
ships as ONNX only (`verifier`)."""
