"""Digits written in a form's box: read, whether cropped at the box's lines or outside them?

    .venv/bin/python -m studies.box_study [--count 300] [--model cnn]

Each MNIST test digit is written in dark ink in a square box (its side 40 to 200 pixels, a
third of it paper around the digit; `tests/drawings.py`'s `in_a_box`) and the image is cropped
at the box's lines, so the box is the whole border, or outside them, so paper shows around the
box. Read through
`DigitReader.read_many` (the predict path), dark on white and inverted, with
`page.without_frame_box` and without it.
"""

from __future__ import annotations

import argparse
import json

from keras_digits.data import datasets
from keras_digits.imaging import page
from keras_digits.reading.reader import DigitReader
from studies.format_study import answers
from tests.drawings import in_a_box

# (side, line width, paper outside the box), all in pixels
LAYOUTS = [(40, 1, 0), (40, 2, 0), (64, 2, 0), (100, 2, 0), (200, 4, 0),
           (40, 1, 2), (64, 1, 2), (100, 2, 4), (200, 4, 20)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="MNIST test digits per layout")
    parser.add_argument("--model", default="cnn")
    args = parser.parse_args()
    arrays = datasets.load_arrays("mnist")
    digits, labels = arrays.test_images[:args.count, ..., 0], arrays.test_labels[:args.count]
    reader = DigitReader(args.model)
    step = page.without_frame_box
    print("| box side, line | paper outside the box | ink | without the step | with it |")
    print("|---|---:|---|---:|---:|")
    for side, line, outside in LAYOUTS:
        pages = [in_a_box(d, side, line, outside) for d in digits]
        for ink, images in (("dark on white", pages), ("light on black", [1 - p for p in pages])):
            cells = []
            for painted in (False, True):
                page.without_frame_box = step if painted else (lambda gray: gray)
                cells.append(100 * float((answers(reader, images) == labels).mean()))
            page.without_frame_box = step
            print(f"| {side} px, {line} px | {outside} px | {ink} | {cells[0]:.1f}% "
                  f"| {cells[1]:.1f}% |", flush=True)
    print(json.dumps({"count": args.count, "model": str(reader.path)}))


if __name__ == "__main__":
    main()
