"""keras_digits: four Keras models learn MNIST and Fashion-MNIST, then leave as SavedModel and ONNX.

Stages, data flowing one way: data -> models -> train -> export -> predict / report / bench.
Importing the package is cheap: nothing here imports TensorFlow.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature lists) hides real output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
