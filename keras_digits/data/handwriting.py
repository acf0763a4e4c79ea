"""Digits written in handwriting fonts with a pen's variation: writing styles MNIST lacks.

MNIST's writers rarely curl a 9's tail under its loop, give a 1 a long flag and a foot, or
leave a 4 open at the top; other people do, and the models misread them surely. Handwriting
fonts carry such shapes. Every digit of every usable font is drawn many times, each with
another pen (stroke width and its changes along the stroke, slant, size and aspect, a wobble
of the outline) in ink on paper, and read into a 28x28 by `predict`'s own path, as a scan of
it would be. Training mixes these with MNIST (`Recipe.handwriting`).

The fonts come from npm (`@fontsource/<family>` in package.json, installed by `npm ci`) and
from Debian packages (installed by setup.sh as root); `handwriting_fonts.json` lists each with
its licence. Families split into training and held-out ones by a hash of their name, so the
held-out fonts measure how well the models read hands they never saw. A face whose digits are
not written digits (a missing glyph, hollow outlines) is left out by `not_digit_like`.

numpy and Pillow only, like the preprocessing it calls.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from functools import cache as memoize
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from keras_digits.core import atomic, cache
from keras_digits.core.cli import UserError
from keras_digits.imaging import normalize, raster

MANIFEST = Path(__file__).with_name("handwriting_fonts.json")
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"
HELD_OUT_EVERY = 5  # one family in five (by the hash of its name) is never trained on
SIZE = 96  # the font size in pixels; the canvas is twice as wide
CANVAS = 2 * SIZE
SCAN = 80  # the side of the scan that predict's path reads
DIGITS = "0123456789"


@dataclass(frozen=True)
class Face:
    """One font file of a family (a weight or a style), with where it came from."""

    family: str
    path: Path
    package: str
    licence: str


def held_out(family: str) -> bool:
    """Whether a family is kept out of training: a fixed rule on its name, not a choice."""
    return int(hashlib.sha256(family.encode()).hexdigest()[:8], 16) % HELD_OUT_EVERY == 0


def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def find_faces(node_modules: Path | None = None) -> tuple[list[Face], list[str]]:
    """Every face of the manifest's families found on this machine, and the packages missing.

    npm families: each Latin weight of `@fontsource/<family>` (upright). Debian packages: the
    files their manifest entry names; a package's files form one family.
    """
    fonts = manifest()
    # An installed package has no node_modules beside it: it looks in the current folder.
    root = node_modules or (NODE_MODULES if NODE_MODULES.is_dir() else Path("node_modules"))
    faces, missing = [], []
    for family, licence in fonts["npm"].items():
        folder = root / "@fontsource" / family / "files"
        found = sorted(folder.glob(f"{family}-latin-[0-9]*-normal.woff2"))
        faces += [Face(family, path, f"@fontsource/{family}", licence) for path in found]
        if not found:
            missing.append(f"@fontsource/{family}")
    for package, entry in fonts["debian"].items():
        found = [path for pattern in entry["files"] for path in sorted(Path("/").glob(pattern))]
        faces += [Face(package, path, package, entry["licence"]) for path in found]
        if not found:
            missing.append(package)
    return faces, missing


def _holes(ink: np.ndarray) -> int:
    """Enclosed background regions of a glyph of at least 1% of its box (the loops of 0, 6, 8)."""
    labels, count = raster.label_components(~ink)
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    return sum(1 for i in range(1, count + 1) if i not in border and sizes[i] >= 0.01 * box)


@memoize
def load_font(path: Path, size: int = SIZE) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def glyph(font: ImageFont.FreeTypeFont, text: str, stroke: int = 0) -> np.ndarray:
    """The text's ink, float 0-1, centred on the canvas."""
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    ImageDraw.Draw(canvas).text((CANVAS / 2, CANVAS / 2), text, font=font, fill=255,
                                anchor="mm", stroke_width=stroke, stroke_fill=255)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def not_digit_like(face: Face) -> str | None:
    """Why a face's digits are not usable as written digits, or None when they are.

    The rule: all ten glyphs exist (ink, unlike the font's missing-glyph box and unlike each
    other), a 1 and a 7 enclose no loop (hollow outline fonts do), and a 0 or an 8 encloses one
    (digits of a symbol font need not).
    """
    try:
        font = load_font(face.path)
        inks = [glyph(font, d) > 0.5 for d in DIGITS]
        missing = glyph(font, "\uffff") > 0.5
    except OSError as exc:
        return f"cannot be loaded ({exc})"
    for digit, ink in zip(DIGITS, inks, strict=True):
        if ink.sum() < 20 or (missing.any() and np.array_equal(ink, missing)):
            return f"has no glyph for {digit}"
    if len({ink.tobytes() for ink in inks}) < len(DIGITS):
        return "draws two digits alike"
    if _holes(inks[1]) or _holes(inks[7]):
        return "draws hollow outlines"
    if not (_holes(inks[0]) or _holes(inks[8])):
        return "draws no loop in 0 or 8"
    return None


def usable_faces(split: str = "train", quiet: bool = False,
                 found: tuple[list[Face], list[str]] | None = None) -> list[Face]:
    """The faces of the `split` ("train", "held_out" or "all") whose digits pass the rule,
    among `found` (default: `find_faces()`).

    Missing packages and faces left out are named in one note each (unless `quiet`); no face
    at all is a UserError that says how to install them.
    """
    faces, missing = found or find_faces()
    if missing and not quiet:
        print(f"note: {len(missing)} handwriting font package(s) not installed "
              f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
              "`npm ci` and `bash setup.sh` install them; going on without", flush=True)
    chosen, refused = [], []
    for face in faces:
        if split != "all" and held_out(face.family) != (split == "held_out"):
            continue
        reason = not_digit_like(face)
        if reason:
            refused.append(f"{face.path.name} {reason}")
        else:
            chosen.append(face)
    if refused and not quiet:
        print(f"note: left out {len(refused)} font face(s): {'; '.join(refused)}", flush=True)
    if not chosen:
        raise UserError(f"no usable {split.replace('_', '-')} handwriting fonts found; run "
                        "`npm ci` (and `bash setup.sh` as root for the Debian ones)")
    return chosen


def _smooth_field(rng: np.random.Generator, grid: int, scale: float) -> np.ndarray:
    """A smooth random field over the canvas: a small grid of uniform values, upsampled."""
    values = rng.uniform(-scale, scale, (grid, grid)).astype(np.float32)
    return np.asarray(Image.fromarray(values, "F").resize((CANVAS, CANVAS), Image.BICUBIC))


def _warp(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slant, turn, stretch and wobble the ink: an affine map plus a smooth displacement."""
    shear = rng.uniform(-0.45, 0.3)  # x moves by shear * (y - centre): right-leaning is common
    angle = np.deg2rad(rng.uniform(-10, 10))
    stretch = np.exp(rng.uniform(np.log(0.7), np.log(1.3)))  # width against height
    cos, sin = np.cos(angle), np.sin(angle)
    # Output pixel (x, y), relative to the centre, samples input A @ (x, y) + wobble.
    forward = np.array([[cos * stretch, -sin], [sin * stretch, cos]]) @ np.array(
        [[1.0, shear], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    centre = (CANVAS - 1) / 2
    y, x = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32) - centre
    source_x = inverse[0, 0] * x + inverse[0, 1] * y + centre + _smooth_field(rng, 5, 3.0)
    source_y = inverse[1, 0] * x + inverse[1, 1] * y + centre + _smooth_field(rng, 5, 3.0)
    return _sample(ink, source_x, source_y)


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of `image` at float coordinates; outside it is blank."""
    padded = np.pad(image, 1)
    x, y = np.clip(x + 1, 0, image.shape[1]), np.clip(y + 1, 0, image.shape[0])
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, image.shape[1] + 1), np.minimum(y0 + 1, image.shape[0] + 1)
    fx, fy = x - x0, y - y0
    top = padded[y0, x0] * (1 - fx) + padded[y0, x1] * fx
    bottom = padded[y1, x0] * (1 - fx) + padded[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def write(face: Face, digit: int, rng: np.random.Generator) -> np.ndarray:
    """One written digit as a scan would show it: uint8 grey, dark ink on light paper."""
    font = load_font(face.path)
    return pen_on_paper(glyph(font, DIGITS[digit], stroke=int(rng.integers(0, 5))), rng)


def pen_on_paper(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A digit's ink on the canvas (float 0-1) written with a pen's variation and scanned:
    uint8 grey, dark ink on light paper."""
    levels = (ink * 255).astype(np.uint8)
    # Pressure: a smooth field decides where the pen pressed harder (wider) or lighter (thinner).
    wider = raster.max_filter(levels, 5) / 255.0
    thinner = raster.min_filter(levels, 3) / 255.0
    pressure = _smooth_field(rng, 4, 1.6)
    ink = np.where(pressure > 0, ink + (wider - ink) * np.minimum(pressure, 1.0),
                   ink + (thinner - ink) * np.minimum(-pressure, 1.0))
    if thinner.sum() > 0.3 * ink.sum() and rng.random() < 0.3:  # a fine pen, where it can be
        ink = np.minimum(ink, thinner)
    ink = _warp(ink, rng)
    # Scanned at a lower resolution (predict's path takes most of the time, by pixel count).
    scanned = Image.fromarray((np.clip(ink, 0, 1) * 255).astype(np.uint8), "L").filter(
        ImageFilter.GaussianBlur(rng.uniform(0.0, 2.0))).resize((SCAN, SCAN), Image.BOX)
    ink = np.asarray(scanned, dtype=np.float32) / 255.0
    paper, pen = rng.uniform(180, 250), rng.uniform(0, 110)
    gray = paper - (paper - pen) * ink + rng.normal(0, rng.uniform(0, 6), ink.shape)
    return np.clip(np.round(gray), 0, 255).astype(np.uint8)


def _render_job(job: tuple[list[Face], list[tuple[int, int]], int]) -> np.ndarray:
    """The 28x28s of (face index, digit) pairs, each written with its own pen from `seed`."""
    faces, pairs, seed = job
    out = np.zeros((len(pairs), 28, 28, 1), np.uint8)
    for i, (index, digit) in enumerate(pairs):
        rng = np.random.default_rng((seed, i))
        try:
            pixels = normalize.load_digit(write(faces[index], digit, rng))
        except UserError:  # too faint to find: left blank, then dropped
            continue
        out[i] = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return out


def _plan(faces: list[Face], per_digit: int, seed: int) -> list[tuple[int, int]]:
    """(face, digit) pairs: `per_digit` writings of each digit per family, over its faces."""
    families: dict[str, list[int]] = {}
    for index, face in enumerate(faces):
        families.setdefault(face.family, []).append(index)
    rng = np.random.default_rng(seed)
    return [(int(rng.choice(members)), digit) for members in families.values()
            for digit in range(10) for _ in range(per_digit)]


def written_digits(split: str = "train", per_digit: int = 20, seed: int = 0,
                   workers: int | None = None,
                   faces: list[Face] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every usable face's digits of a split (or of `faces`), written `per_digit` times per
    family and digit: uint8 (N, 28, 28, 1) white on black as predict reads them, and int64
    labels. Cached, under a name that holds the code, the fonts and the plan."""
    faces = faces or usable_faces(split)
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(normalize.preprocessing_digest().encode())
    for face in faces:
        digest.update(f"{face.family}/{face.path.name}/{face.path.stat().st_size}".encode())
    pairs = _plan(faces, per_digit, seed)
    labels = np.array([digit for _, digit in pairs], np.int64)
    name = f"handwriting-{split}-{per_digit}-{seed}-{digest.hexdigest()[:16]}.npy"
    path = cache.cache_dir() / name
    workers = cache.default_workers() if workers is None else workers

    def make() -> np.ndarray:
        chunks = [pairs[i::4 * workers] for i in range(4 * workers)]
        jobs = [(faces, chunk, seed * 1000 + i) for i, chunk in enumerate(chunks)]
        parts = (cache.map_in_processes(_render_job, jobs, workers) if workers > 1
                 else [_render_job(job) for job in jobs])
        out = np.zeros((len(pairs), 28, 28, 1), np.uint8)
        for i, part in enumerate(parts):
            out[i::4 * workers] = part
        return out

    images = cache.load_or_make(path, make, "the handwriting-font digits",
                                (len(pairs), 28, 28, 1))
    written = images.reshape(len(images), -1).any(axis=1)
    return images[written], labels[written]


def write_folder(destination: Path, split: str = "held_out", per_digit: int = 20,
                 seed: int = 1) -> Path:
    """A split's written digits as a labelled folder of PNG scans, for `evaluate` (once)."""
    if (destination / "labels.csv").is_file():
        return destination
    faces = usable_faces(split)
    atomic.require_writable(destination.parent)
    with atomic.atomic_path(destination) as staging:  # whole or absent
        staging.mkdir()
        rows = []
        for i, (index, digit) in enumerate(_plan(faces, per_digit, seed)):
            name = f"{faces[index].family}-{digit}-{i:05d}.png"
            image = write(faces[index], digit, np.random.default_rng((seed, i)))
            Image.fromarray(image, "L").save(staging / name)
            rows.append((name, digit))
        with (staging / "labels.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([("file", "label"), *rows])
    return destination


def training_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits written in the training fonts, drawn at random by `seed` from a cached
    set that holds at least that many (a power of two writings per family and digit)."""
    faces = usable_faces("train")  # the rule runs once: its faces go on to the writing
    families = len({face.family for face in faces})
    per_digit = 1 << max(0, int(np.ceil(np.log2(max(1, count) / (10 * families)))))
    images, labels = written_digits("train", per_digit, faces=faces)
    chosen = np.random.default_rng(seed).permutation(len(images))[:count]
    return images[chosen], labels[chosen]
