"""The paper around the writing: what a photo or scan of paper shows that is not ink.

A sheet photographed on a darker desk, a thin strip of desk or shadow along the frame, and the
rules of ruled or squared paper all pass for ink unless they are found and removed; `preprocess`
calls these steps while it makes the ink map. Each has a line-for-line port in the page's
`web/preprocess.js`. numpy and Pillow only, like the rest of the predict path.
"""

from __future__ import annotations

import numpy as np

from keras_digits.core.contract import PREPROCESSING
from keras_digits.imaging.raster import (
    frame,
    hull_pixels,
    label_components,
    min_filter,
    otsu,
    resize,
)

MIN_CONTRAST = PREPROCESSING["MIN_CONTRAST"]
BACKGROUND_SIDE = PREPROCESSING["BACKGROUND_SIDE"]
DESK = PREPROCESSING["DESK"]
SHEET_INK = PREPROCESSING["SHEET_INK"]
SHEET_CONVEX = PREPROCESSING["SHEET_CONVEX"]
FRAME_STRIP_DEPTH = PREPROCESSING["FRAME_STRIP_DEPTH"]
FRAME_STRIP_SPAN = PREPROCESSING["FRAME_STRIP_SPAN"]
FRAME_STRIP_GAP = PREPROCESSING["FRAME_STRIP_GAP"]
FRAME_BOX_MIN = PREPROCESSING["FRAME_BOX_MIN"]
FRAME_BOX_DEPTH = PREPROCESSING["FRAME_BOX_DEPTH"]
FRAME_BOX_REACH = PREPROCESSING["FRAME_BOX_REACH"]


def without_frame_box(gray: np.ndarray) -> np.ndarray:
    """The grey image with a box drawn around the writing (a form's field), and all outside it,
    painted in the tone inside it; any other image unchanged. Cropped at its lines, a box is
    the whole border and passed for the paper (such boxed digits read 21-44%); with a margin
    of paper around it, its lines stopped short of the page rules' 85% and were read as ink."""
    height, width = gray.shape
    low, high = float(gray.min()), float(gray.max())
    if min(height, width) < FRAME_BOX_MIN or high - low < MIN_CONTRAST:
        return gray
    dark = gray < np.float32((low + high) / 2)
    deepest = max(1, int(FRAME_BOX_DEPTH * min(height, width)))
    for line in (dark, ~dark):  # the box in one tone, the paper inside it in the other
        box = _box_lines(line, deepest)
        if box is None:
            continue
        top, bottom, left, right = box
        inside = (slice(top, bottom), slice(left, right))
        within = line[inside]
        # Mostly paper inside (a margin around a box is not one), and no more lines across it
        # (the squares of squared paper are no box).
        if (within.mean() < 0.5 and (within.mean(axis=1) < 0.9).all()
                and (within.mean(axis=0) < 0.9).all()):
            out = np.full_like(gray, np.median(gray[inside][~within]))
            out[inside] = gray[inside]
            return out
    return gray


def _box_lines(line: np.ndarray, deepest: int) -> tuple[int, int, int, int] | None:
    """The inside of a box drawn in `line`'s tone (top, bottom, left, right, ends exclusive),
    or None. From each edge, within FRAME_BOX_REACH of it, the first row (column) that is half
    this tone starts a side; the side is at most `deepest` lines of nine tenths this tone
    between the two sides across it, with a line mostly of the other tone inside."""
    found = []
    for cover in (line.mean(axis=1), line.mean(axis=0)):
        size = len(cover)
        reach = int(FRAME_BOX_REACH * size)
        near = np.flatnonzero(cover[:reach] >= 0.5)
        far = np.flatnonzero(cover[size - reach:] >= 0.5)
        if not len(near) or not len(far):
            return None
        found.append((int(near[0]), size - reach + int(far[-1])))
    (top, bottom), (left, right) = found
    spans = ((line, top, 1, left, right), (line, bottom, -1, left, right),
             (line.T, left, 1, top, bottom), (line.T, right, -1, top, bottom))
    inner = []
    for lines, start, step, first, last in spans:
        depth = 0
        while depth < deepest and lines[start + step * depth, first:last + 1].mean() >= 0.9:
            depth += 1
        if depth == 0 or lines[start + step * depth, first:last + 1].mean() > 0.5:
            return None  # no line along this side, or no paper inside it
        inner.append(start + step * depth)
    top_in, bottom_in, left_in, right_in = inner
    if bottom_in <= top_in or right_in <= left_in:
        return None
    return top_in, bottom_in + 1, left_in, right_in + 1


def without_desk(gray: np.ndarray) -> np.ndarray:
    """The grey image with the desk around a photographed sheet of paper painted in the paper's
    tone; any other image unchanged. Left in, a dark desk on the border passes for the paper
    and the sheet for the ink (a note on a desk was read as a 0)."""
    height, width = gray.shape
    if max(height, width) < 2 * BACKGROUND_SIDE:  # a scan or a crop, not a photo of a page
        return gray
    scale = BACKGROUND_SIDE / max(height, width)
    small = resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))))
    low, high = float(small.min()), float(small.max())
    if high - low < MIN_CONTRAST:
        return gray
    light = small > np.float32(low + otsu((small - low) / (high - low)) * (high - low))
    labels, count = label_components(light)
    if count == 0:
        return gray
    paper = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    rest = label_components(~paper)[0]
    on_edge = np.unique(frame(rest))
    desk = np.isin(rest, on_edge[on_edge > 0])
    sheet = ~desk
    marks = sheet & ~light
    if not (desk.mean() >= DESK and (desk & light).sum() <= 0.05 * desk.sum()
            and 0.005 * sheet.sum() <= marks.sum() <= SHEET_INK * sheet.sum()):
        return gray
    # The marks are pen strokes, thin at this size (the holes of a bold white digit on black
    # are not), the desk far darker than the paper (not a shade of uneven light on one sheet),
    # and the sheet straight-edged.
    cores = min_filter(marks, 3) > 0.5
    paper_tone = float(np.median(small[paper]))
    desk_tone, ink_tone = float(np.median(small[desk])), float(np.median(small[marks]))
    if (cores.sum() > 0.25 * marks.sum()
            or paper_tone - desk_tone < 0.4 * (paper_tone - ink_tone)
            or sheet.sum() < SHEET_CONVEX * hull_pixels(sheet)):
        return gray
    # The sheet's rim, a pixel in from its edge at this size, goes too: its shadow is no ink.
    inside = min_filter(sheet, 3)
    keep = resize(inside, (width, height)) > 0.99
    return np.where(keep, gray, np.float32(paper_tone)).astype(np.float32)


def frame_strips(ink: np.ndarray, low: float) -> np.ndarray:
    """Which pixels of an ink map (the image's own frame, no margin) are a strip along its
    edge rather than writing: a sliver of desk, a shadow or a scanner's dark edge.

    Too thin for `without_desk` to see at its low resolution, such a strip is the strongest
    "ink" in the photo, and the digit was cropped together with it (most digits misread:
    studies/README.md, "A thin strip of desk along the frame"). A strip touches the frame, stays
    shallow and runs along a side; the writing keeps away from that side and touches no edge.
    In a tight crop the writing lines the frame (the bar of a 5 written apart from its body
    reaches one edge, the body the others), so nothing there is taken for a strip.
    """
    height, width = ink.shape
    clear = np.zeros(ink.shape, dtype=bool)
    visible = ink > low
    if max(height, width) < 2 * BACKGROUND_SIDE or not frame(visible).any():
        return clear
    labels, _ = label_components(visible)
    on_frame = np.unique(frame(labels))
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    to_frame = np.minimum(np.minimum(rows, height - 1 - rows), np.minimum(cols, width - 1 - cols))
    shorter = min(height, width)
    strips = []  # (pixels, depth, the sides it runs along)
    for label in on_frame[on_frame > 0]:
        piece = labels == label
        depth = int(to_frame[piece].max())
        if depth >= FRAME_STRIP_DEPTH * shorter:
            continue
        reach = depth + 1
        sides = [side for side, share in (
            ("top", piece[:reach].any(axis=0).mean()),
            ("bottom", piece[height - reach:].any(axis=0).mean()),
            ("left", piece[:, :reach].any(axis=1).mean()),
            ("right", piece[:, width - reach:].any(axis=1).mean())) if share >= FRAME_STRIP_SPAN]
        if sides:
            strips.append((piece, depth, sides))
    if not strips:
        return clear
    writing = visible.copy()
    for piece, _, _ in strips:
        writing &= ~piece
    if not writing.any() or frame(writing).any():
        return clear  # nothing else to read, or a tight crop: its ink lines the frame
    written_rows = np.flatnonzero(writing.any(axis=1))
    written_cols = np.flatnonzero(writing.any(axis=0))
    top, bottom = written_rows[0], written_rows[-1]  # the writing's box
    left, right = written_cols[0], written_cols[-1]
    for piece, depth, sides in strips:
        band = depth + 1 + max(depth + 1, int(FRAME_STRIP_GAP * shorter))
        near = {"top": top < band, "bottom": bottom >= height - band,
                "left": left < band, "right": right >= width - band}
        if not any(near[side] for side in sides):
            clear |= piece
    return clear


def rule_lines(cover: np.ndarray, thickness_limit: float) -> np.ndarray:
    """Which rows (or columns) are page rules, from the share of each that holds visible ink.

    A rule crosses nearly the whole page, is thin against the page (a stroke of a tightly
    cropped digit is not), and comes with at least one more: a page has several rules, while a
    digit's bar that spans its box (the top of a 7, the base of a 1) comes alone.
    """
    crossing = np.concatenate([[False], cover > 0.85, [False]])
    edges = np.flatnonzero(np.diff(crossing.astype(np.int8)))
    runs = [(start, end) for start, end in zip(edges[::2], edges[1::2], strict=True)
            if end - start <= thickness_limit]
    rules = np.zeros(len(cover), dtype=bool)
    if len(runs) >= 2:
        for start, end in runs:
            rules[start:end] = True
    return rules


def bridge_rules(ink: np.ndarray, rules: np.ndarray, threshold: float) -> None:
    """Mend, in place, the strokes that crossed the removed rule rows of `ink`.

    A stroke that crosses a rule has ink just above and just below it: the rule's rows get
    the fainter of the two where both are ink. Without this, every rule a digit crosses
    cuts it into pieces, and a digit on ruled or squared paper counts as many marks.
    """
    edges = np.flatnonzero(np.diff(np.concatenate([[0], rules.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if start == 0 or end == len(rules):
            continue
        across = np.minimum(ink[start - 1], ink[end])
        ink[start:end] = np.where(across > threshold, across, 0.0)
