"""Predict stage: `python -m keras_digits.predict IMAGE... [--model cnn] [--top-k 3] [--json]`.

onnxruntime, numpy and Pillow only — no TensorFlow — so it starts in about a second and runs on
machines where TensorFlow is not installed. Each image goes through MNIST-style preprocessing
(`keras_digits.preprocess`), then the exported ONNX model. A bad file gets its own one-line error;
the others are still answered, and the exit code is 1 if anything failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from keras_digits import artifacts
from keras_digits.catalog import DATASET_NAMES, class_names
from keras_digits.cli import Parser, UserError, positive_int, run_cli
from keras_digits.contract import CLASSES_KEY, INPUT_SHAPE
from keras_digits.preprocess import load_digit


class OnnxClassifier:
    """An exported model checked for the shape contract: (N, 28, 28, 1) pixels -> (N, C)."""

    def __init__(self, path: Path, dataset: str | None = None) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise UserError(f"model file {path} does not exist; run "
                            "`python -m keras_digits.export all` first or pass --model PATH")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception classes
            raise UserError(f"{path} is not a loadable ONNX model ({type(exc).__name__}); "
                            "pass a .onnx file written by `keras_digits.export`") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape) if len(inputs) == 1 else None
        if shape is None or len(shape) != 4 or shape[1:] != list(INPUT_SHAPE):
            raise UserError(f"{path} expects input {shape}, not (N, 28, 28, 1) pixels; "
                            "pass a model exported by `keras_digits.export`")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        metadata = self.session.get_modelmeta().custom_metadata_map
        if CLASSES_KEY in metadata:
            self.classes = tuple(metadata[CLASSES_KEY].split("|"))
        else:
            self.classes = class_names(dataset or "mnist")
        out_shape = outputs[0].shape
        if len(out_shape) != 2 or out_shape[1] != len(self.classes):
            raise UserError(f"{path} outputs {out_shape}, not one probability per class; "
                            "pass a model exported by `keras_digits.export`")

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: pixels})[0]


def resolve_model_path(model: str, dataset: str, export_dir: str = "export") -> Path:
    """A path as given, or a model name looked up in the export folder."""
    if model.endswith(".onnx") or Path(model).exists():
        return Path(model)
    return artifacts.onnx_path(export_dir, dataset, model)


def top_k(probabilities: np.ndarray, classes: tuple[str, ...], k: int) -> list[dict]:
    order = np.argsort(-probabilities)[:k]
    return [{"label": int(i), "class": classes[i], "probability": float(probabilities[i])}
            for i in order]


def save_preview(pixels: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...],
                 destination: Path) -> None:
    """The 28x28 input the model saw, enlarged, beside a bar chart of the probabilities."""
    from PIL import Image, ImageDraw

    from keras_digits.atomic import atomic_path

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
                    description="Read digits (or clothes) from image files with an ONNX model.")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", default="cnn",
                        help="a .onnx file, or a model name in export/<dataset>/ (default: cnn)")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES,
                        help="where to look up a model name (class names come from the model)")
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--top-k", type=positive_int, default=3)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--save-preview", metavar="DIR",
                        help="write the 28x28 the model saw and a probability chart per image")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    classifier = OnnxClassifier(resolve_model_path(args.model, args.dataset, args.export_dir),
                                args.dataset)
    k = min(args.top_k, len(classifier.classes))
    results, failures = [], 0
    for name in args.images:
        try:
            pixels = load_digit(name)
            probabilities = classifier(pixels[None])[0]
        except UserError as exc:
            if args.debug:
                raise
            failures += 1
            results.append({"file": name, "error": str(exc)})
            if not args.json:
                print(f"error: {exc}", file=sys.stderr)
            continue
        entry = {"file": name, "top": top_k(probabilities, classifier.classes, k),
                 "probabilities": [round(float(p), 6) for p in probabilities]}
        if args.save_preview:
            preview = Path(args.save_preview) / f"{Path(name).stem}.preview.png"
            try:
                save_preview(pixels, probabilities, classifier.classes, preview)
            except OSError as exc:
                raise UserError(f"cannot write preview to {preview}: {exc.strerror or exc}; "
                                "pass a writable --save-preview folder") from None
            entry["preview"] = str(preview)
        results.append(entry)
        if not args.json:
            ranked = "   ".join(f"{t['class']} ({100 * t['probability']:.1f}%)"
                                for t in entry["top"])
            print(f"{name}: {ranked}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
