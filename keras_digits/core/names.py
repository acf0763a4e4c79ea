"""The names everything else agrees on: models, datasets, classes, and the video's accuracies.

Cheap on purpose (no Keras, no TensorFlow, no numpy): the command lines, serve and predict take
their choices and their order from here, and the model registry checks itself against it when
it is imported.
"""

from __future__ import annotations

# Simplest first; cnn_fast is the CNN's speed variant (one epoch), not one of the video's four.
MODEL_NAMES: tuple[str, ...] = ("linear", "mlp", "cnn", "cnn_fast", "alexnet")

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}

DATASET_NAMES: tuple[str, ...] = tuple(CLASS_NAMES)
DATASET_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}

# MNIST test accuracy (%) the original video reached with the same four kinds of model.
VIDEO_ACCURACY = {"linear": 91.29, "mlp": 92.0, "cnn": 98.6, "alexnet": 99.21}


def class_names(dataset: str) -> tuple[str, ...]:
    """Names of the ten classes of `dataset`, indexed by label."""
    try:
        return CLASS_NAMES[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}: choose one of {', '.join(DATASET_NAMES)}"
        ) from None


def model_rank(name: str) -> int:
    """Position of a model in the catalogue (unknown names last), for listings."""
    return MODEL_NAMES.index(name) if name in MODEL_NAMES else len(MODEL_NAMES)
