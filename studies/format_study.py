"""How much of the Semeion gap is the scanner's format rather than the writers?

    .venv/bin/python -m studies.format_study [--model cnn alexnet ...] [--export-dir export]

Renders MNIST test digits the way Semeion stores its digits (cropped to the ink, scaled to a
16x16 box, thresholded to black and white: once keeping the aspect ratio and once stretched to
fill the square), as a grey-level 16x16 scan (both ways), and as the 8x8 grid of counts of the
UCI optical digits (17 grey levels), then reads them, and the plain MNIST test digits, through
`DigitReader.read_many` (the predict path: preprocessing and the exported ONNX model). The
same writers in another format: what is lost here is lost to the format, whatever the
handwriting.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from PIL import Image

from keras_digits.core.cli import UserError
from keras_digits.data import datasets
from keras_digits.reading.reader import DigitReader

SIDE = 16  # Semeion's box
INK = 0.35  # the share of full ink that counts as black when thresholding


def scanned(digit: np.ndarray, stretch: bool, side: int = SIDE,
            threshold: bool = True) -> np.ndarray:
    """One MNIST digit (white on black, 0-255) as dark ink on white paper in a side x side box,
    thresholded to black and white or (`threshold=False`) in grey as a grey-level scanner keeps
    it."""
    rows, cols = np.flatnonzero((digit > 60).any(axis=1)), np.flatnonzero((digit > 60).any(axis=0))
    crop = Image.fromarray(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32))
    height, width = crop.height, crop.width
    if stretch:
        size = (side, side)
    else:
        factor = side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = np.asarray(crop.resize(size, Image.Resampling.BILINEAR))
    box = np.zeros((side, side), dtype=np.float32)
    top, left = (side - size[1]) // 2, (side - size[0]) // 2
    box[top:top + size[1], left:left + size[0]] = small
    if not threshold:
        return (255 - np.clip(box, 0, 255)).astype(np.uint8)
    return np.where(box > INK * 255, 0, 255).astype(np.uint8)


def block_counts(digit: np.ndarray) -> np.ndarray:
    """The 8x8 format of the UCI optical digits: a 32x32 black-and-white scan whose 4x4 blocks
    are counted, so each pixel is one of 17 grey levels (dark ink on white again)."""
    ink = scanned(digit, stretch=False, side=32) == 0
    counts = ink.reshape(8, 4, 8, 4).sum(axis=(1, 3))
    return (255 - counts * 255 // 16).astype(np.uint8)


def answers(reader: DigitReader, images: list[np.ndarray]) -> np.ndarray:
    """The label read for each image; -1 where predict refuses the image (a stretched 1 can
    fill its whole box with ink and then shows no paper to find the ink against)."""
    out = []
    for i in range(0, len(images), 500):
        batch = images[i:i + 500]
        try:
            out += [r.label for r in reader.read_many(batch)]
        except UserError:
            for image in batch:
                try:
                    out.append(reader.read(image).label)
                except UserError:
                    out.append(-1)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["mlp", "cnn", "alexnet"])
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--count", type=int, default=10_000, help="MNIST test digits to use")
    args = parser.parse_args()

    arrays = datasets.load_arrays("mnist")
    digits = arrays.test_images[:args.count, ..., 0]
    labels = arrays.test_labels[:args.count]
    formats = {"mnist_test": [255 - d for d in digits],
               "16x16_aspect_kept": [scanned(d, stretch=False) for d in digits],
               "16x16_stretched": [scanned(d, stretch=True) for d in digits],
               "16x16_grey": [scanned(d, stretch=False, threshold=False) for d in digits],
               "16x16_grey_stretched": [scanned(d, stretch=True, threshold=False)
                                        for d in digits],
               "8x8_block_counts": [block_counts(d) for d in digits]}
    for model in args.model:
        reader = DigitReader(model, export_dir=args.export_dir)
        row = {"model": str(reader.path), "digits": len(labels)}
        for name, images in formats.items():
            read = answers(reader, images)
            row[name] = round(100 * float((read == labels).mean()), 2)
            row[f"{name}_refused"] = int((read < 0).sum())
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
