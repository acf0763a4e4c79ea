"""Reading digits with exported ONNX files, onnxruntime only (no TensorFlow): the Python API
`DigitReader` (`reader`) and the `predict` command built on it."""
