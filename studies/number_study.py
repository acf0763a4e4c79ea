"""How often a whole written number is read right: numbers composed from MNIST test digits.

    .venv/bin/python -m studies.number_study [--model cnn] [--count 500] [--no-verifier]
        [--digits 4] [--set JOIN_BELOW=0 ...]

Each number is 2, 4 or 6 MNIST test digits (never seen in training), dark ink on white paper, in
three layouts: separated (gaps of 2-10 pixels, a little vertical jitter), one touching pair (two
neighbours pushed together until their strokes meet), and broken strokes (half the digits lose a
2-pixel band of ink across them, as where a pen skipped). Every number goes through
`DigitReader.read_number`, the predict path: with the one-digit verifier when the export folder
has one (`python -m keras_digits.verifier`); `--no-verifier` measures the older rule. The
single-digit baseline reads the very same digits (cropped, broken where the layout breaks them,
with a 4-pixel margin, enlarged as the number is) one at a time through
`DigitReader.read_many`; with `--scale` it is also given at MNIST's own scale. Per digit is
counted two ways: digit by digit where the number has the right count (a wrong count loses all
its digits), and as one minus the edits (digits inserted, dropped or changed) per true digit.
Also counted:
how often a lone digit (MNIST test, Semeion) is split into more than one piece, which number
mode must not do, and how often numbers composed from the generated drawings of
tests/drawings.py (fonts in plain, thin, thick and rotated styles, separated) are read whole.
`--digits` reads only numbers of those lengths (the others are still drawn, so the numbers read
are the same as in a full run); `--set NAME=VALUE` changes one of contract.SEGMENTATION's
thresholds for the run, to measure what a step adds (SPECK_REACH=0 keeps no speck beside a
stroke, JOIN_BELOW=0 joins nothing); `--scale` enlarges every composed number (and the lone
digits of the baseline) as a photo would; `--misread FILE.npz` keeps the numbers read wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from keras_digits.core import contract
from keras_digits.data import datasets, folders
from keras_digits.data.compose import LAYOUTS, compose, crop, enlarge
from keras_digits.imaging import (
    segment,
    strokes,
)
from keras_digits.reading.predict import check_model
from keras_digits.reading.reader import DigitReader


def drawn_digits(size: int = 24) -> list[tuple[np.ndarray, int]]:
    """The generated drawings of tests/drawings.py (plain, thin, thick and rotated styles, every
    font) as white-on-black digits `size` pixels tall, the way compose() wants them."""
    from PIL import Image

    from tests.drawings import available_fonts, render

    digits = []
    for font in available_fonts():
        for variant in ("plain", "thin", "thick", "rotated"):
            for digit in range(10):
                ink = 255 - np.asarray(render(digit, font, variant, seed=digit).convert("L"))
                ink = crop(np.where(ink > 40, ink, 0))
                scale = size / ink.shape[0]
                shape = (max(1, round(ink.shape[1] * scale)), size)
                digits.append((np.asarray(Image.fromarray(ink).resize(
                    shape, Image.Resampling.BOX)), digit))
    return digits


def edit_distance(read: str, truth: str) -> int:
    """Digits inserted, dropped or changed to turn `read` into `truth` (Levenshtein)."""
    previous = list(range(len(truth) + 1))
    for i, r in enumerate(read, start=1):
        current = [i]
        for j, t in enumerate(truth, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != t)))
        previous = current
    return previous[-1]


def override(settings: list[str]) -> dict:
    """Set segmentation thresholds (NAME=VALUE) where the splitting code reads them."""
    changed = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        if name not in contract.SEGMENTATION or not value:
            raise SystemExit(f"--set {setting}: give NAME=VALUE with a NAME of "
                             f"contract.SEGMENTATION ({', '.join(contract.SEGMENTATION)})")
        changed[name] = type(contract.SEGMENTATION[name])(float(value))
        for module in (strokes, segment):
            if hasattr(module, name):
                setattr(module, name, changed[name])
    return changed


def study(reader: DigitReader, count: int, seed: int, drawn_only: bool = False,
          lengths: tuple[int, ...] = (2, 4, 6), scale: float = 1.0,
          layouts: tuple[str, ...] = LAYOUTS, composed_only: bool = False,
          misread: list | None = None) -> dict:
    arrays = datasets.load_arrays("mnist")
    images, labels = arrays.test_images[..., 0], arrays.test_labels
    rng = np.random.default_rng(seed)
    rows = []
    for length in () if drawn_only else (2, 4, 6):
        for layout in LAYOUTS:
            right = digits_right = digits_total = count_right = edits = 0
            single_right = single_numbers = silent_miscount = unscaled_numbers = 0
            right_unsure = 0
            for _ in range(count):
                chosen = rng.choice(len(images), length, replace=False)
                truth = "".join(str(labels[i]) for i in chosen)
                placed: list[np.ndarray] = []
                image = compose([images[i] for i in chosen], layout, rng, placed)
                if length not in lengths or layout not in layouts:
                    continue  # drawn all the same, so the numbers read match a full run
                number = reader.read_number(enlarge(image, scale))
                right += number.text == truth
                right_unsure += number.text == truth and number.unsure
                if misread is not None and number.text != truth:
                    misread.append({"layout": layout, "truth": truth, "read": number.text,
                                    "unsure": number.unsure, "mnist_test": chosen.tolist(),
                                    "image": image})
                count_right += len(number.digits) == length
                # a digit dropped or split while the answer is not marked unsure: wrong and sure
                silent_miscount += len(number.digits) != length and not number.unsure
                if len(number.digits) == length:
                    digits_right += sum(a == b for a, b in zip(number.text, truth, strict=True))
                digits_total += length
                edits += edit_distance(number.text, truth)
                lone = [255.0 - np.pad(p, 4) for p in placed]
                single = reader.read_many([enlarge(digit, scale) for digit in lone])
                alone = [r.label == labels[i] for r, i in zip(single, chosen, strict=True)]
                single_right += sum(alone)
                single_numbers += all(alone)
                if scale != 1:  # the same digits at MNIST's own scale
                    unscaled_numbers += all(r.label == labels[i] for r, i in zip(
                        reader.read_many(lone), chosen, strict=True))
                else:
                    unscaled_numbers += all(alone)
            if length not in lengths or layout not in layouts:
                continue
            rows.append({"digits": length, "layout": layout, "numbers": count,
                         "whole_number": right / count, "count_right": count_right / count,
                         "per_digit": digits_right / digits_total,
                         "per_digit_edits": 1 - edits / digits_total,
                         "single_digit": single_right / digits_total,
                         "all_digits_right_alone": single_numbers / count,
                         "all_digits_right_alone_unscaled": unscaled_numbers / count,
                         "miscounted_not_unsure": silent_miscount,
                         "right_but_unsure": right_unsure})
            print(f"{length} digits, {layout:9}: whole {100 * right / count:6.2f}%  "
                  f"count right {100 * count_right / count:6.2f}%  per digit "
                  f"{100 * digits_right / digits_total:6.2f}%  by edits "
                  f"{100 * (1 - edits / digits_total):6.2f}%  (alone "
                  f"{100 * single_right / digits_total:6.2f}%, every digit of the number "
                  f"{100 * single_numbers / count:6.2f}%, at MNIST's scale "
                  f"{100 * unscaled_numbers / count:6.2f}%)  miscounted and not unsure "
                  f"{silent_miscount}, read right but unsure {right_unsure}", flush=True)
    if composed_only:
        return {"model": str(reader.path), "seed": seed, "scale": scale, "rows": rows}
    drawn = drawn_digits()
    for length in (2, 4, 6):
        right = 0
        for _ in range(count):
            chosen = rng.choice(len(drawn), length, replace=False)
            image = compose([drawn[i][0] for i in chosen], "separated", rng)
            if length not in lengths:
                continue
            right += reader.read_number(image).text == "".join(str(drawn[i][1]) for i in chosen)
        if length not in lengths:
            continue
        rows.append({"digits": length, "layout": "drawn", "numbers": count,
                     "whole_number": right / count})
        print(f"{length} digits, drawn    : whole {100 * right / count:6.2f}%", flush=True)
    if drawn_only:
        return {"model": str(reader.path), "seed": seed, "rows": rows}
    lone = {"mnist_test": [255.0 - images[i] for i in range(2000)],
            "semeion": [(1.0 - m) * 255.0 for m in folders.load_semeion()[0].astype(np.float32)]}
    splits = {}
    for name, items in lone.items():
        many = sum(len(reader.read_number(img).digits) != 1 for img in items)
        splits[name] = {"images": len(items), "not_one_digit": many}
        print(f"lone digits read as a number ({name}): {many} of {len(items)} not one digit")
    return {"model": str(reader.path), "seed": seed, "rows": rows, "lone_digits": splits}


def save_misread(path: Path, misread: list[dict]) -> None:
    """The misread numbers as one .npz: image_K (each composed number, at MNIST's scale) and a
    JSON `index` of what each was and how it was read."""
    images = {f"image_{k}": row.pop("image") for k, row in enumerate(misread)}
    np.savez_compressed(path, index=np.array(json.dumps(misread)), **images)
    print(f"{len(misread)} misread numbers written to {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--count", type=int, default=500, help="numbers per length and layout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drawn-only", action="store_true",
                        help="only the numbers made of generated drawings")
    parser.add_argument("--no-verifier", action="store_true",
                        help="cut touching digits without the one-digit verifier")
    parser.add_argument("--digits", type=int, nargs="+", choices=(2, 4, 6), default=(2, 4, 6),
                        help="read only numbers of these lengths")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a contract.SEGMENTATION threshold for this run (repeatable)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="enlarge each composed number this many times (bilinear)")
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=LAYOUTS,
                        help="read only these layouts")
    parser.add_argument("--check", default="none", metavar="MODEL",
                        help="a second model for the unsure flag, as predict's --check (auto: "
                             "predict's default; none: the model alone)")
    parser.add_argument("--composed-only", action="store_true",
                        help="only the numbers composed from MNIST test digits")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--misread", metavar="NPZ",
                        help="write the composed numbers read wrong here (images, truth, "
                             "reading, MNIST test indices), to look at")
    args = parser.parse_args()
    changed = override(args.set)
    check = check_model(args.check, args.model, "mnist", args.export_dir)
    reader = DigitReader(args.model, export_dir=args.export_dir, check=check)
    if args.no_verifier:
        reader.verifier = None
    misread: list | None = [] if args.misread else None
    result = study(reader, args.count, args.seed, args.drawn_only, tuple(args.digits),
                   args.scale, tuple(args.layouts), args.composed_only, misread)
    result["verifier"] = reader.verifier is not None
    result["segmentation_changed"] = changed
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if misread is not None:
        save_misread(Path(args.misread), misread)
    return 0


if __name__ == "__main__":
    sys.exit(main())
