"""Photos of a page on a desk: does predict read the digit, not the page?

    .venv/bin/python -m studies.desk_study [--model cnn] [--count 200]

Pastes MNIST test digits (dark ink, enlarged to 168 pixels) on a light sheet and photographs it,
in grey at 640x480, on a desk that shows around it: the sheet inside the frame, running off two
edges, filling all but a thin rim, turned 45 degrees, and running off three edges so that only a
strip of desk 5-8 pixels wide shows along the left, top or bottom edge; on a dark desk and on a
mid-tone one. Reads each photo through `DigitReader.read_many` (the predict path) with the desk
steps (`page.without_desk` for a desk, `page.frame_strips` for a thin strip) and
without them, and the same digits on the sheet alone. Then checks that the steps leave lone
digits and scans alone: white-on-black MNIST digits and Semeion's scans, both enlarged ten times
to photo size, and the generated drawings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from keras_digits.data import datasets, folders
from keras_digits.imaging import (
    decode,
    find_ink,
    page,
)
from keras_digits.reading.reader import DigitReader
from studies.format_study import answers
from tests.drawings import SHEET_TONE, desk_photo, make_set

LAYOUTS = {"inside": (140, 60, 500, 420), "off_two_edges": (120, 80, 700, 560),
           "thin_rim": (30, 25, 615, 460), "tilted": None, "strip_left": (8, -20, 700, 520),
           "strip_top": (-20, 5, 700, 520), "strip_bottom": (-20, -20, 700, 472)}


def photo(digit: np.ndarray, layout: str, desk: int) -> np.ndarray:
    """One MNIST digit (white on black, 28x28) written on a sheet on a desk: grey 640x480."""
    ink = np.asarray(Image.fromarray(digit).resize((168, 168), Image.Resampling.BILINEAR),
                     np.float32) / 255
    page = np.asarray(desk_photo(LAYOUTS[layout], desk), np.float32)
    page[156:324, 236:404] = page[156:324, 236:404] * (1 - ink) + 25 * ink
    return page / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--count", type=int, default=200, help="MNIST test digits per layout")
    args = parser.parse_args()
    arrays = datasets.load_arrays("mnist")
    digits = arrays.test_images[:args.count, ..., 0]
    labels = arrays.test_labels[:args.count]
    reader = DigitReader(args.model, export_dir=args.export_dir)
    removal, strips = page.without_desk, page.frame_strips

    def desk_steps(on: bool) -> None:
        page.without_desk = removal if on else (lambda gray: gray)
        page.frame_strips = strips if on else (
            lambda ink, low: np.zeros(ink.shape, dtype=bool))
    row: dict = {"model": str(reader.path), "digits": len(labels)}
    row["sheet_alone"] = round(100 * float((answers(reader, [
        photo(d, "thin_rim", SHEET_TONE) for d in digits]) == labels).mean()), 2)
    for desk in (50, 110):
        for layout in LAYOUTS:
            images = [photo(d, layout, desk) for d in digits]
            for name, on in (("removed", True), ("kept", False)):
                desk_steps(on)
                read = answers(reader, images)
                row[f"desk{desk}_{layout}_{name}"] = round(100 * float((read == labels).mean()), 2)
            desk_steps(True)
        print(json.dumps(row), flush=True)

    def enlarged(image: np.ndarray, method: Image.Resampling) -> np.ndarray:
        return np.asarray(Image.fromarray(image.astype(np.float32)).resize(
            (image.shape[1] * 10, image.shape[0] * 10), method))

    masks, _ = folders.load_semeion()
    with tempfile.TemporaryDirectory() as folder:
        drawn = [decode.read_gray(path) for path, _, _ in make_set(Path(folder))]
    lone = {"mnist_white_on_black_x10": [enlarged(d, Image.Resampling.BILINEAR) / 255
                                         for d in arrays.test_images[:2000, ..., 0]],
            "semeion_x10": [enlarged(1.0 - m.astype(np.float32), Image.Resampling.NEAREST)
                            for m in masks],
            "drawings": drawn}
    changed = {name: sum(not np.array_equal(removal(g), g) for g in images)
               for name, images in lone.items()}
    cleared = []
    page.frame_strips = lambda ink, low: cleared.append(strips(ink, low).any()) or \
        strips(ink, low)
    stripped = {}
    for name, images in lone.items():
        cleared.clear()
        for gray in images:
            find_ink.ink_map(gray)
        stripped[name] = int(sum(cleared))
    desk_steps(True)
    print(json.dumps({"taken_for_a_desk": changed, "taken_for_a_strip": stripped,
                      "of": {name: len(images) for name, images in lone.items()}}), flush=True)


if __name__ == "__main__":
    main()
