"""Turn any photo or drawing of a digit into the 28x28 image an MNIST model expects.

MNIST digits are white ink on black, cropped to the ink, scaled so the longer side fits a
20-pixel box (aspect kept), anti-aliased, and placed in a 28x28 frame by their centre of mass.
A model trained on them fails on a naive resize of a real drawing, so this module recreates that
recipe on the grey image `decode` makes: find the ink and its polarity, remove uneven background
(shadows, grid lines), crop, match MNIST's stroke width, scale, and centre by mass.

numpy and Pillow only: the predict path must not import TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from keras_digits import paper
from keras_digits.cli import UserError
from keras_digits.contract import PREPROCESSING, THUMBNAIL_POLARITY
from keras_digits.decode import IMAGE_DATA, read_gray
from keras_digits.raster import frame, label_components, otsu, pil_filter, resize

# MNIST's geometry and the thresholds, shared with the page (contract.PREPROCESSING says why).
BOX = PREPROCESSING["BOX"]
FRAME = PREPROCESSING["FRAME"]
MNIST_STROKE_AT_80 = PREPROCESSING["MNIST_STROKE_AT_80"]
STROKE_BOX = PREPROCESSING["STROKE_BOX"]
SMALL_CROP = PREPROCESSING["SMALL_CROP"]
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
    gray = paper.without_desk(paper.without_frame_box(gray))
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
    background = pil_filter(pil_filter(small, ImageFilter.MinFilter(BACKGROUND_FILTER)),
                            ImageFilter.MaxFilter(BACKGROUND_FILTER))
    flat = np.clip(gray - resize(background, (padded_width, padded_height)), 0.0, 1.0)
    if flat.max() < MIN_CONTRAST:
        return np.zeros_like(flat)
    threshold = max(otsu(flat / flat.max()) * flat.max(), MIN_CONTRAST / 2)
    low = threshold / 2  # where ink starts to count
    # Ruled or squared paper: drop thin lines that cross nearly the whole page, faint ones too,
    # or they would stretch the crop across the page.
    inner = flat[margin:margin + height, margin:margin + width]
    visible = inner > low
    rule_rows = paper.rule_lines(visible.mean(axis=1), RULE_THICKNESS * height)
    rule_cols = paper.rule_lines(visible.mean(axis=0), RULE_THICKNESS * width)
    inner[rule_rows, :] = 0.0
    inner[:, rule_cols] = 0.0
    # A stroke that crossed a rule is now cut there: mend it, so it stays one stroke.
    paper.bridge_rules(inner, rule_rows, threshold)
    paper.bridge_rules(inner.T, rule_cols, threshold)
    inner[paper.frame_strips(inner, low)] = 0.0
    mask = flat > threshold
    if not mask.any():
        return np.zeros_like(flat)
    strong = float(np.percentile(flat[mask], 90))
    return np.clip((flat - low) / max(strong - low, 1e-6), 0.0, 1.0)


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
    opened = pil_filter(pil_filter(mask.astype(np.float32), ImageFilter.MinFilter(3)),
                        ImageFilter.MaxFilter(3)) > 0.5
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
        digit = pil_filter(np.pad(digit, grow), ImageFilter.MaxFilter(grow))
    elif width > 1.5 * MNIST_STROKE_AT_80:  # marker: thin it, or loops fill in when scaled down
        shrink = int(round((width - MNIST_STROKE_AT_80) / 2)) | 1
        thinner = pil_filter(digit, ImageFilter.MinFilter(shrink))
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
