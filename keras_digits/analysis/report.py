"""Report stage: `python -m keras_digits.report --dataset mnist|fashion_mnist`.

Writes `reports/<dataset>/`: per model a confusion matrix and a gallery of its most confident
mistakes, learning curves of all models, per-class precision and recall, and `index.html` plus
`summary.md` comparing the models (with ONNX parity and int8 accuracy when `export` has run, and
the video's numbers beside ours for MNIST). The page is static: it opens from disk with no server.
The folder is built aside and renamed into place.
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

import numpy as np

from keras_digits.analysis import learned, plots
from keras_digits.core import artifacts, atomic
from keras_digits.core.cli import Parser, UserError, run_cli
from keras_digits.core.names import DATASET_NAMES, DATASET_TITLES, MODEL_NAMES, class_names
from keras_digits.data import datasets, folders
from keras_digits.models import saved


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n: int) -> np.ndarray:
    """Counts indexed [true, predicted]."""
    return np.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)


def precision_recall(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    correct = np.diag(matrix).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(correct / matrix.sum(axis=0))
        recall = np.nan_to_num(correct / matrix.sum(axis=1))
    return precision, recall


def collect(dataset: str, models_dir: Path, export_dir: Path,
            arrays: datasets.Arrays) -> list[dict]:
    """Per trained model: metrics, history, test predictions (and, for MNIST, predictions of the
    Semeion digits: other writers), and export parity if present."""
    parity = artifacts.read_parity(artifacts.export_dir(export_dir, dataset))["models"]
    others = folders.semeion_digits() if dataset == "mnist" else None
    found = []
    for name in MODEL_NAMES:
        if not artifacts.is_trained(models_dir, dataset, name):
            continue
        folder = artifacts.model_dir(models_dir, dataset, name)
        metrics = artifacts.read_metrics(models_dir, dataset, name)
        n_test = metrics.get("examples", {}).get("test", len(arrays.test_images))
        model = saved.load_keras(folder / "model.keras", name)
        probs = np.asarray(model.predict(arrays.test_images[:n_test].astype(np.float32),
                                         batch_size=500, verbose=0))
        found.append({"name": name, "metrics": metrics, "probs": probs, "model": model,
                      "history": artifacts.read_history(folder / "history.csv"),
                      "parity": parity.get(name),
                      "calibration": artifacts.read_calibration(folder),
                      "others": others and (np.asarray(model.predict(
                          others[0], batch_size=500, verbose=0)), others[1])})
    return found


def build_report(dataset: str, models_dir: Path | str = "saved_models",
                 out_dir: Path | str = "reports", export_dir: Path | str = "export",
                 data_dir: str | None = None) -> Path:
    """Write the report folder for `dataset`; returns the path of its index.html."""
    models_dir, out_dir, export_dir = Path(models_dir), Path(out_dir), Path(export_dir)
    arrays = datasets.load_arrays(dataset, data_dir)
    classes = class_names(dataset)
    final = out_dir / dataset
    atomic.require_writable(out_dir)
    atomic.sweep_leftovers(out_dir)
    entries = collect(dataset, models_dir, export_dir, arrays)
    if not entries:
        raise UserError(f"no trained models under {models_dir / dataset}; run "
                        f"`python -m keras_digits.train all --dataset {dataset}` first")
    with atomic.atomic_path(final) as staging:  # the folder appears whole or not at all
        staging.mkdir()
        _write_report(staging, dataset, classes, arrays, entries)
    return final / "index.html"


def _write_report(folder: Path, dataset: str, classes: tuple[str, ...], arrays: datasets.Arrays,
                  entries: list[dict]) -> None:
    pretty = DATASET_TITLES[dataset]
    per_class = {}
    for entry in entries:
        name, probs = entry["name"], entry["probs"]
        labels = arrays.test_labels[:len(probs)]
        matrix = confusion_matrix(labels, probs.argmax(1), len(classes))
        precision, recall = precision_recall(matrix)
        per_class[name] = {"precision": precision.tolist(), "recall": recall.tolist(),
                           "confusion": matrix.tolist()}
        plots.plot_confusion(matrix, classes, f"{name} on {pretty} test set "
                       f"({100 * np.trace(matrix) / matrix.sum():.2f}% correct)",
                       folder / f"confusion_{name}.png")
        entry["mistakes_shown"] = plots.plot_mistakes(
            arrays.test_images[:len(probs)], labels, probs, classes,
            f"{name} mistakes", folder / f"mistakes_{name}.png")
        entry["mistakes"] = int((probs.argmax(1) != labels).sum())
    _calibration(folder, pretty, arrays.test_labels, entries)
    learned_sentence, drawn = _learned(folder, classes, arrays, entries)
    plots.plot_curves({e["name"]: e["history"] for e in entries},
                f"Learning curves on {pretty} (dashed: train, solid: validation)",
                folder / "learning_curves.png")
    atomic.write_json(folder / "per_class.json", per_class)
    (folder / "summary.md").write_text(_markdown(dataset, pretty, classes, entries, per_class))
    (folder / "index.html").write_text(_html(dataset, pretty, classes, entries, per_class,
                                             learned_sentence, drawn))


def _learned(folder: Path, classes: tuple[str, ...], arrays: datasets.Arrays,
             entries: list[dict]) -> tuple[str, set[str]]:
    """The figures of "What the models learned" (analysis/learned.py); returns the sentence
    on what the shift and rotation experiment shows, and which of the optional figures
    (templates, filters) the models had the layers for."""
    models = {e["name"]: e["model"] for e in entries}
    drawn = set()
    if "linear" in models:
        plots.plot_templates(learned.weights_of(models["linear"], "logits"), classes,
                             folder / "templates.png")
        drawn.add("templates")
    kernels = {name: learned.first_filters(model) for name, model in models.items()}
    kernels = {name: kernel for name, kernel in kernels.items() if kernel is not None}
    if kernels:
        plots.plot_filters(kernels, folder / "filters.png")
        drawn.add("filters")
    test = arrays.test_images[:len(entries[0]["probs"])]  # as many as the models were tested on
    points = {name: learned.hidden_map(model, test) for name, model in models.items()}
    plots.plot_hidden_maps(points, arrays.test_labels,
                           {e["name"]: e["probs"].argmax(1) for e in entries}, classes,
                           folder / "hidden_maps.png")
    count = min(learned.MOVED_DIGITS, len(test))
    curves = learned.shift_and_rotate(models, test[:count], arrays.test_labels[:count])
    plots.plot_shift_rotate(curves, learned.SHIFTS, learned.ANGLES, folder / "shift_rotate.png")
    return learned.what_it_shows(curves), drawn


def _calibration(folder: Path, pretty: str, labels: np.ndarray, entries: list[dict]) -> None:
    """ECE before and after each model's temperature, and the reliability diagrams, on the test
    set and (MNIST) on the Semeion digits."""
    from keras_digits.models import calibration

    for key, title in (("test", f"the {pretty} test set"), ("others", "the Semeion digits")):
        curves = {}
        for entry in entries:
            probs, truth = (entry["probs"], labels[:len(entry["probs"])]) if key == "test" \
                else entry["others"] or (None, None)
            if probs is None:
                continue
            fitted = entry["calibration"]
            before = calibration.uncalibrated(probs, fitted["temperature"] if fitted else 1.0)
            entry[f"ece_{key}"] = [calibration.expected_calibration_error(p, truth)
                                   for p in (before, probs)]
            curves[entry["name"]] = {"before": (before, truth), "after": (probs, truth)}
        if curves:
            plots.plot_reliability(curves, f"Reliability on {title}, before and after "
                                       "temperature scaling", folder / f"reliability_{key}.png")


def _calibration_rows(entries: list[dict]) -> list[list[str]]:
    return [[e["name"], f"{e['calibration']['temperature']:.3f}" if e["calibration"]
             else "not calibrated (run calibrate)"]
            + [f"{100 * v:.2f}%" if v is not None else "–" for key in ("test", "others")
               for v in e.get(f"ece_{key}", [None, None])] for e in entries]


CALIBRATION_COLUMNS = ("model", "temperature", "test ECE before", "test ECE after",
                       "Semeion ECE before", "Semeion ECE after")


def _markdown(dataset, pretty, classes, entries, per_class) -> str:
    lines = [f"# keras_digits on {pretty}", "",
             artifacts.markdown_table(artifacts.COMPARISON_COLUMNS,
                                      [artifacts.comparison_row(e["metrics"], e["parity"])
                                       for e in entries])]
    lines += ["", "## Per-class precision / recall (test set)", "",
              "| class | " + " | ".join(e["name"] for e in entries) + " |",
              "|---|" + "---|" * len(entries)]
    for i, cls in enumerate(classes):
        cells = [f"{100 * per_class[e['name']]['precision'][i]:.1f} / "
                 f"{100 * per_class[e['name']]['recall'][i]:.1f}" for e in entries]
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    lines += ["", "## Calibration (ECE, 15 bins)", "",
              artifacts.markdown_table(CALIBRATION_COLUMNS, _calibration_rows(entries))]
    lines += ["", "Images: `learning_curves.png`, `reliability_test.png`, "
              "`reliability_others.png` (MNIST), `confusion_<model>.png`, `mistakes_<model>.png`; "
              "what the models learned: `templates.png`, `filters.png`, `hidden_maps.png`, "
              "`shift_rotate.png`.",
              ""]
    return "\n".join(lines)


def _html(dataset, pretty, classes, entries, per_class, learned_sentence: str,
          drawn: set[str]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in artifacts.COMPARISON_COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>"
                                    for v in artifacts.comparison_row(e["metrics"], e["parity"]))
                   + "</tr>" for e in entries)
    pc_head = "".join(f"<th>{esc(e['name'])}<br>precision / recall</th>" for e in entries)
    pc_rows = ""
    for i, cls in enumerate(classes):
        cells = "".join(
            f"<td>{100 * per_class[e['name']]['precision'][i]:.1f}% / "
            f"{100 * per_class[e['name']]['recall'][i]:.1f}%</td>" for e in entries)
        pc_rows += f"<tr><th>{esc(cls)}</th>{cells}</tr>"
    cal_others = ('<img src="reliability_others.png" alt="reliability diagrams on Semeion">'
                  if entries[0].get("ece_others") else "")
    cal_head = "".join(f"<th>{esc(c)}</th>" for c in CALIBRATION_COLUMNS)
    cal_rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                       for row in _calibration_rows(entries))
    sections = ""
    for e in entries:
        n = esc(e["name"])
        sections += (
            f"<section><h3>{n}</h3><p>{e['mistakes']} of {len(e['probs'])} test images wrong; "
            f"the {e['mistakes_shown']} most confident mistakes are shown.</p>"
            f"<div class=pair><img src=\"confusion_{n}.png\" alt=\"confusion matrix of {n}\">"
            f"<img src=\"mistakes_{n}.png\" alt=\"misclassified test images of {n}\"></div>"
            f"</section>")
    learned_html = ""
    if "templates" in drawn:
        learned_html += ("<p>The linear model scores each class by how much ink lies on that "
                         "class's template (and how little on its blue): one template per "
                         "class, nothing more.</p><img src=\"templates.png\" "
                         "alt=\"the linear model's weight templates\">")
    if "filters" in drawn:
        learned_html += ("<p>A convolutional model's first filters are small stroke detectors "
                         "(edges and bars at different angles), applied everywhere in the "
                         "digit.</p><img src=\"filters.png\" alt=\"first convolutional "
                         "filters\">")
    learned_html += (
        "<p>Every model ends in a linear classifier; what it separates is the last hidden "
        "layer. Here it is for 2,000 test digits, projected to two dimensions (PCA): the "
        "better a model, the cleaner its classes fall apart before that last step.</p>"
        "<img src=\"hidden_maps.png\" alt=\"2-D maps of each model's last hidden layer\">"
        f"<p>{esc(learned_sentence)}</p>"
        "<img src=\"shift_rotate.png\" alt=\"accuracy on shifted and rotated digits\">")
    video_note = ("<p>“video” is the accuracy the original video reached with the same four "
                  "kinds of model.</p>" if dataset == "mnist" else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keras_digits — {esc(pretty)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
.pair {{ display: flex; gap: 1em; align-items: flex-start; flex-wrap: wrap; }}
.pair img {{ max-width: 600px; }}
</style></head><body>
<h1>keras_digits on {esc(pretty)}</h1>
<p>Four models, trained with validation-based early stopping and evaluated once on the
{len(entries[0]['probs']):,} test images.</p>
<h2>Comparison</h2>
<table><tr>{head}</tr>{rows}</table>
{video_note}
<h2>Learning curves</h2>
<p>Training accuracy is measured on the images a model trains on (distorted handwriting,
mirrored or mixed garments, as its recipe has them), so it can sit below validation accuracy.</p>
<img src="learning_curves.png" alt="training and validation loss and accuracy per epoch">
<h2>Calibration</h2>
<p>Temperature scaling, fitted on the validation split: the probability a model gives should be
how often such answers are right. Expected calibration error over 15 confidence bins, before and
after, on the test set and (MNIST) on the 1,593 Semeion digits by other writers.</p>
<table><tr>{cal_head}</tr>{cal_rows}</table>
<img src="reliability_test.png" alt="reliability diagrams on the test set">
{cal_others}
<h2>Per-class precision and recall</h2>
<table><tr><th>class</th>{pc_head}</tr>{pc_rows}</table>
<h2>Confusion matrices and mistakes</h2>
{sections}
<h2>What the models learned</h2>
{learned_html}
</body></html>
"""


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.report",
                    description="Compare the trained models: confusion matrices, mistakes, curves.")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES)
    parser.add_argument("--models-dir", default="saved_models")
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--out-dir", default="reports")
    parser.add_argument("--data-dir", help="folder with the IDX files")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    index = build_report(args.dataset, args.models_dir, args.out_dir, args.export_dir,
                         args.data_dir)
    print(f"report written: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
