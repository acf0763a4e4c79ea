"""Class names per dataset.

Kept apart from `data` so that the predict path can name classes without importing TensorFlow.
"""

from __future__ import annotations

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


def class_names(dataset: str) -> tuple[str, ...]:
    """Names of the ten classes of `dataset`, indexed by label."""
    try:
        return CLASS_NAMES[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}: choose one of {', '.join(DATASET_NAMES)}"
        ) from None
