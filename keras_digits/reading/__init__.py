"""Reading digits with exported ONNX files, onnxruntime only (no TensorFlow): the Python API
`DigitReader` (`reader`), and the `predict` and `explain` commands built on it."""
