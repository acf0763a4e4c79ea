"""Raster primitives the preprocessing and the number splitter share: minimum and maximum
filters, Pillow's resampling on float images, Otsu's threshold, connected components and a
convex hull's size.

numpy and Pillow only, as for the whole predict path; `web/preprocess.js` ports each of them.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def frame(array: np.ndarray) -> np.ndarray:
    """The pixels on an array's outer edge as one vector: top row, bottom row, left and right
    columns (corners twice)."""
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def _extreme(array: np.ndarray, size: int, pick: np.ufunc) -> np.ndarray:
    """`pick` (np.minimum or np.maximum) over each size x size window, edges replicated: the
    values of Pillow's MinFilter and MaxFilter, from one pass along the rows and one down the
    columns rather than a selection over each whole window."""
    half = size // 2
    height, width = array.shape
    padded = np.pad(array, half, mode="edge")
    rows = padded[:, :width].copy()
    for shift in range(1, size):
        pick(rows, padded[:, shift:shift + width], out=rows)
    out = rows[:height].copy()
    for shift in range(1, size):
        pick(out, rows[shift:shift + height], out=out)
    return out


def min_filter(array: np.ndarray, size: int) -> np.ndarray:
    """The minimum over each size x size window of a float32 copy (Pillow's MinFilter)."""
    return _extreme(array.astype(np.float32), size, np.minimum)


def max_filter(array: np.ndarray, size: int) -> np.ndarray:
    """The maximum over each size x size window of a float32 copy (Pillow's MaxFilter)."""
    return _extreme(array.astype(np.float32), size, np.maximum)


def resize(array: np.ndarray, size: tuple[int, int], cubic: bool = False) -> np.ndarray:
    """Resize a float image to (width, height); box-averaging when shrinking keeps thin strokes.
    `cubic` enlarges with a cubic filter, clipped to the input's range (it overshoots)."""
    height, width = array.shape
    shrinking = size[0] <= width and size[1] <= height
    if cubic and not shrinking:
        out = np.asarray(Image.fromarray(array.astype(np.float32), "F").resize(
            size, Image.Resampling.BICUBIC))
        return np.clip(out, float(array.min()), float(array.max()))
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(array.astype(np.float32), "F").resize(size, method))


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold on values in [0, 1]."""
    hist, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    centers = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist).astype(np.float64)
    total = weight[-1]
    mass = np.cumsum(hist * centers)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_low = mass / weight
        mean_high = (mass[-1] - mass) / (total - weight)
        between = weight * (total - weight) * (mean_low - mean_high) ** 2
    return float(centers[int(np.nanargmax(between))])


def find_root(parent: list[int] | dict[int, int], i: int) -> int:
    """The representative of i's set in a union-find forest (halving the path on the way)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean mask: (labels with 0 for background, count).

    Runs of ink per row are joined with the runs they touch in the row above (union-find), so
    the work grows with the number of runs, not of pixels.
    """
    parent: list[int] = []
    runs_by_row: list[list[tuple[int, int, int]]] = []
    for row in mask:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.view(np.int8), [0]])))
        runs = []
        for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
            parent.append(len(parent))
            runs.append((start, end, len(parent) - 1))
        if runs_by_row:
            above = runs_by_row[-1]
            j = 0
            for start, end, run_id in runs:
                while j < len(above) and above[j][1] < start:  # ends before this run's reach
                    j += 1
                k = j
                while k < len(above) and above[k][0] <= end:  # diagonal neighbours touch too
                    a, b = find_root(parent, run_id), find_root(parent, above[k][2])
                    if a != b:
                        parent[max(a, b)] = min(a, b)
                    k += 1
        runs_by_row.append(runs)
    roots: dict[int, int] = {}
    labels = np.zeros(mask.shape, dtype=np.int32)
    for y, runs in enumerate(runs_by_row):
        for start, end, run_id in runs:
            labels[y, start:end] = roots.setdefault(find_root(parent, run_id), len(roots) + 1)
    return labels, len(roots)


def hull_pixels(mask: np.ndarray) -> float:
    """How many pixels the convex hull of a mask's pixels holds (Pick's theorem on the hull of
    their centres), so that a convex mask fills its hull at any resolution."""
    points = []
    for y in np.flatnonzero(mask.any(axis=1)).tolist():
        xs = np.flatnonzero(mask[y])
        points += [(int(xs[0]), y), (int(xs[-1]), y)]
    points = sorted(set(points))

    def chain(ordered: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for p in ordered:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1]) -
                                     (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    hull = chain(points) + chain(points[::-1]) if len(points) > 1 else points
    edges = list(zip(hull, hull[1:] + hull[:1], strict=True))
    area = 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in edges))
    boundary = sum(math.gcd(x1 - x0, y1 - y0) for (x0, y0), (x1, y1) in edges)
    return area + boundary / 2 + 1
