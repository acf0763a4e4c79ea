"""Written numbers composed from single digits, for measuring and teaching number reading.

MNIST holds lone digits; a number someone photographs holds several, spaced unevenly, sometimes
touching, sometimes with a stroke broken where the pen skipped. `compose` lays digits out that
way on white paper. `studies/number_study.py` measures number reading on MNIST test digits
with it, and the one-digit verifier (`deploy/verifier.py`) learns from MNIST training digits
laid out with it, at MNIST's scale and `enlarge`d as a photo or scan shows them.
"""

from __future__ import annotations

import numpy as np

from keras_digits.imaging.raster import resize

LAYOUTS = ("separated", "touching", "broken")


def crop(digit: np.ndarray) -> np.ndarray:
    """The digit's ink box (white ink on black, as MNIST stores it)."""
    rows, cols = np.flatnonzero(digit.max(axis=1) > 0), np.flatnonzero(digit.max(axis=0) > 0)
    return digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _touches(canvas: np.ndarray, piece: np.ndarray, top: int, left: int) -> bool:
    """Whether `piece` placed at (top, left) has ink next to the canvas's ink (8-neighbours)."""
    h, w = piece.shape
    region = canvas[max(0, top - 1):top + h + 1, max(0, left - 1):left + w + 1] > 64
    grown = np.zeros_like(region)
    ys, xs = np.nonzero(piece > 64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            y = ys + dy + (1 if top > 0 else 0)
            x = xs + dx + (1 if left > 0 else 0)
            ok = (y >= 0) & (y < region.shape[0]) & (x >= 0) & (x < region.shape[1])
            grown[y[ok], x[ok]] = True
    return bool((grown & region).any())


def compose(digits: list[np.ndarray], layout: str, rng: np.random.Generator,
            pieces_out: list | None = None) -> np.ndarray:
    """The digits (white ink on black, 0-255) side by side, as dark ink on white paper.

    Layouts: "separated" (gaps of 2-10 pixels, a little vertical jitter), "touching" (one pair
    of neighbours pushed together until their strokes meet), "broken" (half the digits lose a
    2-pixel band of ink across them). `pieces_out` receives each digit as placed (cropped,
    broken for that layout).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    pieces = [crop(d).astype(np.float32) for d in digits]
    if layout == "broken":
        for piece in pieces:
            if rng.random() < 0.5 and piece.shape[0] > 8:
                row = int(rng.integers(int(0.3 * piece.shape[0]), int(0.7 * piece.shape[0])))
                piece[row:row + 2] = 0.0
    if pieces_out is not None:
        pieces_out.extend(pieces)
    touching = int(rng.integers(0, len(pieces) - 1)) if layout == "touching" else -1
    height = 28 + 16
    canvas = np.zeros((height, 16 + sum(p.shape[1] + 10 for p in pieces)), np.float32)
    x = 8
    for i, piece in enumerate(pieces):
        top = 8 + (28 - piece.shape[0]) // 2 + int(rng.integers(-2, 3))
        if i == touching + 1:  # slide left from a small gap until the strokes meet
            x -= int(rng.integers(2, 6))
            while x > 1 and not _touches(canvas, piece, top, x):
                x -= 1
        h, w = piece.shape
        canvas[top:top + h, x:x + w] = np.maximum(canvas[top:top + h, x:x + w], piece)
        x += w + int(rng.integers(2, 11))
    used = np.flatnonzero(canvas.max(axis=0) > 0)
    canvas = canvas[:, : used[-1] + 9]
    return 255.0 - canvas  # dark ink on white paper


def enlarge(image: np.ndarray, scale: float) -> np.ndarray:
    """The composed number `scale` times larger (bilinear): the same strokes as a photo or scan
    at a higher resolution than MNIST's shows them, softer edges and all."""
    if scale == 1:
        return image
    height, width = image.shape
    return resize(image, (round(width * scale), round(height * scale)))
