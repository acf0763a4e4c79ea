"""What every stage shares and nothing heavy: the names of models, datasets and classes, the
exported model's contract, the command-line plumbing, atomic writes and where outputs live.
No numpy, Keras or TensorFlow at import."""
