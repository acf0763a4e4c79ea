"""How well the exported models read the generated drawings of `tests/drawings.py`.

Every digit in every style and font, read through predict's preprocessing and, for comparison,
through a naive grey-invert-resize; prints one row per model and the cnn's score per style.

    .venv/bin/python -m studies.read_drawings [--export-dir export] [--models cnn alexnet mlp]
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

from keras_digits.imaging import (
    normalize,
)
from keras_digits.reading.reader import OnnxClassifier, resolve_model_path
from tests.drawings import VARIANTS, make_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--models", nargs="+", default=["cnn", "alexnet", "mlp", "linear"])
    args = parser.parse_args()
    items = make_set(Path(tempfile.mkdtemp(prefix="drawings-")))
    inputs = [(normalize.load_digit(p), normalize.naive_resize(p), d, v) for p, d, v in items]
    print(f"{len(items)} drawings: {len(VARIANTS)} styles x 10 digits x "
          f"{len(items) // (10 * len(VARIANTS))} fonts\n")
    print("| model | MNIST-style preprocessing | naive resize |\n|---|---:|---:|")
    per_style = {}
    for name in args.models:
        classifier = OnnxClassifier(resolve_model_path(name, "mnist", args.export_dir))
        right, naive, styles = 0, 0, Counter()
        for pixels, squashed, digit, variant in inputs:
            hit = int(classifier(pixels[None])[0].argmax() == digit)
            right += hit
            styles[variant] += hit
            naive += int(classifier(squashed[None])[0].argmax() == digit)
        per_style[name] = styles
        n = len(inputs)
        print(f"| {name} | {right} / {n} ({100 * right / n:.1f}%) | "
              f"{naive} / {n} ({100 * naive / n:.1f}%) |")
    first = args.models[0]
    total = len(inputs) // len(VARIANTS)
    print(f"\n{first} per style (of {total}): " + ", ".join(
        f"{v} {per_style[first][v]}" for v in VARIANTS))


if __name__ == "__main__":
    main()
