"""Generated "drawings": digits rendered with the machine's fonts in the ways people supply them.

Used by the predict tests and by `bench`-style measurements of preprocessing. Each variant mimics
a real input: thick or thin pens, a slight tilt, a digit off-centre on a big canvas, light ink on
dark, strokes on a transparent canvas, JPEG artefacts, a shadowed photo of squared paper, a
landscape page of ruled paper, a crop so tight the ink touches every edge, and a phone photo
stored sideways with an EXIF orientation tag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
VARIANTS = ("plain", "thin", "thick", "rotated", "offcentre", "inverted", "rgba", "jpeg",
            "photo", "lined", "tight", "exif")
EXIF_ORIENTATION = 0x0112
ROTATE_CW_TO_VIEW = 6  # EXIF: the viewer turns the stored pixels 90 degrees clockwise


def available_fonts() -> list[Path]:
    return [FONT_DIR / f for f in FONTS if (FONT_DIR / f).is_file()]


def _glyph(digit: int, font_path: Path, size: int, stroke: int) -> Image.Image:
    """Black digit on white, `size` pixels tall, with an optional outline to thicken it."""
    font = ImageFont.truetype(str(font_path), size)
    canvas = Image.new("L", (size * 2, size * 2), 255)
    ImageDraw.Draw(canvas).text((size // 2, size // 4), str(digit), font=font, fill=0,
                                stroke_width=stroke, stroke_fill=0)
    return canvas


def render(digit: int, font_path: Path, variant: str, seed: int = 0) -> Image.Image:
    """One drawing of `digit` in the named variant."""
    rng = np.random.default_rng(seed)
    if variant == "thin":
        glyph = _glyph(digit, font_path, 300, 0).resize((400, 400))
        return glyph  # a fine pen on a large canvas: strokes far thinner than MNIST's
    stroke = {"thick": 8, "plain": 3}.get(variant, 3)
    glyph = _glyph(digit, font_path, 160, stroke)
    if variant == "rotated":
        glyph = glyph.rotate(float(rng.choice([-12, 12])), fillcolor=255)
    if variant == "offcentre":
        page = Image.new("L", (1200, 900), 255)
        page.paste(glyph, (int(rng.integers(0, 800)), int(rng.integers(0, 500))))
        return page
    if variant == "inverted":
        return Image.eval(glyph, lambda v: 255 - v)
    if variant == "rgba":
        alpha = Image.eval(glyph, lambda v: 255 - v)
        ink = Image.new("RGBA", glyph.size, (20, 40, 200, 0))
        ink.putalpha(alpha)
        return ink
    if variant == "jpeg":
        return glyph.convert("RGB")
    if variant == "photo":
        return _photo(glyph, rng)
    if variant == "lined":
        return _lined(glyph)
    if variant == "tight":
        return glyph.crop(Image.eval(glyph, lambda v: 255 - v).getbbox())
    if variant == "exif":  # stored turned a quarter anticlockwise; the tag turns it back
        return glyph.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    return glyph


def _photo(glyph: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Grey ink on squared paper with a shadow gradient and sensor noise, in colour."""
    size = glyph.size[0]
    paper = np.full((size, size), 215.0)
    paper[:: size // 8, :] -= 45  # grid lines
    paper[:, :: size // 8] -= 45
    paper *= np.linspace(0.65, 1.0, size)[None, :]  # a shadow across the page
    ink = 1.0 - np.asarray(glyph.filter(ImageFilter.GaussianBlur(1.5)), dtype=float) / 255
    photo = paper * (1 - 0.75 * ink) + rng.normal(0, 6, paper.shape)
    rgb = np.stack([photo, photo * 0.97, photo * 0.9], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def _lined(glyph: Image.Image) -> Image.Image:
    """The digit written across the rules of a landscape notebook page (not square on purpose)."""
    height, width = glyph.size[1], glyph.size[0]
    page = np.full((height, width * 3 // 2), 250, dtype=np.uint8)
    page[10::height // 6, :] = 150  # ruled lines, one pixel thick, across the whole page
    left = width // 4
    page[:, left:left + width] = np.minimum(page[:, left:left + width], np.asarray(glyph))
    return Image.fromarray(page, "L")


def save(image: Image.Image, path: Path, variant: str) -> Path:
    if variant in ("jpeg", "photo", "exif"):
        path = path.with_suffix(".jpg")
        exif = Image.Exif()
        if variant == "exif":
            exif[EXIF_ORIENTATION] = ROTATE_CW_TO_VIEW
        image.convert("RGB").save(path, quality=70, exif=exif)
    else:
        path = path.with_suffix(".png")
        image.save(path)
    return path


def make_set(folder: Path, variants=VARIANTS, fonts=None) -> list[tuple[Path, int, str]]:
    """Write every digit in every variant and font; returns (path, label, variant) triples."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for font_path in fonts or available_fonts():
        for variant in variants:
            for digit in range(10):
                image = render(digit, font_path, variant, seed=digit)
                path = save(image, folder / f"{font_path.stem}-{variant}-{digit}", variant)
                items.append((path, digit, variant))
    return items


SHEET_TONE = 235  # a photographed sheet's paper


def desk_photo(sheet_box: tuple[int, int, int, int] | None, desk: int = 50) -> Image.Image:
    """A blank sheet photographed on a desk of tone `desk` (640x480 grey): the sheet at
    `sheet_box`, possibly running off the frame, or turned 45 degrees when it is None."""
    photo = Image.new("L", (640, 480), desk)
    draw = ImageDraw.Draw(photo)
    if sheet_box is None:
        draw.polygon([(320, 40), (560, 240), (320, 450), (80, 240)], fill=SHEET_TONE)
    else:
        draw.rectangle(sheet_box, fill=SHEET_TONE)
    return photo


def on_a_desk(digit: int, sheet_box: tuple[int, int, int, int], tilted: bool = False,
              desk: int = 50) -> np.ndarray:
    """A digit written on a sheet, photographed on a desk (`desk_photo`), grey in [0, 1]. With
    the desk in the paper's tone it is the sheet alone."""
    font = ImageFont.truetype(str(FONT_DIR / "DejaVuSans.ttf"), 160)
    photo = desk_photo(None if tilted else sheet_box, desk)
    ImageDraw.Draw(photo).text((320, 240), str(digit), fill=25, font=font, anchor="mm")
    return np.asarray(photo, np.float32) / 255


def in_a_box(digit: np.ndarray, side: int, line: int, outside: int = 0) -> np.ndarray:
    """An MNIST digit (white on black, 0-255) written in a form's black box of `side` pixels,
    `line` pixels wide and drawn `outside` pixels in from the image's edge (0: cropped at its
    lines): dark ink on white, grey in [0, 1]. With `line` 0 it is the digit on plain paper."""
    page = np.ones((side, side), np.float32)
    size = side * 2 // 3
    ink = np.asarray(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR),
                     np.float32) / 255
    start = (side - size) // 2
    page[start:start + size, start:start + size] -= ink
    if line:
        near, far = outside, side - outside
        for edge in (slice(near, near + line), slice(far - line, far)):
            page[edge, near:far] = 0.0
            page[near:far, edge] = 0.0
    return page
