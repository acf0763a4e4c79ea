"""The five digit classifiers, each a pure Keras 3 model that reads like its diagram.

Every model takes raw 0-255 pixels shaped (28, 28, 1), rescales inside, and ends in a float32
softmax, so exported files need no preprocessing beyond the image itself and stay float32 even
when the body runs under mixed precision. No TensorFlow calls here: the same definitions run
on the JAX backend. Each builder registers itself with its recipe (`registry`).
"""

from __future__ import annotations

import keras
from keras import layers

from keras_digits.core.contract import INPUT_NAME, INPUT_SHAPE
from keras_digits.models import distortions
from keras_digits.models.registry import NUM_CLASSES, Recipe, Tuning, register_model

# The share of training digits swapped each epoch for predict's rendering of them
# (Recipe.predict_view): at 0.5 the cnn read MNIST test through predict 0.13-0.20 pp better and
# Semeion 0.76-0.88 pp better on two seeds (studies/README.md, "Training on what predict sees").
# Garments never go through the digit preprocessing, so their tunings set it to 0.
PREDICT_VIEW = 0.5
# The share of training digits stretched to fill a square box, as many scanners normalise
# digits (Semeion, for one): it read Semeion 1.4-2 pp better at the same MNIST accuracy
# (studies/README.md, "Square-stretched digits").
SQUARE = 0.5
# The share of training digits written in handwriting fonts (Recipe.handwriting,
# data/handwriting.py): styles MNIST's writers rarely use. At 0.2 the cnn read Semeion 94.92%
# and 94.60% on two seeds (without: 93.41%), at 0.35 92.03%, and MNIST 99.39% (docs/RESULTS.md,
# "Handwriting fonts"). Garments are not written, so their tunings set it to 0.
HANDWRITING = 0.2


def _pixels_in(augmentation: float = 0.0, mirror: bool = False,
               square: float = 0.0) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The shared stem: a uint8-range input, its rescaling to [0, 1], and the training-only
    distortions: handwriting at strength `augmentation` with a share `square` of the digits
    stretched to fill a square box, and left-right mirroring (each off at 0 / False)."""
    inputs = keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME)
    x = distortions.handwriting(layers.Rescaling(1.0 / 255, name="rescale")(inputs),
                                augmentation, square)
    if mirror:
        x = layers.RandomFlip("horizontal", name="mirror")(x)
    return inputs, x


def _probabilities(x: keras.KerasTensor, num_classes: int) -> keras.KerasTensor:
    """Logits then a float32 softmax, so mixed precision never leaks into the outputs."""
    x = layers.Dense(num_classes, name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def _conv_bn_relu(x: keras.KerasTensor, filters: int, kernel: int, name: str) -> keras.KerasTensor:
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@register_model(
    Recipe(epochs=30, batch_size=128, learning_rate=3e-3, patience=6),
    "one dense layer: softmax regression on the 784 pixels",
)
def linear(num_classes: int = NUM_CLASSES, augmentation: float = 0.0) -> keras.Model:
    inputs, x = _pixels_in(augmentation)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="linear")


@register_model(
    # The whole cosine schedule (patience = epochs): its last, small steps are where the
    # distorted digits settle. Stopped by patience 8 at epoch 24 of 40, one run read MNIST
    # 98.23% and Semeion 86.63%; the whole schedule 98.81% and 88.26% (studies/README.md). The
    # moving average of its weights read Semeion 0.6-1.3 pp better and 0.4-1.2 pp better
    # calibrated on two seeds, MNIST the same ("Averaged weights").
    Recipe(epochs=40, batch_size=128, learning_rate=1e-3, patience=40, weight_decay=1e-4,
           predict_view=PREDICT_VIEW, ema=0.999, handwriting=HANDWRITING),
    "two 256-unit hidden layers with dropout",
    tuning={"fashion_mnist": Tuning(build={"augmentation": 0.0},
                                    recipe={"predict_view": 0.0, "patience": 8,
                                            "handwriting": 0.0})},
)
def mlp(num_classes: int = NUM_CLASSES, augmentation: float = 1.0,
        square: float = SQUARE) -> keras.Model:
    inputs, x = _pixels_in(augmentation, square=square)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(256, activation="relu", name=f"hidden{i}")(x)
        x = layers.Dropout(0.3, name=f"dropout{i}")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="mlp")


@register_model(
    # Distorted handwriting takes twice the epochs of plain MNIST to learn.
    Recipe(epochs=12, batch_size=128, learning_rate=6e-3, patience=5, predict_view=PREDICT_VIEW,
           handwriting=HANDWRITING),
    "conv/max-pool feature extractor, then a linear classifier",
    # Garments need more texture detectors than digits (twice the width, dropout after each
    # block, more epochs: 93.17% against 92.20%) and are left-right symmetric, so mirrored
    # copies are free extra training data; digits are not, and handwriting distortions make no
    # sense for them.
    tuning={"fashion_mnist": Tuning(build={"width": 32, "mirror": True, "augmentation": 0.0,
                                           "block_dropout": 0.25},
                                    recipe={"epochs": 15, "patience": 15, "predict_view": 0.0,
                                            "handwriting": 0.0})},
)
def cnn(num_classes: int = NUM_CLASSES, width: int = 16, mirror: bool = False,
        augmentation: float = 1.0, square: float = SQUARE,
        block_dropout: float = 0.0) -> keras.Model:
    inputs, x = _pixels_in(augmentation, mirror, square)
    # Feature extraction: 28x28 -> 14x14 -> 7x7 -> 3x3, widening as the maps shrink, two
    # convolutions per block, each followed by BatchNorm (studies/README.md: 0.2 pp more on MNIST
    # and up to 1 pp more on other writers than one plain convolution per block, at twice the
    # training time; the race to 99% is `cnn_fast`'s). `width` widens every block and
    # `block_dropout` drops after each pooling: Fashion-MNIST's tuning uses both.
    for block, (filters, kernel) in enumerate(((width, 5), (2 * width, 3), (4 * width, 3)),
                                              start=1):
        x = _conv_bn_relu(x, filters, kernel, f"block{block}")
        x = _conv_bn_relu(x, filters, kernel, f"block{block}_2")
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        if block_dropout:
            x = layers.Dropout(block_dropout, name=f"block{block}_dropout")(x)
    # Classifier: the "good old linear classifier" on the extracted features.
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="cnn")


@register_model(
    # One epoch, whole: a warm-up to a high learning rate and down again, and short memories in
    # Adam (betas 0.7 / 0.9) so that it follows that fast schedule (the recipe of the public
    # one-epoch MNIST records). Label smoothing made every seed land above 99% instead of three
    # in five (measurements in studies/README.md).
    Recipe(epochs=1, batch_size=256, learning_rate=1e-2, patience=1, label_smoothing=0.1,
           betas=(0.7, 0.9)),
    "the speed variant: two convolutions and a 256-unit dense layer, 99% in one epoch",
)
def cnn_fast(num_classes: int = NUM_CLASSES) -> keras.Model:
    inputs, x = _pixels_in()
    # No augmentation and no dropout: in a single epoch there is no overfitting to fight.
    x = layers.Conv2D(24, 5, padding="same", activation="relu", name="block1_conv")(x)
    x = layers.MaxPooling2D(2, name="block1_pool")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="block2_conv")(x)
    x = layers.MaxPooling2D(2, name="block2_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, activation="relu", name="hidden")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="cnn_fast")


@register_model(
    # Its dense layers are half of each step; in bfloat16 they run twice as fast where the CPU
    # has bfloat16 instructions, at the same accuracy (studies/README.md).
    Recipe(epochs=12, batch_size=256, learning_rate=1e-3, patience=4, label_smoothing=0.05,
           bfloat16_on_cpu=True, predict_view=PREDICT_VIEW, handwriting=HANDWRITING),
    "AlexNet for 28x28: 5 convolutions, overlapping max-pooling, 2x4096 dense with dropout",
    # Garments keep the wider feature extractor measured first (92.64% on Fashion-MNIST), and
    # mixup with mirroring for 15 epochs stops it learning its training images by heart
    # (93.21%). (bfloat16 was measured on digits only, so garments keep float32.)
    tuning={"fashion_mnist": Tuning(build={"widths": (48, 96, 128, 128, 96),
                                           "augmentation": 0.0, "mirror": True},
                                    recipe={"bfloat16_on_cpu": False, "predict_view": 0.0,
                                            "mixup": 0.2, "epochs": 15, "patience": 15,
                                            "handwriting": 0.0})},
)
def alexnet(num_classes: int = NUM_CLASSES,
            widths: tuple[int, ...] = (32, 64, 96, 96, 64),
            augmentation: float = 1.0, mirror: bool = False,
            square: float = SQUARE) -> keras.Model:
    inputs, x = _pixels_in(augmentation, mirror, square)
    # Five convolutions with ReLU; BatchNorm stands in for the original local response norm.
    # Overlapping 3x3/2 pooling as in the paper: 28 -> 13 -> 6 -> 2. The widths are a third of
    # the paper's: on two CPU cores the two 4096-unit layers already cost half of each step,
    # and wider convolutions only made epochs longer (studies/README.md).
    w1, w2, w3, w4, w5 = widths
    x = _conv_bn_relu(x, w1, 5, "conv1")
    x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    x = _conv_bn_relu(x, w2, 3, "conv2")
    x = layers.MaxPooling2D(3, strides=2, name="pool2")(x)
    x = _conv_bn_relu(x, w3, 3, "conv3")
    x = _conv_bn_relu(x, w4, 3, "conv4")
    x = _conv_bn_relu(x, w5, 3, "conv5")
    x = layers.MaxPooling2D(3, strides=2, name="pool5")(x)
    # Two 4096-unit fully connected layers: the 8,192 neurons of the original classifier.
    x = layers.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = layers.Dense(4096, activation="relu", name=f"fc{i}")(x)
        x = layers.Dropout(0.5, name=f"dropout{i}")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="alexnet")
