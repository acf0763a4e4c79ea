"""Crop and normalise one digit's ink into the 28x28 image an MNIST model expects.

MNIST digits are white ink on black, cropped to the ink, scaled so the longer side fits a
20-pixel box (aspect kept), anti-aliased, and placed in a 28x28 frame by their centre of mass.
A model trained on them fails on a naive resize of a real drawing, so this step recreates that
recipe on an ink map (`find_ink`): crop, match MNIST's stroke width, scale, and centre by mass.
numpy and Pillow only: the predict path must not import TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from keras_digits.core.contract import PREPROCESSING
from keras_digits.imaging.decode import read_gray
from keras_digits.imaging.find_ink import checked_ink
from keras_digits.imaging.raster import max_filter, min_filter, resize

# MNIST's geometry, shared with the page (contract.PREPROCESSING says why).
BOX = PREPROCESSING["BOX"]
FRAME = PREPROCESSING["FRAME"]
MNIST_STROKE_AT_80 = PREPROCESSING["MNIST_STROKE_AT_80"]
STROKE_BOX = PREPROCESSING["STROKE_BOX"]
SMALL_CROP = PREPROCESSING["SMALL_CROP"]


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width: ink area over half the outline length (exact for long strokes)."""
    mask = ink > 0.5
    area = mask.sum()
    if area == 0:
        return 0.0
    edges = (np.count_nonzero(np.diff(mask, axis=0)) + np.count_nonzero(np.diff(mask, axis=1))
             + mask[0].sum() + mask[-1].sum() + mask[:, 0].sum() + mask[:, -1].sum())
    return float(2 * area / max(edges, 1))


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The bounding box of the ink, faint anti-aliased edges included, ignoring specks."""
    mask = ink > 0.5
    # Specks: take the box from an opened mask, unless opening erases most of the digit.
    opened = max_filter(min_filter(mask, 3), 3) > 0.5
    if opened.sum() >= 0.7 * mask.sum():
        mask = opened
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # Grow the box while the faint rim (ink > 0.1) continues just outside it.
    faint = ink > 0.1
    while top > 0 and faint[top - 1, left:right].any():
        top -= 1
    while bottom < ink.shape[0] and faint[bottom, left:right].any():
        bottom += 1
    while left > 0 and faint[top:bottom, left - 1].any():
        left -= 1
    while right < ink.shape[1] and faint[top:bottom, right].any():
        right += 1
    return ink[top:bottom, left:right]


def _fit_box(ink: np.ndarray, box: int, cubic: bool = False) -> np.ndarray:
    height, width = ink.shape
    factor = box / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return resize(ink, size, cubic)


def mnist_style(ink: np.ndarray) -> np.ndarray:
    """Crop, normalise stroke width, scale into the 20-pixel box and centre by mass in 28x28."""
    cropped = _crop_to_ink(ink)
    digit = _fit_box(cropped, STROKE_BOX, cubic=max(cropped.shape) < SMALL_CROP)
    width = stroke_width(digit)
    if 0 < width < 0.6 * MNIST_STROKE_AT_80:  # fine pen: thicken to MNIST's stroke
        grow = int(round(MNIST_STROKE_AT_80 - width)) | 1  # odd filter size
        digit = max_filter(np.pad(digit, grow), grow)
    elif width > 1.5 * MNIST_STROKE_AT_80:  # marker: thin it, or loops fill in when scaled down
        shrink = int(round((width - MNIST_STROKE_AT_80) / 2)) | 1
        thinner = min_filter(digit, shrink)
        if (thinner > 0.5).sum() > 0.2 * (digit > 0.5).sum():
            digit = thinner
    elif max(cropped.shape) >= STROKE_BOX:  # MNIST-like strokes, a large crop: resample once
        digit = cropped
    # A small crop keeps its 80-pixel version: enlarged smoothly, then averaged into the box, a
    # low-resolution binary scan loses its staircase edges (MNIST's are smooth). Shrunk straight
    # from, say, 32 pixels, the staircase stayed and alexnet read doubled pixels 1.2 pp worse.
    digit = _fit_box(digit, BOX)
    digit = digit / max(float(digit.max()), 1e-6)
    frame = np.zeros((FRAME, FRAME), dtype=np.float32)
    height, width = digit.shape
    total = digit.sum()
    com_y = (digit.sum(axis=1) * np.arange(height)).sum() / total
    com_x = (digit.sum(axis=0) * np.arange(width)).sum() / total
    top = int(np.clip(round(FRAME / 2 - 0.5 - com_y), 0, FRAME - height))
    left = int(np.clip(round(FRAME / 2 - 0.5 - com_x), 0, FRAME - width))
    frame[top:top + height, left:left + width] = digit
    return frame


def to_pixels(ink: np.ndarray) -> np.ndarray:
    """An ink map (one digit) as the model's input: float32 (28, 28, 1), 0-255, white on black."""
    return (mnist_style(ink) * 255.0)[..., None].astype(np.float32)


def load_digit(source: str | Path | np.ndarray | bytes) -> np.ndarray:
    """An image (file or array) of one digit as the model's input, float32 (28, 28, 1)."""
    return to_pixels(checked_ink(read_gray(source), source))


def naive_resize(path: str | Path) -> np.ndarray:
    """The tutorial approach, kept for comparison: grey, invert if light, squash to 28x28."""
    with Image.open(path) as image:
        gray = np.asarray(image.convert("L").resize((FRAME, FRAME)), dtype=np.float32)
    if np.median(gray) > 127:
        gray = 255.0 - gray
    return gray[..., None]


def preprocessing_digest() -> str:
    """What an image's 28x28 depends on: the decoding and preprocessing code (page cleaning and
    raster primitives too) and their shared constants (not the rest of contract.py, so a change
    to number splitting keeps caches of 28x28s made by this path)."""
    import hashlib
    import json

    from keras_digits.imaging import decode, find_ink, page, raster

    digest = hashlib.sha256()
    for path in (decode.__file__, find_ink.__file__, __file__, page.__file__, raster.__file__):
        digest.update(Path(path).read_bytes())
    digest.update(json.dumps(PREPROCESSING, sort_keys=True).encode())
    return digest.hexdigest()[:16]
