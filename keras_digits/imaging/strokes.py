"""The strokes of an ink map, and the digits they group into: number mode's first steps.

`segment` cuts a written number into digits; before any model is asked, the ink map's strokes
(8-connected ink above 0.5) are labelled, specks are told from strokes, and strokes are grouped
into the digits they belong to (`group_strokes`). Single-digit reading counts the marks too, to
tell one digit from a page of them. numpy and Pillow only, like the rest of the predict path.
"""

from __future__ import annotations

import numpy as np

from keras_digits.core.contract import SEGMENTATION
from keras_digits.imaging.raster import find_root, label_components, max_filter

# The thresholds live in contract.SEGMENTATION, shared with the page's port (web/segment.js).
MAX_MARKS = SEGMENTATION["MAX_MARKS"]
FAINT_MARK = SEGMENTATION["FAINT_MARK"]
FAINT_FLOOR = SEGMENTATION["FAINT_FLOOR"]
SPECK_SHARE = SEGMENTATION["SPECK_SHARE"]
SPECK_CHAIN_GAP = SEGMENTATION["SPECK_CHAIN_GAP"]
SPECK_CHAINS = SEGMENTATION["SPECK_CHAINS"]
SPECK_REACH = SEGMENTATION["SPECK_REACH"]
OVERLAP_SHARE = SEGMENTATION["OVERLAP_SHARE"]
FRAGMENT_HEIGHT = SEGMENTATION["FRAGMENT_HEIGHT"]
FRAGMENT_GAP = SEGMENTATION["FRAGMENT_GAP"]


def box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box of a mask's ink, right and bottom exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def even_out(ink: np.ndarray) -> np.ndarray:
    """The ink map with each faint mark the size of a digit scaled up to full ink.

    The ink map is scaled by the strongest ink of the whole image, so a digit written lighter or
    thinner than its neighbours comes out faint, and at 0.5 its strokes break into fragments
    that pass for specks (a thin 1 beside bold digits vanished, a thin 0 came apart in two).
    Each mark of visible ink (above 0) at least FRAGMENT_HEIGHT of the tallest mark tall is
    divided by its own strength (the 90th percentile of its ink) when that is under FAINT_MARK
    and at least FAINT_FLOOR: as if it were read alone. Marks as strong as the rest are left as
    they are.
    """
    labels, count = label_components(ink > 0)
    if count < 2:
        return ink
    heights = mark_heights(labels, count)
    out = ink
    for label in np.flatnonzero(heights >= FRAGMENT_HEIGHT * heights.max()) + 1:
        part = labels == label
        values = ink[part].astype(np.float64)
        strength = np.percentile(values, 90)
        if FAINT_FLOOR <= strength < FAINT_MARK:
            out = out.copy() if out is ink else out
            out[part] = np.minimum(values / strength, 1.0)
    return out


def mark_heights(labels: np.ndarray, count: int) -> np.ndarray:
    """The height in rows of each labelled mark, for labels 1 to `count`."""
    rows = np.broadcast_to(np.arange(labels.shape[0])[:, None], labels.shape).ravel()
    tops = np.full(count + 1, labels.shape[0])
    bottoms = np.full(count + 1, -1)
    np.minimum.at(tops, labels.ravel(), rows)
    np.maximum.at(bottoms, labels.ravel(), rows)
    return bottoms[1:] - tops[1:] + 1


def _join(groups: list[list], a: int, b: int) -> None:
    """Fold group b into group a ([left, top, right, bottom, labels] each)."""
    ga, gb = groups[a], groups[b]
    groups[a] = [min(ga[0], gb[0]), min(ga[1], gb[1]), max(ga[2], gb[2]), max(ga[3], gb[3]),
                 ga[4] + gb[4]]
    del groups[b]


def marks(mask: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Stroke labels and the labels of the marks that are not specks.

    A speck has less ink than SPECK_SHARE of the largest mark, unless it is the size of a digit
    (FRAGMENT_HEIGHT of the tallest mark: a thin 1 beside bold digits). A faint thin stroke can
    also come out of the ink map as a column of small fragments, each no bigger than a speck;
    fragments stacked within SPECK_CHAIN_GAP pixels of one another, their columns overlapping,
    count together as one mark, so the stroke is kept.
    """
    labels, count = label_components(mask)
    if count == 0:
        return labels, []
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    heights = mark_heights(labels, count)
    floor = SPECK_SHARE * areas.max()
    digit_sized = heights >= FRAGMENT_HEIGHT * heights.max()
    kept = {i + 1 for i in range(count) if areas[i] >= floor or digit_sized[i]}
    small = [i + 1 for i in range(count) if i + 1 not in kept]
    if 2 <= len(small) <= SPECK_CHAINS:  # more is noise: dropped as specks, as ever
        boxes = {label: box(labels == label) for label in small}
        root = {label: label for label in small}
        for i, a in enumerate(small):
            for b in small[i + 1:]:
                (la, ta, ra, ba), (lb, tb, rb, bb) = boxes[a], boxes[b]
                if min(ra, rb) > max(la, lb) and max(ta, tb) - min(ba, bb) <= SPECK_CHAIN_GAP:
                    x, y = find_root(root, a), find_root(root, b)
                    root[max(x, y)] = min(x, y)
        chains: dict[int, list[int]] = {}
        for label in small:
            chains.setdefault(find_root(root, label), []).append(label)
        for chain in chains.values():
            if len(chain) > 1 and sum(areas[label - 1] for label in chain) >= floor:
                labels[np.isin(labels, chain)] = chain[0]  # one stroke: one mark
                kept.add(chain[0])
    return _absorb_near(labels, count, kept), sorted(kept)


def _absorb_near(labels: np.ndarray, count: int, kept: set[int]) -> np.ndarray:
    """Labels with each speck that lies within SPECK_REACH pixels of a kept mark made part
    of that mark: a faint stroke the ink map broke off (the thin bar of a 7 written beside a
    bold 0, whose ink sets the speck floor for the whole number) stays with its digit, as it
    does when the digit is read alone."""
    loose = np.setdiff1d(np.unique(labels), [0, *kept])
    if loose.size == 0 or not kept:
        return labels
    kept_only = np.where(np.isin(labels, sorted(kept)), labels, 0)
    reach = max_filter(kept_only, 2 * SPECK_REACH + 1)
    nearest = np.zeros(count + 1, np.int64)
    touched = (labels > 0) & (reach > 0)
    np.maximum.at(nearest, labels[touched], reach[touched].astype(np.int64))
    relabel = np.arange(count + 1)
    relabel[loose] = np.where(nearest[loose] > 0, nearest[loose], loose)
    return relabel[labels].astype(labels.dtype)


def group_strokes(mask: np.ndarray) -> list[np.ndarray]:
    """Masks of the digits in `mask`, left to right: specks dropped, strokes joined where their
    columns overlap, and short fragments (a stroke broken where the pen skipped) joined to the
    nearest digit beside them."""
    labels, kept = marks(mask)
    if len(kept) > MAX_MARKS:
        raise ValueError(f"{len(kept)} separate marks")
    groups = [[*box(labels == label), [label]] for label in kept]
    if not groups:
        return []
    groups.sort(key=lambda g: g[0] + g[2])
    joined = True
    while joined:  # strokes stacked over one another
        joined = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                ga, gb = groups[a], groups[b]
                overlap = min(ga[2], gb[2]) - max(ga[0], gb[0])
                if overlap > OVERLAP_SHARE * min(ga[2] - ga[0], gb[2] - gb[0]):
                    _join(groups, a, b)
                    joined = True
                    break
            if joined:
                break
    line = max(g[3] - g[1] for g in groups)
    while len(groups) > 1:  # the shortest fragment joins its nearest neighbour, if close
        heights = [g[3] - g[1] for g in groups]
        short = int(np.argmin(heights))
        if heights[short] >= FRAGMENT_HEIGHT * line:
            break
        gaps = [max(g[0], groups[short][0]) - min(g[2], groups[short][2]) if i != short
                else np.inf for i, g in enumerate(groups)]
        nearest = int(np.argmin(gaps))
        if gaps[nearest] > FRAGMENT_GAP * line:
            break
        _join(groups, min(short, nearest), max(short, nearest))
    groups.sort(key=lambda g: g[0] + g[2])
    return [np.isin(labels, g[4]) for g in groups]
