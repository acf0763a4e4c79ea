"""Model stage: the four classifiers, each a pure Keras 3 model, and a registry to find them.

Every model takes raw 0-255 pixels shaped (28, 28, 1), rescales inside, and ends in a float32
softmax, so exported files need no preprocessing beyond the image itself and stay float32 even
when the body runs under mixed precision. No TensorFlow calls here: the same definitions run
on the JAX backend.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import keras
from keras import layers

from keras_digits import augment
from keras_digits.catalog import MODEL_NAMES
from keras_digits.contract import INPUT_NAME, INPUT_SHAPE

NUM_CLASSES = 10
# The share of training digits swapped each epoch for predict's rendering of them
# (Recipe.predict_view): at 0.5 the cnn read MNIST test through predict 0.13-0.20 pp better and
# Semeion 0.76-0.88 pp better on two seeds (docs/RESULTS.md, "Training on what predict sees").
# Clothes never go through the digit preprocessing, so their tunings set it to 0.
PREDICT_VIEW = 0.5
# The share of training digits stretched to fill a square box, as many scanners normalise
# digits (Semeion, for one): it read Semeion 1.4-2 pp better at the same MNIST accuracy
# (docs/RESULTS.md, "Square-stretched digits").
SQUARE = 0.5


@dataclass(frozen=True)
class Recipe:
    """Training defaults that suit one model; the command line can override each."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int = 4
    label_smoothing: float = 0.0
    # Focal loss's exponent (0: plain cross-entropy): (1 - p)^gamma weighs down the examples the
    # model already reads confidently, reported to calibrate better, also on shifted data.
    focal_gamma: float = 0.0
    # Mixup's Beta(a, a) parameter (0: none): each training image is blended with another of its
    # batch and the loss with their labels, a regulariser also reported to calibrate better.
    mixup: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates
    bfloat16_on_cpu: bool = False  # `--precision auto` trains in mixed bfloat16 where it pays
    # The share of training digits swapped, each epoch, for the 28x28 that `predict` makes of
    # them (keras_digits/views.py): models learn what predict feeds them, not only MNIST's look.
    predict_view: float = 0.0
    # Adam keeps a moving average of the weights with this momentum (0: none); validation, the
    # best-epoch checkpoint and the published model then use the average.
    ema: float = 0.0


@dataclass(frozen=True)
class Tuning:
    """How a model changes for one dataset: builder keyword arguments and recipe fields."""

    build: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., keras.Model]
    recipe: Recipe
    summary: str
    tuning: Mapping[str, Tuning] = field(default_factory=dict)

    def recipe_for(self, dataset: str) -> Recipe:
        """The recipe with this dataset's overrides applied."""
        tuning = self.tuning.get(dataset)
        return replace(self.recipe, **tuning.recipe) if tuning else self.recipe


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(recipe: Recipe, summary: str,
                   tuning: Mapping[str, Tuning] | None = None) -> Callable:
    """Decorator: add a builder `fn(num_classes, **options) -> keras.Model` to the registry.

    `tuning` maps a dataset name to the builder options and recipe fields it needs instead of
    the defaults (tuned on MNIST).
    """

    def wrap(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        _REGISTRY[builder.__name__] = ModelEntry(builder.__name__, builder, recipe, summary,
                                                 dict(tuning or {}))
        return builder

    return wrap


def list_models() -> list[str]:
    """Registered model names, simplest first."""
    return list(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}: choose one of {', '.join(_REGISTRY)}") from None


# Builder options that only act while training, with the values that switch them off.
TRAINING_ONLY = {"augmentation": 0.0, "mirror": False, "clothing": 0.0, "elastic": 0.0,
                 "square": 0.0}


def create_model(name: str, num_classes: int = NUM_CLASSES, dataset: str = "mnist",
                 inference: bool = False, temperature: float | None = None,
                 **options: Any) -> keras.Model:
    """Build the named model as tuned for `dataset`, uncompiled, with fresh weights.

    `inference=True` leaves out the training-only layers (augmentation): the same weights, the
    same outputs. `temperature` divides the logits by it (calibration). `options` override
    builder keyword arguments on top of the tuning (for studies).
    """
    entry = get_entry(name)
    tuning = entry.tuning.get(dataset)
    options = {**(tuning.build if tuning else {}), **options}
    if inference:
        accepted = inspect.signature(entry.builder).parameters
        options.update({k: v for k, v in TRAINING_ONLY.items() if k in accepted})
    model = entry.builder(num_classes, **options)
    if temperature is None:
        return model
    # Temperature scaling: the logits divided by T before the softmax. Built-in layers only, so
    # the calibrated file still loads in plain Keras; no weights, so the same weights fit.
    logits = layers.Rescaling(1.0 / temperature, dtype="float32",
                              name="temperature")(model.get_layer("logits").output)
    outputs = layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(model.input, outputs, name=model.name)


def _pixels_in(name: str, augmentation: float = 0.0, mirror: bool = False,
               clothing: float = 0.0, elastic: float = 0.0,
               square: float = 0.0) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The shared stem: a uint8-range input, its rescaling to [0, 1], and the training-only
    distortions: handwriting at strength `augmentation`, left-right mirroring, and the clothes
    distortions at strength `clothing` (each off at 0 / False); `elastic` adds a smooth wobble of
    up to that many pixels to the handwriting distortions, `square` the share of digits
    stretched to fill a square box."""
    inputs = keras.Input(shape=INPUT_SHAPE, name=INPUT_NAME)
    x = augment.handwriting(layers.Rescaling(1.0 / 255, name="rescale")(inputs), augmentation,
                           elastic, square)
    if mirror:
        x = layers.RandomFlip("horizontal", name="mirror")(x)
    return inputs, augment.clothes(x, clothing)


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
    inputs, x = _pixels_in("linear", augmentation)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="linear")


@register_model(
    # The whole cosine schedule (patience = epochs): its last, small steps are where the
    # distorted digits settle. Stopped by patience 8 at epoch 24 of 40, one run read MNIST
    # 98.23% and Semeion 86.63%; the whole schedule 98.81% and 88.26% (docs/RESULTS.md). The
    # moving average of its weights read Semeion 0.6-1.3 pp better and 0.4-1.2 pp better
    # calibrated on two seeds, MNIST the same ("Averaged weights").
    Recipe(epochs=40, batch_size=128, learning_rate=1e-3, patience=40, weight_decay=1e-4,
           predict_view=PREDICT_VIEW, ema=0.999),
    "two 256-unit hidden layers with dropout",
    tuning={"fashion_mnist": Tuning(build={"augmentation": 0.0},
                                    recipe={"predict_view": 0.0, "patience": 8})},
)
def mlp(num_classes: int = NUM_CLASSES, augmentation: float = 1.0,
        elastic: float = 0.0, square: float = SQUARE, dropout: float = 0.3) -> keras.Model:
    inputs, x = _pixels_in("mlp", augmentation, elastic=elastic, square=square)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(256, activation="relu", name=f"hidden{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="mlp")


@register_model(
    # Distorted handwriting takes twice the epochs of plain MNIST to learn.
    Recipe(epochs=12, batch_size=128, learning_rate=6e-3, patience=5, predict_view=PREDICT_VIEW),
    "conv/max-pool feature extractor, then a linear classifier",
    # Clothes need more texture detectors than digits (twice the width, dropout after each
    # block, more epochs: 93.17% against 92.20%) and are left-right symmetric, so mirrored
    # copies are free extra training data; digits are not, and handwriting distortions make no
    # sense for them.
    tuning={"fashion_mnist": Tuning(build={"width": 32, "mirror": True, "augmentation": 0.0,
                                           "block_dropout": 0.25},
                                    recipe={"epochs": 15, "patience": 15, "predict_view": 0.0})},
)
def cnn(num_classes: int = NUM_CLASSES, width: int = 16, mirror: bool = False,
        augmentation: float = 1.0, clothing: float = 0.0, elastic: float = 0.0,
        convs: int = 2, hidden: int = 0, square: float = SQUARE, batchnorm: bool = True,
        block_dropout: float = 0.0) -> keras.Model:
    inputs, x = _pixels_in("cnn", augmentation, mirror, clothing, elastic, square)
    # Feature extraction: 28x28 -> 14x14 -> 7x7 -> 3x3, widening as the maps shrink, two
    # convolutions per block, each followed by BatchNorm. On digits that reads MNIST test 99.61
    # and 99.63% on two seeds (99.44 and 99.47% with one convolution and no BatchNorm) and
    # Semeion's writers 0.2-1.1 pp better, at about twice the training time (docs/RESULTS.md,
    # "Two convolutions per block"); the race to 99% is `cnn_fast`'s. Study options: `convs` and
    # `batchnorm` (1 and False: the narrow cnn of before), `block_dropout` drops after each
    # pooling (the clothes' tuning), `width` widens every block.
    for block, (filters, kernel) in enumerate(((width, 5), (2 * width, 3), (4 * width, 3)),
                                              start=1):
        for i in range(convs):
            if batchnorm:
                x = _conv_bn_relu(x, filters, kernel, f"block{block}" + (f"_{i + 1}" if i else ""))
            else:
                x = layers.Conv2D(filters, kernel, padding="same", activation="relu",
                                  name=f"block{block}_conv{i + 1 if i else ''}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        if block_dropout:
            x = layers.Dropout(block_dropout, name=f"block{block}_dropout")(x)
    # Classifier: the "good old linear classifier" on the extracted features (with `hidden`, a
    # hidden layer before it: a study option).
    x = layers.Flatten(name="flatten")(x)
    if hidden:
        x = layers.Dropout(0.3, name="hidden_dropout")(x)
        x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="cnn")


@register_model(
    # One epoch, whole: a warm-up to a high learning rate and down again, and short memories in
    # Adam (betas 0.7 / 0.9) so that it follows that fast schedule (the recipe of the public
    # one-epoch MNIST records). Label smoothing made every seed land above 99% instead of three
    # in five (measurements in docs/RESULTS.md).
    Recipe(epochs=1, batch_size=256, learning_rate=1e-2, patience=1, label_smoothing=0.1,
           betas=(0.7, 0.9)),
    "the speed variant: two convolutions and a 256-unit dense layer, 99% in one epoch",
)
def cnn_fast(num_classes: int = NUM_CLASSES) -> keras.Model:
    inputs, x = _pixels_in("cnn_fast")
    # No augmentation and no dropout: in a single epoch there is no overfitting to fight.
    x = layers.Conv2D(24, 5, padding="same", activation="relu", name="block1_conv")(x)
    x = layers.MaxPooling2D(2, name="block1_pool")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="block2_conv")(x)
    x = layers.MaxPooling2D(2, name="block2_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, activation="relu", name="hidden")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="cnn_fast")


def _alexnet_pool(x: keras.KerasTensor, name: str, dropout: float) -> keras.KerasTensor:
    """Overlapping 3x3 max-pooling with stride 2, then dropout when asked."""
    x = layers.MaxPooling2D(3, strides=2, name=name)(x)
    return layers.Dropout(dropout, name=f"{name}_dropout")(x) if dropout else x


@register_model(
    # Its dense layers are half of each step; in bfloat16 they run twice as fast where the CPU
    # has bfloat16 instructions, at the same accuracy (docs/RESULTS.md).
    Recipe(epochs=12, batch_size=256, learning_rate=1e-3, patience=4, label_smoothing=0.05,
           bfloat16_on_cpu=True, predict_view=PREDICT_VIEW),
    "AlexNet for 28x28: 5 convolutions, overlapping max-pooling, 2x4096 dense with dropout",
    # Clothes keep the wider feature extractor measured first (92.64% on Fashion-MNIST), and
    # mixup with mirroring for 15 epochs stops it learning its training images by heart
    # (93.21%). (bfloat16 was measured on digits only, so clothes keep float32.)
    tuning={"fashion_mnist": Tuning(build={"widths": (48, 96, 128, 128, 96),
                                           "augmentation": 0.0, "mirror": True},
                                    recipe={"bfloat16_on_cpu": False, "predict_view": 0.0,
                                            "mixup": 0.2, "epochs": 15, "patience": 15})},
)
def alexnet(num_classes: int = NUM_CLASSES,
            widths: tuple[int, ...] = (32, 64, 96, 96, 64),
            augmentation: float = 1.0, mirror: bool = False,
            clothing: float = 0.0, elastic: float = 0.0, square: float = SQUARE,
            dense: int = 4096, block_dropout: float = 0.0) -> keras.Model:
    inputs, x = _pixels_in("alexnet", augmentation, mirror, clothing, elastic, square)
    # Five convolutions with ReLU; BatchNorm stands in for the original local response norm.
    # Overlapping 3x3/2 pooling as in the paper: 28 -> 13 -> 6 -> 2. The widths are a third of
    # the paper's: on two CPU cores the two 4096-unit layers already cost half of each step,
    # and wider convolutions only made epochs longer (study in docs/RESULTS.md). Study options:
    # `block_dropout` drops after each pooling, `dense` narrows the two dense layers.
    w1, w2, w3, w4, w5 = widths
    x = _conv_bn_relu(x, w1, 5, "conv1")
    x = _alexnet_pool(x, "pool1", block_dropout)
    x = _conv_bn_relu(x, w2, 3, "conv2")
    x = _alexnet_pool(x, "pool2", block_dropout)
    x = _conv_bn_relu(x, w3, 3, "conv3")
    x = _conv_bn_relu(x, w4, 3, "conv4")
    x = _conv_bn_relu(x, w5, 3, "conv5")
    x = _alexnet_pool(x, "pool5", block_dropout)
    # Two 4096-unit fully connected layers: the 8,192 neurons of the original classifier.
    x = layers.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = layers.Dense(dense, activation="relu", name=f"fc{i}")(x)
        x = layers.Dropout(0.5, name=f"dropout{i}")(x)
    return keras.Model(inputs, _probabilities(x, num_classes), name="alexnet")


if tuple(_REGISTRY) != MODEL_NAMES:  # the cheap catalogue and the registry must agree
    raise RuntimeError(f"models registered {tuple(_REGISTRY)} but catalog.MODEL_NAMES lists "
                       f"{MODEL_NAMES}; update keras_digits/catalog.py")
