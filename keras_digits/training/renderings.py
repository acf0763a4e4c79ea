"""MNIST digits as `predict` renders them, for training on exactly what predict feeds a model.

MNIST's own digits lose about 0.35 pp of accuracy when they go through predict's preprocessing
(found again, cropped, re-scaled, re-centred: `studies/format_study.py`), and every real image a
user sends goes that way. Each digit is drawn as dark ink on white paper, run through
`normalize.load_digit`, and the renderings are cached on disk, keyed by the preprocessing code,
so a change to predict's path makes new ones.

numpy and Pillow only, like the preprocessing it calls.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from keras_digits.core import cache
from keras_digits.core.cli import UserError
from keras_digits.imaging import normalize

PARALLEL_FROM = 2000  # fewer renderings than this cost less than starting worker processes


def code_digest() -> str:
    """What the renderings depend on: predict's preprocessing (`normalize.preprocessing_digest`)."""
    return normalize.preprocessing_digest()


def render(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28, 1) white-on-black digits through predict's path, as uint8 again.

    A digit the path refuses (too little ink to find) keeps its original pixels.
    """
    out = np.empty_like(images)
    for i, image in enumerate(images[..., 0]):
        try:
            pixels = normalize.load_digit(255 - image)  # as a scan: dark ink on white paper
        except UserError:
            out[i] = images[i]
            continue
        out[i] = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return out


def render_in_processes(images: np.ndarray, workers: int) -> np.ndarray:
    """`render` split over `workers` fresh processes."""
    return np.concatenate(cache.map_in_processes(render, np.array_split(images, 4 * workers),
                                                 workers))


def predict_view(images: np.ndarray, folder: Path | str | None = None,
                 workers: int | None = None) -> np.ndarray:
    """`render(images)`, cached in `folder` (default `cache.cache_dir()`), keyed by the images'
    bytes and the preprocessing code. 55,000 MNIST digits take about 3 minutes on one core, so a
    first fill of at least PARALLEL_FROM images uses `workers` processes (default: every core)."""
    key = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    path = Path(folder or cache.cache_dir()) / f"predict-view-{key}-{code_digest()}.npy"
    workers = cache.default_workers() if workers is None else workers

    def make() -> np.ndarray:
        if workers > 1 and len(images) >= PARALLEL_FROM:
            return render_in_processes(images, workers)
        return render(images)

    return cache.load_or_make(path, make, "the predict-path renderings", images.shape)
