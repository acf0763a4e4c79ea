"""Arrays that take minutes to make and are kept between runs, and the processes that make them.

Training renders images through `predict`'s path (MNIST's digits, handwriting fonts' digits);
the renderings are cached on disk under names that hold everything they depend on, so a change
makes new ones and a stale file is never read. A damaged or unwritable cache costs time only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_digits.core import atomic

CACHE_ENV = "KERAS_DIGITS_CACHE"


def cache_dir() -> Path:
    """Where renderings are kept between runs: $KERAS_DIGITS_CACHE, else ~/.cache/keras_digits."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keras_digits")


def default_workers() -> int:
    """The cores this process may run on (at most 16): each worker starts a Python of its own."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(16, cores or 1))


def map_in_processes(function: Callable, jobs: list, workers: int) -> list:
    """`[function(job) for job in jobs]` in `workers` fresh processes (spawned, so a parent's
    TensorFlow or JAX threads are never forked); `function` must be importable by name."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(function, jobs)


def load_or_make(path: Path, make: Callable[[], np.ndarray], what: str,
                 shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The array cached at `path` (checked against `shape` when given), else `make()`, saved
    there atomically; a damaged file is made again, an unwritable folder gets a one-line note."""
    if path.is_file():
        try:
            cached = np.load(path)
            if shape is None or cached.shape == shape:
                return cached
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache file is made again
    made = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(path) as staging, open(staging, "wb") as handle:
            np.save(handle, made)
    except OSError as exc:  # a read-only home costs the next run the time, nothing else
        print(f"note: could not cache {what} in {path.parent} ({exc})", flush=True)
    return made
