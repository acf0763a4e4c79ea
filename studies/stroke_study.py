"""Do digits composed from pen strokes teach the writing styles that fonts lack?

Fonts rarely write a 9 whose tail curls back under its loop, a 4 whose first stroke rounds
into the bar, or a 1 with a long flag, and MNIST's writers seldom do; many other people do, and
the models misread those digits surely. Here each digit has the shapes schools in different
countries teach (a 1 plain, flagged, or flagged with a foot; a 4 closed, open or rounded; a 7
with or without a bar; a 9 with a straight, hooked, curled-under or slanting tail), each
stroke a spline through points that move with every writing, then the same pen, paper and scan
as the fonts' digits (`handwriting.pen_on_paper`). A share of the recipe's written digits is
composed so instead of written in fonts, and each variant is trained and scored as
`handwriting_study` does:

    .venv/bin/python -m studies.stroke_study cnn --composed 0.5

A shape is a list of strokes; a stroke is a list of (x, y) points in a box 0.6 wide and 1 high,
y downwards. The points are written from the shapes' descriptions, not traced from any set.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from keras_digits.core import cache
from keras_digits.core.cli import UserError
from keras_digits.data import handwriting
from keras_digits.imaging import normalize
from studies import handwriting_study

HEIGHT = 0.38 * handwriting.CANVAS  # a digit's height on the canvas, as the fonts' digits
WIDTH = 0.6  # the box's width against its height
HELD_OUT_SEED = 9  # the composed digits scored: other writings than training's (seed 0, 1, ...)
Stroke = list[tuple[float, float]]


def _loop(cx: float, cy: float, rx: float, ry: float, start: float, turns: float,
          clockwise: bool = False, steps: int = 14) -> Stroke:
    """Points around an ellipse from angle `start` (radians, 0 at the right, y down)."""
    sign = 1.0 if clockwise else -1.0
    angles = start + sign * np.linspace(0, 2 * np.pi * turns, steps)
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def zero(rng):
    lean = _u(rng, -0.05, 0.05)
    return [_loop(0.5 + lean, 0.5, _u(rng, 0.3, 0.45), 0.5, -np.pi / 2 + _u(rng, -0.5, 0.5),
                  _u(rng, 1.0, 1.12))]


def one(rng):
    top, bottom = (0.5 + _u(rng, -0.05, 0.1), 0.0), (0.5 + _u(rng, -0.1, 0.05), 1.0)
    style = rng.integers(3)
    if style == 0:  # a plain stroke
        return [[top, bottom]]
    flag = (top[0] - _u(rng, 0.2, 0.55), _u(rng, 0.12, 0.4))  # a flag, short or long
    strokes = [[flag, top], [top, bottom]]
    if style == 2:  # and a foot
        half = _u(rng, 0.2, 0.35)
        strokes.append([(bottom[0] - half, 1.0), (bottom[0] + half, 1.0)])
    return strokes


def two(rng):
    bend = [(0.1, 0.25), (0.4, _u(rng, 0.0, 0.05)), (0.8, 0.1), (0.85, 0.35),
            (0.55, 0.65), (0.1, 0.98)]
    if rng.random() < 0.3:  # a small loop where the stem meets the base
        return [bend, [(0.1, 0.98), (0.3, 0.85), (0.25, 1.0), (0.5, 0.97), (0.9, 1.0)]]
    return [bend, [(0.1, 0.98), (0.9, _u(rng, 0.94, 1.0))]]


def three(rng):
    lower = [(0.45, 0.48), (0.85, 0.62), (0.88, 0.85), (0.5, 1.0), (0.1, 0.88)]
    if rng.random() < 0.3:  # a flat top, as a Z's
        return [[(0.1, 0.0), (0.85, 0.0)], [(0.85, 0.0), (0.4, 0.45)], [(0.4, 0.45), *lower]]
    return [[(0.1, 0.15), (0.45, 0.0), (0.85, 0.15), (0.8, 0.38), (0.4, 0.48)],
            [(0.4, 0.48), *lower]]


def four(rng):
    bar = _u(rng, 0.55, 0.7)
    stem_x = _u(rng, 0.6, 0.75)
    stem = [(stem_x + _u(rng, -0.05, 0.05), _u(rng, 0.0, 0.3)), (stem_x, 1.0)]
    style = rng.integers(3)
    if style == 0:  # closed: a slant down to the bar
        return [[(stem_x, 0.0), (0.0, bar)], [(0.0, bar), (1.0, bar)], stem]
    if style == 1:  # open at the top
        return [[(0.15, 0.0), (0.05, bar)], [(0.05, bar), (0.95, bar)], stem]
    # rounded: the first stroke curves into the bar, which may swing up at its end
    return [[(_u(rng, 0.1, 0.35), 0.0), (0.02, bar - 0.15), (0.2, bar), (0.6, bar + 0.02),
             (1.0, bar - _u(rng, 0.0, 0.25))], stem]


def five(rng):
    corner = (0.15, _u(rng, 0.38, 0.5))
    belly = [corner, (0.5, corner[1] - 0.08), (0.85, 0.58), (0.85, 0.82), (0.5, 1.0), (0.1, 0.9)]
    return [[(0.2, 0.02), corner], belly, [(0.2, 0.02), (0.9, _u(rng, -0.04, 0.04))]]


def six(rng):
    return [[(0.8, 0.0), (0.4, 0.2), (0.12, 0.6), (0.3, 0.97), (0.7, 0.95), (0.85, 0.72),
             (0.55, _u(rng, 0.48, 0.6)), (0.18, 0.7)]]


def seven(rng):
    end = (_u(rng, 0.25, 0.5), 1.0)
    corner = (0.95, 0.02)
    start = [(0.05, _u(rng, 0.15, 0.3)), (0.05, 0.03)] if rng.random() < 0.3 else [(0.05, 0.03)]
    strokes = [[*start, corner], [corner, (0.65, 0.5), end] if rng.random() < 0.5
               else [corner, end]]
    if rng.random() < 0.4:  # a bar across the stem
        strokes.append([(0.3, 0.52), (0.95, 0.5)])
    return strokes


def eight(rng):
    if rng.random() < 0.5:  # two loops
        return [_loop(0.5, 0.25, _u(rng, 0.25, 0.35), 0.25, np.pi / 2, 1.0),
                _loop(0.5, 0.73, _u(rng, 0.3, 0.45), 0.27, -np.pi / 2, 1.0)]
    return [[(0.8, 0.12), (0.5, 0.0), (0.18, 0.15), (0.3, 0.38), (0.7, 0.6), (0.85, 0.82),
             (0.5, 1.0), (0.15, 0.82), (0.3, 0.6), (0.7, 0.38), (0.82, 0.15), (0.65, 0.02)]]


def nine(rng):
    ry = _u(rng, 0.15, 0.27)
    cx, rx = _u(rng, 0.42, 0.55), _u(rng, 0.28, 0.42)
    join = (cx + rx, ry + _u(rng, -0.05, 0.05))
    loop = _loop(cx, ry, rx, ry, _u(rng, -0.3, 0.2), _u(rng, 1.0, 1.1))
    style = rng.integers(4)
    if style == 0:  # a straight tail
        tail = [join, (join[0] + _u(rng, -0.15, 0.05), 1.0)]
    elif style == 1:  # a hook to the left
        tail = [join, (join[0], 0.75), (join[0] - 0.2, 0.98), (join[0] - 0.45, 0.92)]
    elif style == 2:  # curled back under the loop in a wide sweep, as far as its left or past
        ry = _u(rng, 0.22, 0.32)
        loop = _loop(cx, ry, rx, ry, _u(rng, -0.3, 0.2), _u(rng, 1.0, 1.1))
        join = (cx + rx, ry + _u(rng, 0.0, 0.1))
        end = _u(rng, -0.35, 0.15)
        tail = [join, (join[0] + 0.03, _u(rng, 0.7, 0.8)), (join[0] - 0.15, 0.95), (0.45, 1.0),
                (end + 0.2, 0.98), (end, _u(rng, 0.85, 0.95))]
        if rng.random() < 0.5:  # and turning up at its end
            tail.append((end + _u(rng, 0.0, 0.15), _u(rng, 0.65, 0.8)))
    else:  # a stem slanting down to the left from the loop's lower left
        start = _loop(cx, ry, rx, ry, np.pi * 0.7, 0.0, steps=1)[0]
        return [loop, [start, (_u(rng, -0.2, 0.15), 1.0)]]
    return [loop, tail]


SHAPES = (zero, one, two, three, four, five, six, seven, eight, nine)


def _spline(points: Stroke, steps: int = 8) -> np.ndarray:
    """Dense points of a Catmull-Rom spline through `points` (a line for two)."""
    p = np.asarray(points, np.float64)
    if len(p) == 2:
        return p
    padded = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0, 1, steps, endpoint=False)[:, None]
    out = []
    for i in range(1, len(padded) - 2):
        a, b, c, d = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        out.append(0.5 * (2 * b + (c - a) * t + (2 * a - 5 * b + 4 * c - d) * t ** 2
                          + (3 * b - a - 3 * c + d) * t ** 3))
    return np.vstack([*out, p[-1:]])


def ink(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One composed digit's ink, float 0-1 on the fonts' canvas, before the pen's variation."""
    strokes = SHAPES[digit](rng)
    jitter = _u(rng, 0.01, 0.04)  # how unsteady this writer's hand is
    width = int(rng.integers(5, 15))
    canvas = Image.new("L", (handwriting.CANVAS, handwriting.CANVAS), 0)
    draw = ImageDraw.Draw(canvas)
    centre = handwriting.CANVAS / 2
    for stroke in strokes:
        points = np.asarray(stroke) + rng.normal(0, jitter, (len(stroke), 2))
        dense = _spline(points)
        xy = [(centre + (x - 0.5) * WIDTH * HEIGHT, centre + (y - 0.5) * HEIGHT)
              for x, y in dense]
        draw.line(xy, fill=255, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round ends
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return np.asarray(canvas, np.float32) / 255.0


def write(digit: int, rng: np.random.Generator) -> np.ndarray:
    """One composed digit as a scan would show it: uint8 grey, dark ink on light paper."""
    return handwriting.pen_on_paper(ink(digit, rng), rng)


def _compose_job(job: tuple[list[int], int]) -> np.ndarray:
    """The 28x28s of `indices`' digits (index % 10), each composed and written from `seed`."""
    indices, seed = job
    out = np.zeros((len(indices), 28, 28, 1), np.uint8)
    for row, i in enumerate(indices):
        try:
            pixels = normalize.load_digit(write(i % 10, np.random.default_rng((seed, i))))
        except UserError:  # too faint to find: left blank, then dropped
            continue
        out[row] = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    return out


def composed_digits(count: int, seed: int = 0,
                    workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`count` composed digits, each digit equally often: uint8 (N, 28, 28, 1) white on black
    as predict reads them, and int64 labels. Cached under a name that holds the code."""
    labels = np.arange(count, dtype=np.int64) % 10
    if not count:
        return np.zeros((0, 28, 28, 1), np.uint8), labels
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(Path(handwriting.__file__).read_bytes())
    digest.update(normalize.preprocessing_digest().encode())
    path = cache.cache_dir() / f"pen-strokes-{count}-{seed}-{digest.hexdigest()[:16]}.npy"
    if workers is None:  # a few hundred cost less than starting worker processes
        workers = cache.default_workers() if count >= 2000 else 1

    def make() -> np.ndarray:
        parts_count = 4 * workers
        jobs = [(list(range(i, count, parts_count)), seed) for i in range(parts_count)]
        parts = (cache.map_in_processes(_compose_job, jobs, workers) if workers > 1
                 else [_compose_job(job) for job in jobs])
        out = np.zeros((count, 28, 28, 1), np.uint8)
        for i, part in enumerate(parts):
            out[i::parts_count] = part
        return out

    images = cache.load_or_make(path, make, "the digits composed from pen strokes",
                                (count, 28, 28, 1))
    written = images.reshape(count, -1).any(axis=1)
    return images[written], labels[written]


def mixed_training_digits(composed: float):
    """`handwriting.training_digits` with a share `composed` of its digits composed here."""
    fonts_only = handwriting.training_digits

    def training_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        strokes = round(composed * count)
        fonts, drawn = fonts_only(count - strokes, seed), composed_digits(strokes, seed)
        return np.concatenate([fonts[0], drawn[0]]), np.concatenate([fonts[1], drawn[1]])

    return training_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", help="as handwriting_study's")
    parser.add_argument("--composed", type=float, default=0.5,
                        help="share of the written training digits composed from strokes")
    parser.add_argument("--out", default="reports/stroke_study.jsonl")
    args = parser.parse_args()
    if not 0.0 <= args.composed <= 1.0:
        parser.error("--composed is a share of the written digits: give 0 to 1")
    handwriting.training_digits = mixed_training_digits(args.composed)
    handwriting_study.run(argparse.Namespace(
        variants=args.variants, out=args.out, dataset="mnist", ensemble=False,
        extra={"composed": args.composed},
        sets={"composed_held_out": composed_digits(2000, seed=HELD_OUT_SEED)}))


if __name__ == "__main__":
    main()
