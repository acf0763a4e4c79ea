"""Predict stage: `python -m keras_digits.predict IMAGE... [--model cnn] [--top-k 3] [--json]`.

onnxruntime, numpy and Pillow only — no TensorFlow — so it starts in about a second and runs on
machines where TensorFlow is not installed. Each image is read as a written number (one digit
is a number of one digit) through `reading.reader`: split into digits by its strokes, each digit
through MNIST-style preprocessing, then the exported ONNX model. `--single` takes the whole image
as one digit (and Fashion-MNIST models always do). An answer the model should not be trusted on
is marked unsure. A bad file gets its own one-line error; the others are still answered, and the
exit code is 1 if anything failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from keras_digits.core.cli import Parser, UserError, positive_int, run_cli
from keras_digits.core.names import DATASET_NAMES, class_names
from keras_digits.reading.reader import DigitReader, NumberReading, Reading, resolve_model_path


def save_preview(pixels: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...],
                 destination: Path) -> None:
    """The 28x28 input the model saw, enlarged, beside a bar chart of the probabilities."""
    from PIL import Image, ImageDraw

    from keras_digits.core.atomic import atomic_path

    scale, bar_area = 8, 300
    digit = Image.fromarray(pixels[..., 0].clip(0, 255).astype(np.uint8), "L")
    digit = digit.resize((28 * scale, 28 * scale), Image.Resampling.NEAREST)
    canvas = Image.new("RGB", (28 * scale + bar_area + 20, 28 * scale), "white")
    canvas.paste(digit.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    row = 28 * scale / len(classes)
    best = int(probabilities.argmax())
    for i, (name, p) in enumerate(zip(classes, probabilities, strict=True)):
        y = i * row
        draw.text((28 * scale + 8, y + row / 2 - 6), name[:11], fill="black")
        x0 = 28 * scale + 90
        draw.rectangle([x0, y + 3, x0 + max(1, p * (bar_area - 130)), y + row - 3],
                       fill="#d62728" if i == best else "#1f77b4")
        draw.text((x0 + p * (bar_area - 130) + 4, y + row / 2 - 6), f"{100 * p:.1f}%",
                  fill="black")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination) as tmp:
        canvas.save(tmp, format="PNG")


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.predict",
                    description="Read numbers and digits (or garments) from image files with an "
                                "ONNX model.")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", default="cnn",
                        help="a .onnx file, or a model name in export/<dataset>/ (default: cnn)")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES,
                        help="where to look up a model name (class names come from the model)")
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--top-k", type=positive_int, default=3)
    parser.add_argument("--single", action="store_true",
                        help="read each image as one digit instead of a number")
    parser.add_argument("--check", default="auto", metavar="MODEL",
                        help="a second model whose opinion joins the unsure flag: a name or "
                             ".onnx path, none, or auto (alexnet, or cnn for alexnet, when "
                             "exported)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--save-preview", metavar="DIR",
                        help="write the 28x28 the model saw and a probability chart per image")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def auto_check_partner(model: str | Path) -> str:
    """The model `--check auto` asks for a second opinion: alexnet checks the others, cnn
    checks alexnet (and its int8 file)."""
    base = Path(model).name.removesuffix(".onnx").partition(".")[0]
    return "cnn" if base == "alexnet" else "alexnet"


def check_model(check: str, model: str, dataset: str, export_dir: str) -> str | None:
    """The check model to load: `auto` is the other strong model when it has been exported."""
    if check == "none":
        return None
    if check != "auto":
        return check
    found = resolve_model_path(auto_check_partner(model), dataset, export_dir)
    return str(found) if found.is_file() else None


def _digit_entry(reading: Reading, classes: tuple[str, ...], k: int) -> dict:
    entry = {"top": reading.top(k, classes),
             "probabilities": [round(float(p), 6) for p in reading.probabilities],
             "unsure": reading.unsure}
    if reading.reason:
        entry["reason"] = reading.reason
    if reading.box is not None:
        entry["box"] = list(reading.box)
    return entry


def describe(name: str, number: NumberReading, classes: tuple[str, ...], k: int) -> dict:
    """One image's answer as `--json` prints it (and the HTTP endpoint returns it)."""
    digits = [_digit_entry(d, classes, k) for d in number.digits]
    entry = {"file": name, "number": number.text, "unsure": number.unsure, "digits": digits}
    if number.reason:
        entry["reason"] = number.reason
    if len(digits) == 1:  # one digit: its answer at the top level too
        entry.update({key: digits[0][key] for key in ("top", "probabilities")})
    return entry


def _line(name: str, number: NumberReading, entry: dict) -> str:
    """One line per image: the top-k of a single digit, or the number and each digit's answer."""
    if len(number.digits) == 1:
        said = "   ".join(f"{t['class']} ({100 * t['probability']:.1f}%)" for t in entry["top"])
    else:
        said = f"{number.text}   (" + ", ".join(
            f"{d.name} {100 * d.probability:.1f}%{'?' if d.unsure else ''}"
            for d in number.digits) + ")"
    reasons = number.reasons
    return f"{name}: {said}" + (f"   [unsure: {'; '.join(reasons)}]" if reasons else "")


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    reader = DigitReader(args.model, args.dataset, args.export_dir,
                         check=check_model(args.check, args.model, args.dataset, args.export_dir))
    classes = reader.classes
    single = args.single or classes != class_names("mnist")  # garments come one at a time
    k = min(args.top_k, len(classes))
    if not single:
        _ = reader.verifier  # a broken verifier file is one error, before any image
    results, failures = [], 0
    for name in args.images:
        try:
            number = NumberReading([reader.read(name)]) if single else reader.read_number(name)
        except UserError as exc:
            if args.debug:
                raise
            failures += 1
            results.append({"file": name, "error": str(exc)})
            if not args.json:
                print(f"error: {exc}", file=sys.stderr)
            continue
        entry = describe(name, number, classes, k)
        digits = entry["digits"]
        if args.save_preview:
            for i, reading in enumerate(number.digits):
                suffix = f".{i + 1}" if len(number.digits) > 1 else ""
                preview = Path(args.save_preview) / f"{Path(name).stem}{suffix}.preview.png"
                try:
                    save_preview(reading.pixels, reading.probabilities, classes, preview)
                except OSError as exc:
                    raise UserError(f"cannot write preview to {preview}: "
                                    f"{exc.strerror or exc}; pass a writable --save-preview "
                                    "folder") from None
                digits[i]["preview"] = str(preview)
            if len(digits) == 1:
                entry["preview"] = digits[0]["preview"]
        results.append(entry)
        if not args.json:
            print(_line(name, number, entry))
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
