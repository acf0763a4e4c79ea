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
import json
import os
from pathlib import Path

import numpy as np

from keras_digits.core import atomic, contract
from keras_digits.core.cli import UserError
from keras_digits.imaging import decode, find_ink, normalize, page, raster

CACHE_ENV = "KERAS_DIGITS_CACHE"
PARALLEL_FROM = 2000  # fewer renderings than this cost less than starting worker processes


def cache_dir() -> Path:
    """Where renderings are kept between runs: $KERAS_DIGITS_CACHE, else ~/.cache/keras_digits."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keras_digits")


def _code_digest() -> str:
    """What the renderings depend on: predict's decoding and preprocessing code (its paper
    steps and raster primitives too) and their shared constants (not the rest of contract.py,
    so a change to number splitting keeps them)."""
    digest = hashlib.sha256(Path(decode.__file__).read_bytes())
    digest.update(Path(find_ink.__file__).read_bytes())
    digest.update(Path(normalize.__file__).read_bytes())
    digest.update(Path(page.__file__).read_bytes())
    digest.update(Path(raster.__file__).read_bytes())
    digest.update(json.dumps(contract.PREPROCESSING, sort_keys=True).encode())
    return digest.hexdigest()[:16]


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
    """`render` split over `workers` fresh processes (spawned, so a parent's TensorFlow or JAX
    threads are never forked)."""
    import multiprocessing

    chunks = np.array_split(images, 4 * workers)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return np.concatenate(pool.map(render, chunks))


def default_workers() -> int:
    """The cores this process may run on (at most 16): each worker starts a Python of its own."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(16, cores or 1))


def predict_view(images: np.ndarray, folder: Path | str | None = None,
                 workers: int | None = None) -> np.ndarray:
    """`render(images)`, cached in `folder` (default `cache_dir()`), keyed by the images' bytes
    and the preprocessing code. 55,000 MNIST digits take about 3 minutes on one core, so a first
    fill of at least PARALLEL_FROM images uses `workers` processes (default: every core)."""
    key = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    path = Path(folder or cache_dir()) / f"predict-view-{key}-{_code_digest()}.npy"
    if path.is_file():
        try:
            cached = np.load(path)
            if cached.shape == images.shape and cached.dtype == images.dtype:
                return cached
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache file is made again
    workers = default_workers() if workers is None else workers
    rendered = (render_in_processes(images, workers)
                if workers > 1 and len(images) >= PARALLEL_FROM else render(images))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(path) as staging, open(staging, "wb") as handle:
            np.save(handle, rendered)
    except OSError as exc:  # a read-only home costs the next run the time, nothing else
        print(f"note: could not cache the predict-path renderings in {path.parent} ({exc})",
              flush=True)
    return rendered
