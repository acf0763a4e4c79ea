"""LiteRT (`.tflite`) export for phones and microcontrollers, and its interpreter for parity.

Two files per model, both taking the same float32 pixels (N, 28, 28, 1) 0-255 and giving the
same float32 probabilities as the ONNX files:

    export/<dataset>/<model>.tflite        float32
    export/<dataset>/<model>.int8.tflite   full-integer int8 (weights and activations), float
                                           in and out, calibrated on training images

Why full-integer rather than dynamic-range: dynamic-range int8 stores the weights in int8 but
computes in float, so it shrinks the file and nothing else, and microcontrollers and phone NPUs
run integer kernels only. Full-integer keeps the accuracy within the int8 limit here (measured
in studies/README.md), so there is no reason to settle for less. Only LiteRT's built-in operators
are allowed: a file that needed TensorFlow's "select ops" would not run on a phone without the
large Flex delegate, so such a model fails to export instead.

Keras 3's `model.export(format="litert")` does the conversion (it traces the model into a
SavedModel and runs the TFLite converter); the interpreter is TensorFlow's `tf.lite.Interpreter`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_digits.core import atomic


def export_litert(model, final: Path, calibration: np.ndarray | None = None) -> None:
    """Write `model` as a float32 `.tflite`, or full-integer int8 when `calibration` images
    (uint8-range, (N, 28, 28, 1)) are given for the activation ranges."""
    import tensorflow as tf

    if calibration is None:
        options = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    else:
        samples = calibration.astype(np.float32)

        def representative_dataset():
            for i in range(len(samples)):
                yield [samples[i:i + 1]]

        options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                   "representative_dataset": representative_dataset,
                   "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]}}
    # Keras insists on a `.tflite` suffix, which the atomic temporary lacks: convert in a
    # scratch folder, then copy into place.
    with tempfile.TemporaryDirectory() as scratch, atomic.atomic_path(final) as tmp:
        converted = Path(scratch) / final.name
        model.export(str(converted), format="litert", verbose=False, **options)
        shutil.copyfile(converted, tmp)


def runner(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a batch of pixels to probabilities through one LiteRT interpreter; it
    re-plans its tensors only when the batch size changes."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads)
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    planned: list[tuple[int, ...]] = []

    def predict(images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if planned != [images.shape]:
            interpreter.resize_tensor_input(source, images.shape)
            interpreter.allocate_tensors()
            planned[:] = [images.shape]
        interpreter.set_tensor(source, images)
        interpreter.invoke()
        return interpreter.get_tensor(target)

    return predict


def run_litert(path: Path, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """Probabilities for all `images` from the LiteRT file at `path`, `batch` at a time."""
    predict = runner(path)
    return np.concatenate([predict(images[i:i + batch]) for i in range(0, len(images), batch)])
