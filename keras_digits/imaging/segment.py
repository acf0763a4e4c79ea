"""Split the ink of a written number into its digits, left to right.

People photograph numbers (a house number, a meter, "2026" on a page), not lone digits. The ink
map from `find_ink.ink_map` is cut into pieces by its strokes:

0. a faint mark the size of a digit is scaled up to full ink, as if it were read alone
   (`strokes.even_out`), so a light or thin digit beside bold ones keeps its strokes whole;
1. connected strokes (8-connected ink) are the candidate pieces; specks far smaller than the
   largest mark are dropped unless they lie right beside a mark (a faint stroke broken off),
   and more than MAX_MARKS marks is not a number (`strokes.marks`);
2. strokes stacked over one another (the bar of a 5, a 4 written in two strokes) join into one
   digit when their columns overlap, and a short fragment (a stroke broken where the pen
   skipped) joins the digit beside it (`strokes.group_strokes`);
3. a piece wide for its height may be two touching digits: it is cut along the path through the
   least ink, starting near its thinnest middle columns, when the parts score higher than the
   whole (`choose_cut`, given a scoring function, so this module needs no model). The reader's
   score is the classifier's top probability, times the one-digit verifier's probability that
   the piece is one whole digit when that model is exported (`deploy/verifier.py`);
4. with the verifier's score, the mirror of step 3: close neighbours, one of them read unsurely,
   join when together they score higher than either apart (`choose_joins`).

Each piece then goes through the single-digit MNIST recipe (`normalize.mnist_style`). numpy and
Pillow only, like the rest of the predict path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keras_digits.core.contract import SEGMENTATION
from keras_digits.imaging.raster import label_components, max_filter
from keras_digits.imaging.strokes import box, even_out, group_strokes, mark_heights

# The thresholds live in contract.SEGMENTATION, shared with the page's port (web/segment.js).
MAX_DIGITS = SEGMENTATION["MAX_DIGITS"]
FRAGMENT_GAP = SEGMENTATION["FRAGMENT_GAP"]
JOIN_BELOW = SEGMENTATION["JOIN_BELOW"]
WIDE = SEGMENTATION["WIDE"]
CUT_BELOW = SEGMENTATION["CUT_BELOW"]
SURELY_TWO = SEGMENTATION["SURELY_TWO"]
PART_SURE = SEGMENTATION["PART_SURE"]
MIN_DIGIT_WIDTH = SEGMENTATION["MIN_DIGIT_WIDTH"]
LEFT_OUT_HEIGHT = SEGMENTATION["LEFT_OUT_HEIGHT"]
CENTRE_PULL = SEGMENTATION["CENTRE_PULL"]
DRIFT = SEGMENTATION["DRIFT"]
VERIFIED_WIDE = SEGMENTATION["VERIFIED_WIDE"]
VERIFIED_CANDIDATES = SEGMENTATION["VERIFIED_CANDIDATES"]
VERIFIED_CROSSINGS = SEGMENTATION["VERIFIED_CROSSINGS"]
CLOSE_CUT = SEGMENTATION["CLOSE_CUT"]
TWO_WIDE = SEGMENTATION["TWO_WIDE"]
TWO_BELOW = SEGMENTATION["TWO_BELOW"]
SHORT_CUT = SEGMENTATION["SHORT_CUT"]
REACH_HALO = SEGMENTATION["REACH_HALO"]
RIM = 3  # pixels of margin kept around a piece's ink: its grown rim and a row of paper


@dataclass(frozen=True)
class Piece:
    """One digit's ink: its box (left, top, right, bottom) in ink-map pixels and its ink."""

    box: tuple[int, int, int, int]
    ink: np.ndarray  # the digit's ink, cropped to its box with a small margin
    # Cut from a larger mark: how that mark scored whole as a share of what its parts scored
    # together (near 1, the cut was a close call; 0 for a piece that was not cut).
    cut_doubt: float = 0.0
    # Its height as a share of the mark it was cut from (1 for a piece that was not cut).
    cut_height: float = 1.0


def choose_joins(groups: list[np.ndarray], confidence: Callable[[list[np.ndarray]], list[float]]
                 ) -> list[np.ndarray]:
    """Neighbouring pieces (left to right) joined while a pair, at most FRAGMENT_GAP of the
    tallest piece apart and one of them scored under JOIN_BELOW, scores higher together than
    either does alone; the best such pair first. The mirror of choose_cut, for a digit whose
    strokes came apart but are too tall for group_strokes' fragments (the two strokes of an
    open 4). Beating the surer part, not the product, keeps a slanted 1 that the verifier
    doubts from being swallowed by the 0 beside it; two close digits each score high, and low
    together, so they stay apart."""
    groups = list(groups)
    boxes = [box(g) for g in groups]
    reach = FRAGMENT_GAP * max((b[3] - b[1] for b in boxes), default=0)
    scores: list[float] | None = None  # asked for only once some neighbours are close
    while len(groups) > 1:
        close = [i for i in range(len(groups) - 1) if boxes[i + 1][0] - boxes[i][2] <= reach]
        if not close:
            break
        scores = scores or confidence(groups)
        pairs = [i for i in close if min(scores[i], scores[i + 1]) < JOIN_BELOW]
        if not pairs:
            break
        together = confidence([groups[i] | groups[i + 1] for i in pairs])
        best, best_gain, best_score = -1, 0.0, 0.0
        for i, whole in zip(pairs, together, strict=True):
            gain = whole - max(scores[i], scores[i + 1])
            if gain > best_gain:
                best, best_gain, best_score = i, gain, whole
        if best < 0:
            break
        groups[best:best + 2] = [groups[best] | groups[best + 1]]
        boxes[best:best + 2] = [box(groups[best])]
        scores[best:best + 2] = [best_score]
    return groups


def cut_candidates(mask: np.ndarray, limit: int = 3) -> list[int]:
    """Columns where a piece may hold two touching digits: the thinnest columns in its middle,
    each leaving a digit-wide part on both sides."""
    left, top, right, bottom = box(mask)
    height, width = bottom - top, right - left
    profile = mask[:, left:right].sum(axis=0).astype(np.float64)
    margin = max(1, int(MIN_DIGIT_WIDTH * height))
    if width < 2 * margin + 1:
        return []
    middle = np.arange(margin, width - margin)
    # Prefer thin columns near the centre: touching digits are about equally wide.
    cost = profile[middle] + CENTRE_PULL * height * np.abs(middle - width / 2) / (width / 2)
    chosen: list[int] = []
    for i in np.argsort(cost, kind="stable"):
        column = int(middle[i])
        if all(abs(column - c) > margin / 2 for c in chosen):
            chosen.append(column)
        if len(chosen) == limit:
            break
    return [left + c for c in chosen]


def cut_path(mask: np.ndarray, column: int, reach: int) -> np.ndarray:
    """The column, row by row, of the top-to-bottom path from near `column` that crosses the
    least ink (dynamic programming; one column sideways per row at most, within `reach`), so
    that slanted or overlapping touching digits come apart along the gap between them."""
    height, width = mask.shape
    low, high = max(0, column - reach), min(width, column + reach + 1)
    ink = mask[:, low:high].astype(np.float64)
    drift = DRIFT * np.abs(np.arange(low, high) - column)  # stay near the chosen column
    cost = ink[0] + drift
    moves = np.zeros(ink.shape, dtype=np.int8)
    for y in range(1, height):
        options = np.stack([np.r_[np.inf, cost[:-1]], cost, np.r_[cost[1:], np.inf]])
        step = options.argmin(axis=0)
        moves[y] = step - 1
        cost = options[step, np.arange(len(cost))] + ink[y] + drift
    path = np.empty(height, dtype=np.int64)
    x = int(cost.argmin())
    for y in range(height - 1, -1, -1):
        path[y] = low + x
        x += int(moves[y, x])
    return path


def split_along(mask: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mask's pixels left of the path (row by row) and the rest."""
    left = np.arange(mask.shape[1])[None, :] < path[:, None]
    return mask & left, mask & ~left


def crossings(mask: np.ndarray, path: np.ndarray) -> int:
    """How many strokes a cut path goes through (runs of ink along it)."""
    on_path = mask[np.arange(mask.shape[0]), np.clip(path, 0, mask.shape[1] - 1)]
    return int(np.count_nonzero(np.diff(np.concatenate([[0], on_path.view(np.int8), [0]])) == 1))


def cut_at(mask: np.ndarray, column: int) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """The piece cut in two along the least-ink path from near `column`, and how many strokes
    that path crosses."""
    left, top, right, bottom = box(mask)
    path = cut_path(mask[top:bottom], column, (right - left) // 4)
    crossed = crossings(mask[top:bottom], path)
    path = np.concatenate([np.full(top, path[0]), path, np.full(mask.shape[0] - bottom, path[-1])])
    return split_along(mask, path), crossed


def choose_cut(mask: np.ndarray, confidence: Callable[[list[np.ndarray]], list[float]],
               verified: bool = False) -> list[np.ndarray]:
    """`mask` whole, or split in two (recursively) where the parts score higher than the whole.

    `confidence` scores pieces. Without the verifier it is the classifier's top probability,
    which is sure of two squashed digits as often as of one, so a piece is tried only when it
    is wide for its height and either read with less than CUT_BELOW confidence as one digit or
    wider than one digit would be; a cut must go through at most one stroke and leave two parts
    each read with at least PART_SURE confidence, together surer than the whole. `verified`:
    the score already says how much a piece looks like one whole digit, so any piece from
    VERIFIED_WIDE is tried and the best cut wins when its parts' product beats the whole.
    """
    left, top, right, bottom = box(mask)
    aspect = (right - left) / (bottom - top)
    if aspect < (VERIFIED_WIDE if verified else WIDE):
        return [mask]
    whole = confidence([mask])[0]
    if not verified and whole >= CUT_BELOW and aspect < SURELY_TWO:
        return [mask]
    best, best_score = None, whole
    limit, most_crossed = (VERIFIED_CANDIDATES, VERIFIED_CROSSINGS) if verified else (3, 1)
    for column in cut_candidates(mask, limit):
        parts, crossed = cut_at(mask, column)
        if crossed > most_crossed or not (parts[0].any() and parts[1].any()):
            continue
        sure = confidence(list(parts))
        score = float(np.prod(sure))
        if score > best_score and (verified or min(sure) >= PART_SURE):
            best, best_score = parts, score
    if best is None:
        return [mask]
    return [piece for part in best for piece in choose_cut(part, confidence, verified)]


def piece_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ink of one piece, cropped to it with a margin of RIM pixels: its strokes with their
    anti-aliased rim (the mask grown by a pixel), and the faint ink (under 0.5) that reaches
    them without coming within REACH_HALO // 2 pixels of another stroke. A digit written
    lighter than its neighbours has strokes under 0.5 (the light loop of a 9): a lone read
    keeps them, and so must the digit's piece, or the 9 is read as a 4 (studies/number_study.py
    --scale 4). Cropped, what mnist_style makes of it is the same as of the whole map, and
    much cheaper."""
    left, top, right, bottom = box(mask)
    rows = slice(max(0, top - RIM), bottom + RIM)
    cols = slice(max(0, left - RIM), right + RIM)
    own, window = mask[rows, cols], ink[rows, cols]
    others = (window > 0.5) & ~own
    if others.any():
        others = max_filter(others, REACH_HALO) > 0.5
    labels, _ = label_components(own | ((window > 0) & ~others))
    reached = np.isin(labels, np.unique(labels[own]))
    keep = reached | (max_filter(own, 3) > 0.5)
    return np.where(keep, window, 0.0).astype(np.float32)


def split_number(ink: np.ndarray,
                 confidence: Callable[[list[np.ndarray]], list[float]] | None = None,
                 verified: bool = False) -> list[Piece]:
    """The digits of a written number, left to right (see the module docstring).

    Without `confidence` no touching digits are cut; `verified` says that it includes the
    one-digit verifier's opinion (choose_cut), and then close pieces may also join
    (choose_joins). Raises ValueError when there are more than
    strokes.MAX_MARKS marks or MAX_DIGITS pieces (the caller turns that into its own message).
    """
    ink = even_out(ink)
    mask = ink > 0.5
    groups = group_strokes(mask)
    if len(groups) > MAX_DIGITS:
        raise ValueError(f"{len(groups)} separate marks")
    if confidence is not None:
        def score(masks: list[np.ndarray]) -> list[float]:
            return confidence([piece_ink(ink, m) for m in masks])

        marks, groups, doubts, sources = groups, [], [], []
        for mark in marks:
            parts = choose_cut(mark, score, verified)
            groups += parts
            doubts += [cut_doubt(mark, parts, score)] * len(parts)
            sources += [height(mark) if len(parts) > 1 else 0] * len(parts)
        if verified:
            joined = choose_joins(groups, score)
            doubts, sources = ([max(v for g, v in zip(groups, values, strict=True)
                                    if (g & piece).any()) for piece in joined]
                               for values in (doubts, sources))
            groups = joined
        if len(groups) > MAX_DIGITS:
            raise ValueError(f"{len(groups)} digits")
        return [Piece(box=box(g), ink=piece_ink(ink, g), cut_doubt=d,
                      cut_height=height(g) / s if s else 1.0)
                for g, d, s in zip(groups, doubts, sources, strict=True)]
    return [Piece(box=box(group), ink=piece_ink(ink, group)) for group in groups]


def height(mask: np.ndarray) -> int:
    """How many rows a mask's ink spans."""
    _, top, _, bottom = box(mask)
    return bottom - top


def cut_doubt(mark: np.ndarray, parts: list[np.ndarray],
              score: Callable[[list[np.ndarray]], list[float]]) -> float:
    """How the mark scored whole as a share of its parts' product (0 when it was not cut)."""
    if len(parts) < 2:
        return 0.0
    return float(score([mark])[0] / max(float(np.prod(score(parts))), 1e-12))


def left_out(ink: np.ndarray, pieces: list[Piece]) -> float:
    """How tall the tallest mark of ink outside every piece's box is, as a share of the pieces'
    median height (0 when nothing sizeable is left out). Specks are dropped on purpose; a mark
    of LEFT_OUT_HEIGHT or more may be a digit the answer is missing, so the reader marks the
    number unsure."""
    if not pieces:
        return 0.0
    outside = even_out(ink) > 0.5
    for left, top, right, bottom in (piece.box for piece in pieces):
        outside[top:bottom, left:right] = False
    if not outside.any():
        return 0.0
    labels, count = label_components(outside)
    tallest = int(mark_heights(labels, count).max())
    return float(tallest / np.median([piece.box[3] - piece.box[1] for piece in pieces]))
