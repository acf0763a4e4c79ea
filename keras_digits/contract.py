"""The contract between an exported model and whoever runs it: `export` writes it, `predict`,
`evaluate` and `serve` check and rely on it, and serve hands the preprocessing constants to the
page so that the browser never repeats them.

An exported model takes `pixels`, float32 (N, 28, 28, 1) in 0-255 with white ink on black, as
`preprocess` makes them, and returns `probabilities`, float32 (N, classes).
"""

from __future__ import annotations

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
INPUT_SHAPE = (28, 28, 1)
INPUT_DESCRIPTION = "pixels: float32 (N, 28, 28, 1), 0-255, white ink on black"

# ONNX metadata_props keys.
MODEL_KEY = "keras_digits.model"
DATASET_KEY = "keras_digits.dataset"
CLASSES_KEY = "keras_digits.classes"  # class names joined by "|"
INPUT_KEY = "keras_digits.input"

# MNIST's geometry and the preprocessing thresholds, shared by preprocess.py and the page.
PREPROCESSING = {
    "FRAME": 28,  # the model's input side
    "BOX": 20,  # MNIST fits the longer side of each digit into this box
    # Median stroke width of MNIST digits after cropping and scaling to an 80-pixel box,
    # measured with `preprocess.stroke_width` on 2,000 training images (a test re-measures it).
    "MNIST_STROKE_AT_80": 7.8,
    "MIN_CONTRAST": 0.08,  # below this ink-to-paper difference the image counts as blank
    "PAPER_MARGIN": 2,  # paper added on each side before the analysis: half the longer side
    "RULE_THICKNESS": 0.02,  # a page rule is at most this share of the page thick
}
