"""keras_digits: four Keras models learn to read handwritten digits, leave as SavedModel, ONNX
and LiteRT with parity proven, and read digits and numbers that people draw, scan or photograph.

The stages are sub-packages, data flowing one way: core -> imaging, data -> models -> training
-> deploy -> reading -> serving, analysis; each command (`python -m keras_digits.train`, ...) is
a module at the top. `DigitReader` is the Python API (onnxruntime only) and `UserError` the one
exception it raises for bad input. Importing the package is cheap: nothing here imports
TensorFlow.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lists) hides real output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_digits.core.cli import UserError  # noqa: E402  (after the variable TensorFlow reads)

__version__ = "0.1.0"
__all__ = ["DigitReader", "NumberReading", "Reading", "UserError", "__version__"]


def __getattr__(name: str):
    """`from keras_digits import DigitReader` loads the reader (onnxruntime) only when asked."""
    if name in ("DigitReader", "NumberReading", "Reading"):
        from keras_digits.reading import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'keras_digits' has no attribute {name!r}")
