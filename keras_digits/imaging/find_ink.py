"""Find the ink: which tone is paper, the uneven background and the page's rules removed.

The third step of reading an image (decode -> clean the page -> find the ink -> normalise -> split
into digits -> classify): the grey image `decode` made, with the page cleaned (`page`: a box
drawn around the writing, the desk around a photographed sheet), becomes an ink map in [0, 1]
with MNIST's polarity (white ink on black) and a margin of paper around it. numpy and Pillow
only: the predict path must not import TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_digits.core.cli import UserError
from keras_digits.core.contract import PREPROCESSING, THUMBNAIL_POLARITY
from keras_digits.imaging import page
from keras_digits.imaging.decode import IMAGE_DATA
from keras_digits.imaging.raster import (
    frame,
    label_components,
    max_filter,
    min_filter,
    otsu,
    resize,
)

MIN_CONTRAST = PREPROCESSING["MIN_CONTRAST"]
PAPER_MARGIN = PREPROCESSING["PAPER_MARGIN"]
RULE_THICKNESS = PREPROCESSING["RULE_THICKNESS"]
POLARITY_SIDE = PREPROCESSING["POLARITY_SIDE"]
BACKGROUND_SIDE = PREPROCESSING["BACKGROUND_SIDE"]
BACKGROUND_FILTER = PREPROCESSING["BACKGROUND_FILTER"]


def border_tones(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image's border pixels, and which of them are lighter than its middle tone."""
    border = frame(gray)
    return border, border > (gray.min() + gray.max()) / 2


def _paper_is_light(gray: np.ndarray, light_border: float) -> bool:
    """Whether the paper is lighter than the ink, given the share of the border that is light.

    The border is mostly paper: two thirds of it in one tone settles it. Less is a tight crop
    whose strokes run along the edges (a scanner's digit stretched to fill its box). There the
    ink is the tone in fewer pieces: a digit is one stroke or a few, while its strokes cut the
    paper into corners and the holes of 0, 6, 8 and 9. A tie goes to the border's majority.
    Judged at POLARITY_SIDE pixels, where paper grain and JPEG noise leave no pieces of their own.
    """
    if not 1 / 3 < light_border < 2 / 3:
        return light_border >= 2 / 3
    height, width = gray.shape
    scale = min(1.0, POLARITY_SIDE / max(height, width))
    small = resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))))
    light = small > (small.min() + small.max()) / 2
    light_pieces, dark_pieces = label_components(light)[1], label_components(~light)[1]
    if light_pieces == dark_pieces:
        return light_border > 0.5
    return dark_pieces < light_pieces


def paper_margin(shape: tuple[int, ...]) -> int:
    """The paper `ink_map` adds on each side of an image of this shape."""
    return max(shape[:2]) // PAPER_MARGIN


def polarity_open(gray: np.ndarray) -> bool:
    """Whether the image is a thumbnail whose border leaves open which tone is the paper: less
    than two thirds of it in either tone, and too few pixels to count strokes by. The reader
    then tries both (`candidate_inks`)."""
    light_border = float(border_tones(gray)[1].mean())
    return max(gray.shape) < THUMBNAIL_POLARITY["BELOW"] and 1 / 3 < light_border < 2 / 3


def ink_map(gray: np.ndarray, paper_light: bool | None = None) -> np.ndarray:
    """Ink strength in [0, 1] (1 = full stroke) with polarity fixed and background removed.

    The result is the image with a margin of paper around it, so ink that touches the frame
    (a tight crop) is kept whole; cropping to the ink removes the margin again. `paper_light`
    says which tone the paper is, where the caller knows; by default the image tells.
    """
    gray = page.without_desk(page.without_frame_box(gray))
    height, width = gray.shape
    border, light = border_tones(gray)
    if paper_light is None or light.all() or not light.any():
        paper_light = _paper_is_light(gray, float(light.mean()))
    # Both tones are on the border unless it is all one, and then that tone is the paper.
    paper_tone = float(np.median(border[light == paper_light]))
    if paper_light:  # dark on light: flip to MNIST's white ink on black
        gray = 1.0 - gray
        paper_tone = 1.0 - paper_tone
    margin = paper_margin(gray.shape)
    gray = np.pad(gray, margin, constant_values=paper_tone)
    padded_height, padded_width = gray.shape
    # Background (shadows, paper tint) from a grey opening at low resolution: strokes are
    # narrower than the filter there, so min-then-max filtering erases them and keeps only the
    # slowly varying paper.
    scale = min(1.0, BACKGROUND_SIDE / max(padded_height, padded_width))
    small = resize(gray, (max(1, round(padded_width * scale)),
                          max(1, round(padded_height * scale))))
    background = max_filter(min_filter(small, BACKGROUND_FILTER), BACKGROUND_FILTER)
    flat = np.clip(gray - resize(background, (padded_width, padded_height)), 0.0, 1.0)
    if flat.max() < MIN_CONTRAST:
        return np.zeros_like(flat)
    threshold = max(otsu(flat / flat.max()) * flat.max(), MIN_CONTRAST / 2)
    low = threshold / 2  # where ink starts to count
    # Ruled or squared paper: drop thin lines that cross nearly the whole page, faint ones too,
    # or they would stretch the crop across the page.
    inner = flat[margin:margin + height, margin:margin + width]
    visible = inner > low
    rule_rows = page.rule_lines(visible.mean(axis=1), RULE_THICKNESS * height)
    rule_cols = page.rule_lines(visible.mean(axis=0), RULE_THICKNESS * width)
    inner[rule_rows, :] = 0.0
    inner[:, rule_cols] = 0.0
    # A stroke that crossed a rule is now cut there: mend it, so it stays one stroke.
    page.bridge_rules(inner, rule_rows, threshold)
    page.bridge_rules(inner.T, rule_cols, threshold)
    inner[page.frame_strips(inner, low)] = 0.0
    mask = flat > threshold
    if not mask.any():
        return np.zeros_like(flat)
    strong = float(np.percentile(flat[mask], 90))
    return np.clip((flat - low) / max(strong - low, 1e-6), 0.0, 1.0)


def _has_ink(ink: np.ndarray) -> bool:
    return bool(ink.max() >= 0.5 and (ink > 0.5).sum() >= 3)


def _no_ink(source: str | Path | np.ndarray | bytes) -> UserError:
    name = ("the array" if isinstance(source, np.ndarray) else
            IMAGE_DATA if isinstance(source, bytes) else str(source))
    return UserError(f"{name} shows no ink (a blank page?); photograph or draw a digit")


def checked_ink(gray: np.ndarray, source: str | Path | np.ndarray | bytes) -> np.ndarray:
    """The ink map of a grey image, or the one-line "no ink" error naming `source`."""
    ink = ink_map(gray)
    if not _has_ink(ink):
        raise _no_ink(source)
    return ink


def candidate_inks(gray: np.ndarray, source: str | Path | np.ndarray | bytes
                   ) -> list[np.ndarray]:
    """The ink maps a reader chooses between: the one `checked_ink` gives, and, for a thumbnail
    whose border leaves the paper's tone open (`polarity_open`), after it the one with the
    other tone taken for paper, so the model can say which reads as a digit."""
    if not polarity_open(gray):
        return [checked_ink(gray, source)]
    own = _paper_is_light(gray, float(border_tones(gray)[1].mean()))
    inks = [ink for ink in (ink_map(gray, paper_light=tone) for tone in (own, not own))
            if _has_ink(ink)]
    if not inks:
        raise _no_ink(source)
    return inks
