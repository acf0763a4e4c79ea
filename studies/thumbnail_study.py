"""Which tone is the paper in a thumbnail? Counting pieces against asking the model.

    .venv/bin/python -m studies.thumbnail_study [--model cnn alexnet] [--count 2000]

Tight crops of MNIST test digits shrunk to 8, 10, 12 and 16 pixels, and Semeion's scans at 8
pixels (2x2 block means, as an 8x8 grid of grey levels) and 12 and 16, each as dark ink on light
paper and as light ink on dark, read through `DigitReader.read_many` (the predict path) four
ways: the tone told by counting pieces alone (no thumbnail rule), by the model whenever the
border leaves it open (margin 0), by the rule in `contract.THUMBNAIL_POLARITY` (the model where
it is surer by more than the margin), and with the true tone given (the ceiling). How often
the piece count alone errs on larger tight crops is `studies/polarity_study.py`'s question.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from keras_digits.core.contract import THUMBNAIL_POLARITY
from keras_digits.data import datasets, folders
from keras_digits.imaging import (
    find_ink,
    normalize,
)
from keras_digits.imaging.raster import resize
from keras_digits.reading.reader import DigitReader
from studies.format_study import answers


def tight(scan: np.ndarray) -> np.ndarray:
    """A scan (dark ink on light, in [0, 1]) cropped to its ink."""
    ink = scan < 0.5
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return scan[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def shrunk(scan: np.ndarray, side: int) -> np.ndarray:
    """The scan with its longer side box-averaged down to `side` pixels."""
    height, width = scan.shape
    factor = side / max(height, width)
    return resize(scan, (max(1, round(width * factor)), max(1, round(height * factor))))


def thumbnail_sets(count: int) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """Named sets of dark-on-light thumbnails with their labels."""
    arrays = datasets.load_arrays("mnist")
    mnist = [tight(1.0 - d[..., 0].astype(np.float32) / 255)
             for d in arrays.test_images[:count]]
    mnist_labels = arrays.test_labels[:count]
    masks, semeion_labels = folders.load_semeion()
    semeion = [1.0 - m.astype(np.float32) for m in masks]
    sets = {f"MNIST test, {side} px": ([shrunk(d, side) for d in mnist], mnist_labels)
            for side in (8, 10, 12, 16)}
    sets["Semeion, 8x8 block means"] = (
        [s.reshape(8, 2, 8, 2).mean(axis=(1, 3)) for s in semeion], semeion_labels)
    sets["Semeion, 12 px"] = ([shrunk(s, 12) for s in semeion], semeion_labels)
    sets["Semeion, 16 px (as scanned)"] = (semeion, semeion_labels)
    return sets


def known_tone(reader: DigitReader, images: list[np.ndarray], paper_light: bool) -> np.ndarray:
    """The labels read with the paper's true tone given."""
    pixels = np.stack([normalize.to_pixels(find_ink.ink_map(g, paper_light=paper_light))
                       for g in images])
    return reader.classifier(pixels).argmax(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["cnn", "alexnet"])
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--count", type=int, default=2000, help="MNIST test digits to use")
    args = parser.parse_args()
    rule = dict(THUMBNAIL_POLARITY)
    ways = {"pieces alone": {"BELOW": 0}, "model, margin 0": {"MARGIN": 0.0},
            f"the rule (margin {rule['MARGIN']})": {}}
    results = []
    print("| set | ink | model | " + " | ".join(ways) + " | true tone given |")
    print("|---|---|---|" + "---:|" * (len(ways) + 1))
    for name, (dark_on_light, labels) in thumbnail_sets(args.count).items():
        for ink, images in (("dark", dark_on_light), ("light", [1.0 - g for g in dark_on_light])):
            for model in args.model:
                reader = DigitReader(model, export_dir=args.export_dir)
                row = {"set": name, "ink": ink, "model": model}
                for way, change in ways.items():
                    THUMBNAIL_POLARITY.update(rule | change)  # the reader reads this dict
                    row[way] = 100 * float((answers(reader, images) == labels).mean())
                THUMBNAIL_POLARITY.update(rule)
                truth = known_tone(reader, images, paper_light=ink == "dark")
                row["true tone given"] = 100 * float((truth == labels).mean())
                results.append(row)
                cells = " | ".join(f"{row[k]:.2f}%" for k in [*ways, "true tone given"])
                print(f"| {name} | {ink} | {model} | {cells} |", flush=True)
    print(json.dumps({"count": args.count, "rule": rule}))


if __name__ == "__main__":
    main()
