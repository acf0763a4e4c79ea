"""Evaluate stage: `python -m keras_digits.evaluate FOLDER|semeion [--model cnn ...]`.

Scores a labelled folder of your own images (see `keras_digits.folders`) through exactly the
predict path: the same preprocessing, the same exported ONNX files, no TensorFlow. Prints the
accuracy, the recall of each class and the commonest confusions per model, and writes
`reports/evaluate/<folder>/index.html` with every misread image beside the 28x28 the model saw.
`semeion` names the vendored Semeion set (1,593 digits by about 80 writers); `held-out-fonts`
the digits written in the handwriting fonts that training never uses (data/handwriting.py: 20
writings of each digit per family, as scans).

An image that cannot be read is listed as failed and left out of the score; the rest are still
scored, and the exit code is then 1.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_digits.analysis.report import confusion_matrix
from keras_digits.core import atomic
from keras_digits.core.cli import Parser, UserError, run_cli
from keras_digits.core.contract import UNSURE
from keras_digits.core.names import DATASET_NAMES, MODEL_NAMES
from keras_digits.data import folders, handwriting
from keras_digits.imaging.decode import read_gray
from keras_digits.imaging.find_ink import candidate_inks
from keras_digits.imaging.normalize import to_pixels
from keras_digits.models import calibration
from keras_digits.reading.reader import OnnxClassifier, resolve_model_path, surest

SEMEION = "semeion"
SEMEION_CACHE = Path(".cache") / SEMEION
FONTS = "held-out-fonts"  # digits written in the handwriting fonts training never uses
FONTS_CACHE = Path(".cache") / FONTS
GALLERY_LIMIT = 300
TOP_CONFUSIONS = 5


@dataclass
class Scored:
    """One model's answers on the readable images of a folder."""

    model: str
    probabilities: np.ndarray

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    def summary(self, labels: np.ndarray, classes: tuple[str, ...]) -> dict:
        n = len(classes)
        matrix = confusion_matrix(labels, self.predictions, n)
        support = matrix.sum(axis=1)
        recall = {classes[c]: (round(100 * matrix[c, c] / support[c], 2) if support[c] else None)
                  for c in range(n)}
        off = [(int(matrix[t, p]), classes[t], classes[p]) for t in range(n) for p in range(n)
               if t != p and matrix[t, p]]
        confusions = [{"true": t, "predicted": p, "count": c}
                      for c, t, p in sorted(off, key=lambda item: -item[0])[:TOP_CONFUSIONS]]
        right = self.predictions == labels
        unsure = self.confidence < UNSURE["BELOW"]  # the one-model rule of predict's flag
        return {"model": self.model,
                "accuracy": round(100 * float(right.mean()), 2),
                "correct": int(right.sum()), "scored": len(labels),
                "recall": recall, "confusions": confusions,
                "ece": round(100 * calibration.expected_calibration_error(self.probabilities,
                                                                        labels), 2),
                "unsure_of_wrong": round(100 * float(unsure[~right].mean()), 1)
                if (~right).any() else None,
                "unsure_of_right": round(100 * float(unsure[right].mean()), 1)
                if right.any() else None}


def resolve_folder(name: str) -> tuple[Path, str]:
    """The folder to score and the name its report goes under (`semeion` and
    `held-out-fonts` are built once)."""
    if name == SEMEION and not Path(name).exists():
        return folders.write_semeion_folder(SEMEION_CACHE), SEMEION
    if name == FONTS and not Path(name).exists():
        return handwriting.write_folder(FONTS_CACHE), FONTS
    path = Path(name)
    return path, path.resolve().name or "folder"


def _png_data_uri(pixels: np.ndarray, height: int) -> str:
    from PIL import Image

    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    width = max(1, round(image.width * height / image.height))
    buffer = io.BytesIO()
    image.resize((width, height), Image.Resampling.NEAREST).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _original(path: Path, height: int = 84) -> str:
    """The image as the user gave it (greyscale), for the gallery."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        image.thumbnail((4 * height, height))
        return _png_data_uri(np.asarray(image.convert("L")), height)


def write_page(destination: Path, title: str, summaries: list[dict], misread: dict[str, list],
               failures: list[dict]) -> None:
    """A static page: the score table, then per model the misread images (original, 28x28)."""
    rows = "".join(
        f"<tr><td>{html.escape(s['model'])}</td><td>{s['accuracy']:.2f}%</td>"
        f"<td>{s['correct']}/{s['scored']}</td><td>{s['ece']:.2f}%</td>"
        f"<td>{s['unsure_of_wrong']}% / {s['unsure_of_right']}%</td><td>"
        + ", ".join(f"{html.escape(c['true'])}&rarr;{html.escape(c['predicted'])} ({c['count']})"
                    for c in s["confusions"]) + "</td></tr>" for s in summaries)
    recall_head = "".join(f"<th>{html.escape(k)}</th>" for k in summaries[0]["recall"])
    recall_rows = "".join(
        f"<tr><td>{html.escape(s['model'])}</td>"
        + "".join(f"<td>{'-' if v is None else f'{v:.0f}%'}</td>" for v in s["recall"].values())
        + "</tr>" for s in summaries)
    galleries = []
    for model, items in misread.items():
        cells = "".join(
            f"<figure><img src='{_original(item['path'])}' alt='original'>"
            f"<img src='{_png_data_uri(item['seen'], 84)}' alt='28x28 seen'>"
            f"<figcaption>{html.escape(item['path'].name)}: {html.escape(item['true'])} "
            f"&rarr; {html.escape(item['predicted'])} ({100 * item['confidence']:.0f}%)"
            f"</figcaption></figure>" for item in items[:GALLERY_LIMIT])
        more = (f"<p>and {len(items) - GALLERY_LIMIT} more</p>"
                if len(items) > GALLERY_LIMIT else "")
        galleries.append(f"<h2>{html.escape(model)}: {len(items)} misread, most confident "
                         f"first (left: the image, right: the 28&times;28 the model saw)</h2>"
                         f"<div class='gallery'>{cells}</div>{more}")
    failed = "".join(f"<li>{html.escape(f['file'])}: {html.escape(f['error'])}</li>"
                     for f in failures)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>
body{{font-family:sans-serif;margin:2em;max-width:80em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}} td:first-child{{text-align:left}}
.gallery{{display:flex;flex-wrap:wrap;gap:.8em}} figure{{margin:0;font-size:.8em}}
img{{image-rendering:pixelated;border:1px solid #999;margin-right:2px;background:#fff}}
</style></head><body><h1>{html.escape(title)}</h1>
<table><tr><th>model</th><th>accuracy</th><th>correct</th><th>ECE (15 bins)</th>
<th>marked unsure: of wrong / of right</th><th>top confusions</th></tr>{rows}
</table><h2>Recall per class</h2><table><tr><th>model</th>{recall_head}</tr>{recall_rows}</table>
{"<h2>Images that could not be read</h2><ul>" + failed + "</ul>" if failures else ""}
{"".join(galleries)}</body></html>"""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(destination) as tmp:
        tmp.write_text(page, encoding="utf-8")


def evaluate_folder(folder: Path, model_paths: dict[str, Path], dataset: str = "mnist"
                    ) -> tuple[list[dict], dict[str, list], list[dict], tuple[str, ...]]:
    """Score every model on the folder: summaries, misread items per model, failed images."""
    classifiers = {name: OnnxClassifier(path, dataset) for name, path in model_paths.items()}
    classes = next(iter(classifiers.values())).classes
    samples = folders.read_labelled_folder(folder, classes)
    options, labels, kept, failures = [], [], [], []  # each image's candidate inputs
    for sample in samples:
        try:
            options.append([to_pixels(ink) for ink in
                            candidate_inks(read_gray(sample.path), sample.path)])
        except UserError as exc:
            failures.append({"file": str(sample.path), "error": str(exc)})
            continue
        labels.append(sample.label)
        kept.append(sample)
    if not kept:
        raise UserError(f"none of the {len(samples)} images in {folder} could be read "
                        f"(first: {failures[0]['error']})")
    truth = np.array(labels)
    open_items = [i for i, choice in enumerate(options) if len(choice) > 1]
    summaries, misread = [], {}
    for name, classifier in classifiers.items():
        batch = np.stack([choice[0] for choice in options])
        picks = surest(classifier, [options[i] for i in open_items])  # as `predict` chooses
        for i, pick in zip(open_items, picks, strict=True):
            batch[i] = options[i][pick]
        probabilities = np.concatenate([classifier(batch[i:i + 512])
                                        for i in range(0, len(batch), 512)])
        scored = Scored(name, probabilities)
        summaries.append(scored.summary(truth, classes))
        wrong = np.flatnonzero(scored.predictions != truth)
        wrong = wrong[np.argsort(-scored.confidence[wrong])]
        misread[name] = [{"path": kept[i].path, "seen": batch[i, ..., 0],
                          "true": classes[truth[i]], "predicted": classes[scored.predictions[i]],
                          "confidence": float(scored.confidence[i])} for i in wrong]
    return summaries, misread, failures, classes


def _model_paths(requested: list[str], dataset: str, export_dir: str) -> dict[str, Path]:
    names = list(MODEL_NAMES) if requested == ["all"] else requested
    paths = {Path(name).name.removesuffix(".onnx"): resolve_model_path(name, dataset, export_dir)
             for name in names}
    if requested == ["all"]:
        paths = {name: path for name, path in paths.items() if path.is_file()}
        if not paths:
            raise UserError(f"no exported models in {Path(export_dir) / dataset}; run "
                            "`python -m keras_digits.export all` first")
    return paths


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.evaluate",
                    description="Score exported models on a labelled folder of images.")
    parser.add_argument("folder", metavar="FOLDER",
                        help="labels.csv (file,label) or one sub-folder per class; "
                             "`semeion` for the vendored Semeion digits, `held-out-fonts` for "
                             "digits written in the handwriting fonts training never uses")
    parser.add_argument("--model", nargs="+", default=["cnn"],
                        help="model names in export/<dataset>/, .onnx paths, or all")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES)
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--out-dir", default="reports/evaluate",
                        help="the page goes to OUT_DIR/<folder name>/index.html")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    folder, title = resolve_folder(args.folder)
    model_paths = _model_paths(args.model, args.dataset, args.export_dir)
    summaries, misread, failures, _ = evaluate_folder(folder, model_paths, args.dataset)
    page = Path(args.out_dir) / title / "index.html"
    write_page(page, f"{title}: {summaries[0]['scored']} images", summaries, misread, failures)
    atomic.write_json(page.with_name("results.json"),
                      {"folder": str(folder), "models": summaries, "failed": failures})
    if args.json:
        print(json.dumps({"folder": str(folder), "models": summaries, "failed": failures,
                          "report": str(page)}, indent=2))
    else:
        for failure in failures:
            print(f"error: {failure['file']}: {failure['error']}", file=sys.stderr)
        for s in summaries:
            recall = "  ".join(f"{k}:{'-' if v is None else f'{v:.0f}'}"
                               for k, v in s["recall"].items())
            confused = ", ".join(f"{c['true']}->{c['predicted']} ({c['count']})"
                                 for c in s["confusions"]) or "none"
            print(f"{s['model']}: {s['accuracy']:.2f}% ({s['correct']}/{s['scored']}), "
                  f"ECE {s['ece']:.2f}%, unsure of {s['unsure_of_wrong']}% of wrong and "
                  f"{s['unsure_of_right']}% of right answers\n"
                  f"  recall  {recall}\n  confused  {confused}")
        print(f"report written: {page}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
