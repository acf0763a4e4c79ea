"""keras_digits: four Keras models learn MNIST and Fashion-MNIST, then leave as SavedModel and ONNX.

Stages, data flowing one way: data -> models -> train (calibrate) -> export -> reader ->
predict / evaluate / report / bench / serve. `DigitReader` is the Python API (onnxruntime only).
Importing the package is cheap: nothing here imports TensorFlow.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lists) hides real output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

__all__ = ["DigitReader", "NumberReading", "Reading", "__version__"]


def __getattr__(name: str):
    """`from keras_digits import DigitReader` loads the reader (onnxruntime) only when asked."""
    if name in ("DigitReader", "NumberReading", "Reading"):
        from keras_digits import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'keras_digits' has no attribute {name!r}")
