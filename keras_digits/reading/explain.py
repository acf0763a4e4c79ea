"""Explain stage: `python -m keras_digits.explain IMAGE... [--model cnn|...|all]`.

Why did a model read this 9 as a 3? For every digit of every image, each model's answer and an
evidence map: which ink pushed the model towards its answer and which towards its runner-up.
The map comes from occlusion: a small square of paper is laid over the digit at every position
and the change in the log-odds of the answer against the runner-up is shared among the ink
pixels it covered. It needs nothing but the exported ONNX file, so `explain` runs with the same
install as `predict` (onnxruntime, numpy, Pillow), on any model, and what it shows is what the
file does. For the linear model the page also shows its ten weight templates (`templates`),
measured through the file the same way: a linear model's log-odds change by the same amount for
a pixel of ink whatever else is on the page.

Faithful by measurement (studies/explain_study.py, docs/RESULTS.md): deleting the ink the map
ranks highest lowers the answer's probability far more than deleting as much ink at random, and
the map of a model with re-initialised weights does not resemble the trained model's.

The page and its PNGs are written to a staging folder and swapped into `reports/explain/` only
when every image has been explained; images go through predict's preprocessing (the page shows
the 28x28 each model saw), and bad files get predict's one-line errors.
"""

from __future__ import annotations

import html
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_digits.core import atomic
from keras_digits.core.cli import Parser, UserError, run_cli
from keras_digits.core.names import DATASET_NAMES, MODEL_NAMES, class_names
from keras_digits.reading.reader import DigitReader, resolve_model_path

PATCH = 3  # side of the square of paper laid over the digit, in 28x28 pixels
EPSILON = 1e-7  # probabilities are clipped to this before their logarithm
SCALE = 8  # pixels per input pixel in the PNGs


@dataclass(frozen=True)
class Evidence:
    """One model's answer for one 28x28 input and the map of why."""

    answer: int
    rival: int  # the runner-up
    probability: float
    rival_probability: float
    map: np.ndarray  # (28, 28): > 0 pushed towards the answer, < 0 towards the rival


def log_odds(probabilities: np.ndarray, answer: int, rival: int) -> np.ndarray:
    """log p(answer) - log p(rival), for each row of probabilities."""
    p = np.clip(probabilities, EPSILON, 1.0)
    return np.log(p[:, answer]) - np.log(p[:, rival])


def occluded(pixels: np.ndarray, patch: int = PATCH) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Copies of a (28, 28, 1) input with a patch x patch square of paper (0) laid over it, at
    every position where the square covers some ink, and those positions (top, left)."""
    size = pixels.shape[0]
    ink = pixels[..., 0] > 0
    positions = [(y, x) for y in range(size - patch + 1) for x in range(size - patch + 1)
                 if ink[y:y + patch, x:x + patch].any()]
    copies = np.repeat(pixels[None], len(positions), axis=0)
    for k, (y, x) in enumerate(positions):
        copies[k, y:y + patch, x:x + patch] = 0.0
    return copies, positions


def evidence(classifier, pixels: np.ndarray, patch: int = PATCH) -> Evidence:
    """The occlusion evidence map of one (28, 28, 1) input (0-255) for `classifier` (a callable
    from (N, 28, 28, 1) pixels to (N, C) probabilities): each square's change in log-odds,
    shared among the ink pixels it covered in proportion to their ink."""
    probabilities = classifier(pixels[None].astype(np.float32))[0]
    answer, rival = (int(i) for i in np.argsort(-probabilities)[:2])
    copies, positions = occluded(pixels.astype(np.float32), patch)
    evidence_map = np.zeros(pixels.shape[:2], np.float64)
    if positions:
        before = log_odds(probabilities[None], answer, rival)[0]
        drops = before - log_odds(classifier(copies), answer, rival)
        ink = pixels[..., 0].astype(np.float64)
        for drop, (y, x) in zip(drops, positions, strict=True):
            covered = ink[y:y + patch, x:x + patch]
            evidence_map[y:y + patch, x:x + patch] += drop * covered / covered.sum()
    return Evidence(answer, rival, float(probabilities[answer]),
                    float(probabilities[rival]), evidence_map)


def templates(classifier, size: int = 28) -> np.ndarray:
    """(C, size, size): how much one full pixel of ink at each place raises each class's
    log-probability, relative to the classes' mean, measured through the file. For a linear
    model this is its weight matrix (up to the calibration temperature), whatever it was
    trained with; for any other model, the same probe from a blank page."""
    blank = np.zeros((1, size, size, 1), np.float32)
    dots = np.zeros((size * size, size, size, 1), np.float32)
    dots.reshape(size * size, -1)[np.arange(size * size), np.arange(size * size)] = 255.0
    base = np.log(np.clip(classifier(blank), EPSILON, 1.0))
    rise = np.log(np.clip(classifier(dots), EPSILON, 1.0)) - base  # (pixels, C)
    rise -= rise.mean(axis=1, keepdims=True)
    return rise.T.reshape(-1, size, size)


def deletion_drop(classifier, pixels: np.ndarray, ranking: np.ndarray, answer: int,
                  share: float = 0.1) -> float:
    """How much p(answer) falls when the `share` of the ink pixels that `ranking` (28, 28)
    ranks highest are set to paper: the deletion test of an evidence map."""
    ink = np.flatnonzero(pixels[..., 0].ravel() > 0)
    count = max(1, round(share * len(ink)))
    chosen = ink[np.argsort(-ranking.ravel()[ink], kind="stable")[:count]]
    deleted = pixels.astype(np.float32).copy()
    deleted.reshape(-1)[chosen] = 0.0
    before, after = classifier(np.stack([pixels.astype(np.float32), deleted]))[:, answer]
    return float(before - after)


# ---- inside the models ---------------------------------------------------------------------

CHANNELS = 8  # feature maps shown per convolutional layer: the most active ones
UNITS = 6  # hidden units shown per dense layer: the most active ones


@dataclass(frozen=True)
class Layer:
    """One hidden layer's response to one input: conv maps (C, H, W) or dense units (U,)."""

    name: str
    kind: str  # "conv" or "dense"
    values: np.ndarray
    templates: np.ndarray | None = None  # (U, 28, 28) input weights of a first dense layer


class Inside:
    """A model's "inside" file (deploy/inside.py): its hidden layers for any input.

    Dense layers come out before their ReLU, so a first dense layer's input weights can be
    probed through the file: its units are linear in the pixels there."""

    def __init__(self, path: Path) -> None:
        import json

        import onnxruntime as ort

        from keras_digits.core.contract import INSIDE_KEY

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.layers = json.loads(self.session.get_modelmeta().custom_metadata_map[INSIDE_KEY])
        self._templates: dict[str, np.ndarray] = {}

    def _run(self, pixels: np.ndarray) -> list[np.ndarray]:
        return self.session.run([layer["output"] for layer in self.layers],
                                {self.input_name: pixels.astype(np.float32)})

    def first_dense_templates(self) -> np.ndarray | None:
        """(U, 28, 28): how much a full pixel of ink at each place raises each unit of the
        first dense layer, if the model's first hidden layer is dense (the MLP)."""
        if not self.layers or self.layers[0]["kind"] != "dense":
            return None
        name = self.layers[0]["layer"]
        if name not in self._templates:
            dots = np.zeros((785, 28, 28, 1), np.float32)  # a blank page, then each pixel inked
            dots.reshape(785, -1)[np.arange(1, 785), np.arange(784)] = 255.0
            units = self._run(dots)[0]
            rise = (units[1:] - units[:1]) / 255.0  # (pixels, units)
            self._templates[name] = rise.T.reshape(-1, 28, 28)
        return self._templates[name]

    def __call__(self, pixels: np.ndarray) -> list[Layer]:
        """The hidden layers' response to one (28, 28, 1) input; dense units after ReLU."""
        outputs = self._run(pixels[None])
        found = []
        for k, (layer, value) in enumerate(zip(self.layers, outputs, strict=True)):
            if layer["kind"] == "dense":
                found.append(Layer(layer["layer"], "dense", np.maximum(value[0], 0.0),
                                   self.first_dense_templates() if k == 0 else None))
            else:
                found.append(Layer(layer["layer"], "conv", value[0]))
        return found


def strongest(layer: Layer, count: int) -> np.ndarray:
    """The indices of a layer's most active channels (by mean) or units, strongest first."""
    strength = layer.values.reshape(len(layer.values), -1).astype(np.float64).mean(axis=1)
    return np.argsort(-strength, kind="stable")[:count]


def feature_map_rgb(values: np.ndarray, top: float) -> np.ndarray:
    """One feature map in shades of grey: black where the channel responds most (to `top`)."""
    level = 255.0 * (1.0 - np.clip(values / max(top, 1e-12), 0.0, 1.0))
    return np.repeat(level[..., None], 3, axis=2).astype(np.uint8)


# ---- the page ------------------------------------------------------------------------------

def _png(rgb: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(rgb).resize((rgb.shape[1] * SCALE, rgb.shape[0] * SCALE),
                                Image.Resampling.NEAREST).save(path, format="PNG")


def digit_rgb(pixels: np.ndarray) -> np.ndarray:
    """The 28x28 the model saw, as dark ink on white paper."""
    gray = (255.0 - pixels[..., 0]).clip(0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def evidence_rgb(pixels: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The evidence over a pale copy of the digit: red towards the answer, blue towards the
    runner-up, deeper for more (scaled to the map's own largest value)."""
    pale = 255.0 - 0.35 * pixels[..., 0:1].astype(np.float64)
    rgb = np.repeat(pale, 3, axis=2)
    strength = np.abs(values) / max(float(np.abs(values).max()), 1e-12)
    colour = np.where(values[..., None] >= 0, [214.0, 39.0, 40.0], [31.0, 119.0, 180.0])
    alpha = strength[..., None]
    return (rgb * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)


def template_rgb(template: np.ndarray) -> np.ndarray:
    """A weight template: red where ink raises the class, blue where it lowers it."""
    return evidence_rgb(np.zeros((*template.shape, 1)), template)


@dataclass
class Explained:
    """One digit of one image: what every model made of it."""

    image: str
    digit: int  # its place in the number, from 1; 0 for an image read as one digit
    pixels: np.ndarray
    evidence: dict[str, Evidence]
    inside: dict[str, list[Layer]] = field(default_factory=dict)


def inside_html(folder: Path, k: int, item: Explained) -> str:
    """The hidden layers of each model for digit `k`, as PNGs and a block of HTML."""
    blocks = []
    for model, layers in item.inside.items():
        rows = []
        for layer in layers:
            chosen = strongest(layer, CHANNELS if layer.kind == "conv" else UNITS)
            cells = []
            for c in chosen.tolist():
                png = f"{k}.{model}.{layer.name}.{c}.png"
                if layer.kind == "conv":
                    _png(feature_map_rgb(layer.values[c], float(layer.values.max())),
                         folder / png)
                    cells.append(f'<img src="{png}" class=map alt="{layer.name} channel {c}" '
                                 f'title="channel {c}">')
                elif layer.templates is not None:
                    _png(evidence_rgb(item.pixels, layer.templates[c] * item.pixels[..., 0]),
                         folder / png)
                    cells.append(f'<figure><img src="{png}" alt="unit {c}"><figcaption>unit '
                                 f"{c}: {layer.values[c]:.1f}</figcaption></figure>")
                else:
                    cells.append(f"<span class=unit>unit {c}: {layer.values[c]:.1f}</span>")
            rows.append(f"<tr><th>{html.escape(layer.name)}</th><td class=inside>"
                        f"{''.join(cells)}</td></tr>")
        if rows:
            blocks.append(f"<h3>{html.escape(item.image)}"
                          f"{f' · digit {item.digit}' if item.digit else ''}: {model}</h3>"
                          f"<table>{''.join(rows)}</table>")
    return "\n".join(blocks)


def write_page(folder: Path, explained: list[Explained], classes: tuple[str, ...],
               linear_templates: np.ndarray | None) -> Path:
    """index.html and its PNGs in `folder` (a staging folder the caller publishes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, item in enumerate(explained):
        _png(digit_rgb(item.pixels), folder / f"{k}.input.png")
        cells = [f'<td><img src="{k}.input.png" alt="the 28x28 input"><br>'
                 f"{html.escape(item.image)}{f' · digit {item.digit}' if item.digit else ''}"
                 "</td>"]
        for name, found in item.evidence.items():
            _png(evidence_rgb(item.pixels, found.map), folder / f"{k}.{name}.png")
            cells.append(
                f'<td><img src="{k}.{name}.png" alt="{name} evidence"><br><b>{name}</b>: '
                f"{html.escape(classes[found.answer])} {100 * found.probability:.1f}% "
                f"<span class=rival>(not {html.escape(classes[found.rival])} "
                f"{100 * found.rival_probability:.1f}%)</span></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    insides = [inside_html(folder, k, item) for k, item in enumerate(explained) if item.inside]
    parts = [
        "<!doctype html><meta charset=utf-8><title>Why each model read what it read</title>",
        "<style>body{font-family:sans-serif;margin:2em}td{text-align:center;padding:6px;"
        "vertical-align:top}img{image-rendering:pixelated;border:1px solid #ccc}"
        ".rival{color:#1f77b4}img.map{width:56px;height:56px;margin:1px}"
        "td.inside{text-align:left}figure{display:inline-block;margin:2px}"
        "figure img{width:84px;height:84px}"
        ".unit{display:inline-block;margin:0 6px}</style>",
        "<h1>Why each model read what it read</h1>",
        "<p>Each map is the model's evidence: <b style=color:#d62728>red</b> ink pushed it "
        "towards its answer, <b style=color:#1f77b4>blue</b> ink towards its runner-up. A "
        f"{PATCH}x{PATCH} square of paper was laid over the digit at every position, and the "
        "change in the log-odds of the answer against the runner-up shared among the ink it "
        "covered (occlusion, computed from the exported ONNX files).</p>",
        f"<table>{''.join(rows)}</table>",
    ]
    if insides:
        parts += ["<h2>Inside the models</h2>",
                  f"<p>For the convolutional models, each layer's {CHANNELS} most active "
                  "feature maps (dark where the filter found its pattern), from the first "
                  "layer, which finds edges and strokes, to the last, which finds parts of "
                  f"digits. For the MLP, the {UNITS} hidden units of its first layer that this "
                  "digit excites most: each unit's weights over the digit's ink (red ink "
                  "excites the unit, blue ink calms it), and how strongly it fired.</p>",
                  *insides]
    if linear_templates is not None:
        for c, template in enumerate(linear_templates):
            _png(template_rgb(template), folder / f"template.{c}.png")
        cells = "".join(f'<td><img src="template.{c}.png" alt="template {name}"><br>'
                        f"{html.escape(name)}</td>" for c, name in enumerate(classes))
        parts += ["<h2>What the linear model learned: one template per class</h2>",
                  "<p>Red: a pixel of ink there raises the class; blue: it lowers it. The "
                  "linear model scores a digit by how much of its ink lies on each template's "
                  "red.</p>", f"<table><tr>{cells}</tr></table>"]
    index = folder / "index.html"
    index.write_text("\n".join(parts) + "\n")
    return index


# ---- the command ---------------------------------------------------------------------------

def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.explain",
                    description="Show why each model read what it read: evidence maps from the "
                                "exported ONNX files (onnxruntime only).")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", nargs="+", default=["all"], metavar="MODEL",
                        help="'all' (every exported model, the default), or model names or "
                             ".onnx files")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES)
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--single", action="store_true",
                        help="read each image as one digit instead of a number")
    parser.add_argument("--out-dir", default="reports/explain",
                        help="where the page and its PNGs go (replaced as a whole)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def insides(models: list[str], dataset: str, export_dir: str) -> dict[str, Inside]:
    """The inside file of each model that has one (`export` writes them)."""
    from keras_digits.core import artifacts

    found = {}
    for model in (m for m in models if m != "all") if models != ["all"] else MODEL_NAMES:
        path = artifacts.inside_path(resolve_model_path(model, dataset, export_dir))
        if not path.is_file():
            continue
        try:
            layers = Inside(path)
        except Exception as exc:  # noqa: BLE001 (any damage: explain goes on without it)
            print(f"warning: {path} is not a usable inside file ({str(exc).splitlines()[0]}); "
                  "run `python -m keras_digits.export` again to see inside the model",
                  file=sys.stderr)
            continue
        if layers.layers:  # a linear model has no hidden layer to show
            found[Path(model).name.removesuffix(".onnx")] = layers
    return found


def readers(models: list[str], dataset: str, export_dir: str) -> dict[str, DigitReader]:
    """One reader per model asked for; `all` is every model exported (at least one)."""
    if models == ["all"]:
        found = [name for name in MODEL_NAMES
                 if resolve_model_path(name, dataset, export_dir).is_file()]
        if not found:
            raise UserError(f"no model is exported in {Path(export_dir) / dataset}; run "
                            "`python -m keras_digits.export all` first or pass --export-dir")
        models = found
    return {Path(m).name.removesuffix(".onnx"): DigitReader(m, dataset, export_dir)
            for m in models}


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    models = readers(args.model, args.dataset, args.export_dir)
    inside = {name: found for name, found in insides(args.model, args.dataset,
                                                     args.export_dir).items() if name in models}
    first = next(iter(models.values()))
    classes = first.classes
    if any(reader.classes != classes for reader in models.values()):
        raise UserError("the models read different classes; explain models of one dataset")
    single = args.single or classes != class_names("mnist")
    explained, failures = [], 0
    for name in args.images:
        try:  # the first model reads the image: every model sees the same 28x28 inputs
            readings = [first.read(name)] if single else first.read_number(name).digits
        except UserError as exc:
            if args.debug:
                raise
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        for k, reading in enumerate(readings):
            found = {model: evidence(reader.classifier, reading.pixels)
                     for model, reader in models.items()}
            explained.append(Explained(
                name, k + 1 if len(readings) > 1 else 0, reading.pixels, found,
                {model: layers(reading.pixels) for model, layers in inside.items()}))
            said = "  ".join(f"{model} {classes[e.answer]} ({100 * e.probability:.1f}%)"
                             for model, e in found.items())
            print(f"{name}{f' digit {k + 1}' if len(readings) > 1 else ''}: {said}")
    if not explained:
        return 1
    linear = models.get("linear")
    out = Path(args.out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(out) as staging:
            index = write_page(staging, explained, classes,
                               templates(linear.classifier) if linear else None)
    except OSError as exc:
        raise UserError(f"cannot write the page to {out}: {exc.strerror or exc}; pass a "
                        "writable --out-dir") from None
    print(f"page: {out / index.name}  ({time.perf_counter() - started:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
