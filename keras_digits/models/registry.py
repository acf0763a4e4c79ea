"""The model registry: each classifier with its training recipe, and one way to build it.

`register_model` adds a builder (in `classifiers`) with its `Recipe` and per-dataset `Tuning`;
`create_model` is the one build path that train, export, bench and the report share, so a tuned
model is rebuilt the same way everywhere. The builders register themselves when `classifiers`
is imported, which the first look-up here does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import keras
from keras import layers

from keras_digits.core.names import MODEL_NAMES

NUM_CLASSES = 10


@dataclass(frozen=True)
class Recipe:
    """Training defaults that suit one model; the command line can override each."""

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int = 4
    label_smoothing: float = 0.0
    # Mixup's Beta(a, a) parameter (0: none): each training image is blended with another of its
    # batch and the loss with their labels, a regulariser also reported to calibrate better.
    mixup: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates
    bfloat16_on_cpu: bool = False  # `--precision auto` trains in mixed bfloat16 where it pays
    # The share of training digits swapped, each epoch, for the 28x28 that `predict` makes of
    # them (training/renderings.py): models learn what predict feeds them, not only MNIST's look.
    predict_view: float = 0.0
    # The share of each epoch's training digits written in handwriting fonts with a pen's
    # variation (data/handwriting.py): the writing styles MNIST's writers rarely use.
    handwriting: float = 0.0
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
        from keras_digits.models import classifiers  # noqa: F401  (the shipped models first)

        _REGISTRY[builder.__name__] = ModelEntry(builder.__name__, builder, recipe, summary,
                                                 dict(tuning or {}))
        return builder

    return wrap


def _registered() -> dict[str, ModelEntry]:
    """Every registered model: the builders in `classifiers` register themselves on import."""
    from keras_digits.models import classifiers  # noqa: F401

    # The cheap catalogue and the shipped builders must agree; a study may register more after.
    if tuple(_REGISTRY)[:len(MODEL_NAMES)] != MODEL_NAMES:
        raise RuntimeError(f"models registered {tuple(_REGISTRY)} but names.MODEL_NAMES lists "
                           f"{MODEL_NAMES}; update keras_digits/core/names.py")
    return _REGISTRY


def list_models() -> list[str]:
    """Registered model names, simplest first."""
    return list(_registered())


def get_entry(name: str) -> ModelEntry:
    try:
        return _registered()[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}: choose one of {', '.join(_REGISTRY)}") from None


# Builder options that only act while training, with the values that switch them off.
TRAINING_ONLY = {"augmentation": 0.0, "mirror": False, "square": 0.0}


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
