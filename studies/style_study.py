"""Can drawn-in writing styles teach an MNIST model other people's 1s, 7s and 9s?

Semeion's writers (and many outside the United States) put a long flag and often a foot on the
1, a bar across the 7, and curl the 9's tail back to the left like a g; MNIST's writers rarely do,
and no affine or elastic distortion makes those strokes. This study draws them onto MNIST's own
training digits: a flag from the top of a 1 down to the left (and a foot under it), a bar across
the middle of a 7's stem, a hook from the end of a 9's tail back left and up. A share of the
chosen classes' digits is restyled before predict renders them (the predict-view half of each
epoch, `Recipe.predict_view`), so every restyled digit is still seen as written, too. Then it
trains and scores exactly as `handwriting_study.py` does (MNIST test as given and through
predict, Semeion, which is only measured), one JSON line per variant.

    .venv/bin/python -m studies.style_study --styles 179 cnn:epochs=12
    .venv/bin/python -m studies.style_study --styles 179 --show styles.png   # look first
"""

from __future__ import annotations

import argparse
import sys
import types

import numpy as np
from PIL import Image, ImageDraw

from keras_digits.data import datasets
from keras_digits.training import (
    renderings,
    train,
)

UPSCALE = 4  # strokes are drawn at 4x and box-filtered down, so they are antialiased like MNIST's


def stroke_width(image: np.ndarray) -> float:
    """The digit's pen width in pixels: the median length of its horizontal ink runs."""
    ink = np.pad(image > 0.5, ((0, 0), (1, 1)))
    edges = np.diff(ink.astype(np.int8), axis=1)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    runs = ends[1] - starts[1]
    return float(np.median(runs)) if len(runs) else 2.0


def stroke_end(image: np.ndarray, top: bool) -> tuple[float, float]:
    """(x, y) of the digit's topmost or bottommost ink: the middle of that row's ink."""
    rows = np.flatnonzero(image.max(axis=1) > 0.3)
    row = rows[0] if top else rows[-1]
    return float(np.flatnonzero(image[row] > 0.3).mean()), float(row)


def draw_strokes(image: np.ndarray, polylines: list[list[tuple[float, float]]],
                 width: float) -> np.ndarray:
    """The image with these pen strokes added (white ink on black, values in [0, 1])."""
    size = image.shape[0] * UPSCALE
    canvas = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(canvas)
    radius = width * UPSCALE / 2
    for points in polylines:
        scaled = [((x + 0.5) * UPSCALE, (y + 0.5) * UPSCALE) for x, y in points]
        pen.line(scaled, fill=255, width=max(1, round(width * UPSCALE)), joint="curve")
        for x, y in (scaled[0], scaled[-1]):  # round pen ends
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    strokes = canvas.resize(image.shape[::-1], Image.Resampling.BOX)
    return np.maximum(image, np.asarray(strokes, dtype=np.float32) / 255.0)


def curve(start, control, end, points: int = 12) -> list[tuple[float, float]]:
    """A quadratic Bezier curve as a polyline."""
    t = np.linspace(0.0, 1.0, points)[:, None]
    start, control, end = map(np.asarray, (start, control, end))
    line = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t ** 2 * end
    return [tuple(point) for point in line]


def restyle(image: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray | None:
    """A 1, 7 or 9 (float (28, 28), white on black) in a continental style; None for others."""
    rows = np.flatnonzero(image.max(axis=1) > 0.3)
    cols = np.flatnonzero(image.max(axis=0) > 0.3)
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    pen = stroke_width(image) * rng.uniform(0.8, 1.1)
    if label == 1:  # a flag down to the left from the top, and half the time a foot
        x, y = stroke_end(image, top=True)
        length, angle = height * rng.uniform(0.2, 0.45), np.radians(rng.uniform(30, 60))
        strokes = [[(x, y), (x - length * np.cos(angle), y + length * np.sin(angle))]]
        if rng.random() < 0.5:
            x, y = stroke_end(image, top=False)
            half = height * rng.uniform(0.15, 0.3)
            strokes.append([(x - half, y), (x + half, y)])
    elif label == 7:  # a bar across the stem, a little below the middle
        y = rows[0] + height * rng.uniform(0.45, 0.6)
        stem = np.flatnonzero(image[int(round(y))] > 0.3)
        if not len(stem):
            return None
        half = width * rng.uniform(0.15, 0.3)
        strokes = [[(stem.mean() - half, y), (stem.mean() + half, y)]]
    elif label == 9:  # the tail's end hooks back to the left and up, like a g
        x, y = stroke_end(image, top=False)
        size = height * rng.uniform(0.25, 0.45)
        strokes = [curve((x, y), (x - 0.3 * size, y + 0.35 * size), (x - size, y - 0.1 * size))]
    else:
        return None
    return draw_strokes(image, strokes, pen)


def restyle_set(images: np.ndarray, labels: np.ndarray, classes: str, share: float,
                seed: int = 0) -> np.ndarray:
    """uint8 (N, 28, 28, 1) digits with a `share` of those of `classes` restyled."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    chosen = np.flatnonzero(np.isin(labels, [int(c) for c in classes]))
    for i in chosen[rng.random(len(chosen)) < share]:
        styled = restyle(images[i, ..., 0] / 255.0, int(labels[i]), rng)
        if styled is not None:
            out[i, ..., 0] = np.clip(np.round(styled * 255), 0, 255).astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", default="179", help="which digits to restyle, e.g. 179 or 9")
    parser.add_argument("--share", type=float, default=0.5,
                        help="share of those digits restyled (default 0.5)")
    parser.add_argument("--show", metavar="PNG",
                        help="save 24 training digits and their restyled versions, and stop")
    args, rest = parser.parse_known_args()

    train_x, train_y = datasets.split(datasets.load_arrays("mnist")).train
    if args.show:
        picked = np.flatnonzero(np.isin(train_y, [int(c) for c in args.styles]))[:24]
        styled = restyle_set(train_x[picked], train_y[picked], args.styles, share=1.0)
        sheet = np.concatenate([np.concatenate([train_x[picked, ..., 0], styled[..., 0]], 1)
                                [i] for i in range(len(picked))], 1)
        Image.fromarray(sheet).save(args.show)
        return

    def restyled_view(images: np.ndarray, folder=None) -> np.ndarray:
        """Training's predict-view renderings, of the restyled training digits."""
        if images.shape == train_x.shape and np.array_equal(images, train_x):
            images = restyle_set(images, train_y, args.styles, args.share)
        return renderings.predict_view(images, folder)

    train.views = types.SimpleNamespace(predict_view=restyled_view)
    from studies import handwriting_study

    sys.argv = [sys.argv[0], *rest]
    handwriting_study.main()


if __name__ == "__main__":
    main()
