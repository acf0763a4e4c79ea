"""Does predict read the same handwriting the same way in another file format?

    .venv/bin/python -m studies.semeion_formats [--model cnn alexnet] [--export-dir export]

The Semeion digits (16x16, black and white, each stretched to fill its box) as other scanners
and exports would deliver them: inverted (light ink on dark), upscaled to 32 pixels without and
with smoothing (grey edges), blurred, given a margin of paper, faded to low contrast, enlarged to
64 pixels and saved as JPEG, enlarged to 128. Each goes through `DigitReader.read_many`, the
predict path. The writers and the model are the same in every row, so a row that reads worse
than "as scanned" points at the preprocessing, not at the handwriting.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

from keras_digits.data import folders
from keras_digits.reading.reader import DigitReader
from studies.format_study import answers


def _resized(gray: np.ndarray, side: int, method: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(gray, "F").resize((side, side), method))


def _blurred(gray: np.ndarray) -> np.ndarray:
    image = Image.fromarray((gray * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.7))
    return np.asarray(image, dtype=np.float32) / 255


def _jpeg(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((gray * 255).astype(np.uint8)).save(buffer, "JPEG", quality=60)
    return buffer.getvalue()


# Each format turns a scanned digit (grey in [0, 1], dark ink on white) into what predict gets.
FORMATS: dict[str, Callable[[np.ndarray], np.ndarray | bytes]] = {
    "as scanned": lambda gray: gray,
    "inverted": lambda gray: 1.0 - gray,
    "32 px, nearest": lambda gray: _resized(gray, 32, Image.Resampling.NEAREST),
    "32 px, bilinear (grey edges)": lambda gray: _resized(gray, 32, Image.Resampling.BILINEAR),
    "blurred (grey edges)": _blurred,
    "a 4-pixel margin of paper": lambda gray: np.pad(gray, 4, constant_values=1.0),
    "low contrast (grey ink on grey paper)": lambda gray: 0.55 + 0.35 * gray,
    "64 px JPEG, quality 60": lambda gray: _jpeg(_resized(gray, 64, Image.Resampling.BILINEAR)),
    "128 px, bilinear": lambda gray: _resized(gray, 128, Image.Resampling.BILINEAR),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["cnn", "alexnet"])
    parser.add_argument("--export-dir", default="export")
    args = parser.parse_args()
    masks, labels = folders.load_semeion()
    scans = [1.0 - mask.astype(np.float32) for mask in masks]
    readers = {model: DigitReader(model, export_dir=args.export_dir) for model in args.model}
    print("| format | " + " | ".join(args.model) + " |\n|---|" + "---:|" * len(args.model))
    for name, convert in FORMATS.items():
        images = [convert(scan) for scan in scans]
        cells = []
        for reader in readers.values():
            read = answers(reader, images)
            cells.append(f"{100 * float((read == labels).mean()):.2f}%"
                         + (f" ({int((read < 0).sum())} refused)" if (read < 0).any() else ""))
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print(json.dumps({"digits": len(labels), "models": [str(r.path) for r in readers.values()]}))


if __name__ == "__main__":
    main()
