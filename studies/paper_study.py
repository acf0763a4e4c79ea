"""Digits written on ruled and squared paper: are they read, and read as one digit?

Each MNIST test digit is enlarged and written in dark ink on a page of plain, ruled (a rule every
40 pixels) or squared paper (a square every 24 pixels), slightly noisy, and read as `predict`
reads one digit: the cnn, checked by alexnet for the unsure flag. Per paper it prints how many
are read right, how many are marked unsure (and why: too many marks, or low agreement) and how
many ink maps hold a single mark; then four of those digits at a time are written side by side
as a number and read in number mode (a refused page counts as wrong). `--unmended` reads with
the rule removal of commit 809e638, which cut each stroke where it crossed a rule.

    .venv/bin/python -m studies.paper_study [--count 200] [--unmended]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from PIL import Image

from keras_digits.core.cli import UserError
from keras_digits.data import datasets
from keras_digits.imaging import (
    find_ink,
    page,
    strokes,
)
from keras_digits.reading.reader import DigitReader

DIGIT = 160  # a digit's side on the page, in pixels
NUMBER = 4  # digits per number


def write_page(digits: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A grey page of `kind` paper in [0, 1] with the 28x28 white-on-black digits written on
    it side by side in dark ink."""
    rows, columns = DIGIT + 80, DIGIT * len(digits) + 160
    sheet = np.full((rows, columns), 0.96, dtype=np.float32)
    if kind == "ruled":
        sheet[20::40, :] = 0.6
    elif kind == "squared":
        sheet[10::24, :] = 0.7
        sheet[:, 10::24] = 0.7
    for i, digit in enumerate(digits):
        ink = np.asarray(Image.fromarray(digit).resize((DIGIT, DIGIT), Image.Resampling.BICUBIC),
                         dtype=np.float32) / 255.0
        window = sheet[40:40 + DIGIT, 80 + i * DIGIT:80 + (i + 1) * DIGIT]
        window *= 1.0 - 0.85 * np.clip(ink, 0.0, 1.0)
    return np.clip(sheet + rng.normal(0.0, 0.02, sheet.shape).astype(np.float32), 0.0, 1.0)


def read_number(reader: DigitReader, image: np.ndarray) -> str:
    try:
        return reader.read_number(image).text
    except UserError:  # e.g. "holds 39 separate marks, more than a number of 12 digits"
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="test digits per paper")
    parser.add_argument("--unmended", action="store_true",
                        help="leave strokes cut where they cross a removed rule")
    args = parser.parse_args()
    if args.unmended:
        page.bridge_rules = lambda ink, rules, threshold: None

    arrays = datasets.load_arrays("mnist")
    digits, labels = arrays.test_images[:args.count, ..., 0], arrays.test_labels[:args.count]
    reader = DigitReader("cnn", check="alexnet")
    print(f"{args.count} MNIST test digits per paper, read by the cnn checked by alexnet"
          + (" (strokes left cut at the rules)" if args.unmended else ""))
    print(f"| paper | read right | unsure | for too many marks | one mark "
          f"| {NUMBER}-digit numbers |")
    print("|---|---:|---:|---:|---:|---:|")
    for sheet in ("plain", "ruled", "squared"):
        rng = np.random.default_rng(0)
        pages = [write_page(digit[None], sheet, rng) for digit in digits]
        readings = reader.read_many(pages)
        right = sum(r.label == y for r, y in zip(readings, labels, strict=True))
        reasons = Counter("marks" in (r.reason or "") for r in readings if r.unsure)
        single = sum(len(strokes.marks(find_ink.ink_map(p) > 0.5)[1]) == 1 for p in pages)
        numbers = [slice(i, i + NUMBER) for i in range(0, args.count - NUMBER + 1, NUMBER)]
        whole = sum(read_number(reader, write_page(digits[n], sheet, rng))
                    == "".join(map(str, labels[n])) for n in numbers)
        print(f"| {sheet} | {right} | {sum(r.unsure for r in readings)} | {reasons[True]} "
              f"| {single} | {whole} of {len(numbers)} |")


if __name__ == "__main__":
    main()
