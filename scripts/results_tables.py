"""Print docs/RESULTS.md's tables of today's numbers from the artifacts the commands left.

    .venv/bin/python scripts/results_tables.py [--dataset mnist] [--models-dir saved_models]
        [--export-dir export] [--evaluate-dir reports/evaluate]

Reads what `train` (metrics.json, calibration.json), `export` (parity.json) and `evaluate
semeion` (results.json) wrote, and prints Markdown: the models with their training, test
accuracy, calibration and parity in every exported format; and, where `evaluate semeion` and
`evaluate held-out-fonts` were run, how each reads other writers and unseen handwriting fonts.
Nothing is measured here: rerun the commands, then this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_digits.core import artifacts
from keras_digits.core.names import DATASET_NAMES, MODEL_NAMES, VIDEO_ACCURACY

FORMATS = (("onnx", "ONNX"), ("int8", "ONNX int8"), ("saved_model", "SavedModel"),
           ("litert", "LiteRT"), ("litert_int8", "LiteRT int8"))


def _percent(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def models_table(models_dir: Path, export_dir: Path, dataset: str) -> str:
    """One row per trained model: size, epochs, time, test accuracy, temperature, parity."""
    parity = artifacts.read_parity(artifacts.export_dir(export_dir, dataset))["models"]
    header = ["model", "parameters", "epochs (best)", "train time", "test accuracy"]
    header += ["video"] if dataset == "mnist" else []
    header += ["T", "test ECE before → after"]
    header += [f"{title} agree (acc)" for _, title in FORMATS]
    rows = []
    for name in MODEL_NAMES:
        if not artifacts.is_trained(models_dir, dataset, name):
            continue
        metrics = artifacts.read_metrics(models_dir, dataset, name)
        fitted = artifacts.read_calibration(artifacts.model_dir(models_dir, dataset, name))
        row = [name, f"{metrics['parameters']:,}",
               f"{metrics['epochs_run']} ({metrics['best_epoch']})",
               f"{metrics['train_seconds']:.0f} s", f"**{_percent(metrics['test_accuracy'])}**"]
        if dataset == "mnist":
            row.append(f"{VIDEO_ACCURACY[name]:.2f}%" if name in VIDEO_ACCURACY else "–")
        if fitted:
            test = fitted["test"]
            row += [f"{fitted['temperature']:.3f}",
                    f"{_percent(test['before']['ece'])} → {_percent(test['after']['ece'])}"]
        else:
            row += ["–", "–"]
        entry = parity.get(name)
        for key, _ in FORMATS:
            result = entry.get(key) if entry else None
            row.append(f"{_percent(result['agreement'])} ({_percent(result['accuracy'])})"
                       if result else "not exported")
        rows.append(row)
    return artifacts.markdown_table(header, rows)


def semeion_table(evaluate_dir: Path, folder: str = "semeion",
                  title: str = "Semeion") -> str | None:
    """How each model reads Semeion (or another set `evaluate` scored into `folder`), from
    its results.json; None if not run."""
    path = evaluate_dir / folder / "results.json"
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    header = ["model", title, "ECE", "unsure (one model): wrong / right",
              "recall of 1 / 4 / 7 / 9", "top confusions"]
    rows = []
    for entry in results["models"]:
        recall = " / ".join(f"{entry['recall'][d]:.0f}" for d in "1479")
        confusions = ", ".join(f"{c['true']}→{c['predicted']} ({c['count']})"
                               for c in entry["confusions"][:3])
        rows.append([entry["model"], f"**{entry['accuracy']:.2f}%**", f"{entry['ece']:.2f}%",
                     f"{entry['unsure_of_wrong']}% / {entry['unsure_of_right']}%", recall,
                     confusions])
    return artifacts.markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES)
    parser.add_argument("--models-dir", type=Path, default=Path("saved_models"))
    parser.add_argument("--export-dir", type=Path, default=Path("export"))
    parser.add_argument("--evaluate-dir", type=Path, default=Path("reports/evaluate"))
    args = parser.parse_args(argv)
    if not any(artifacts.is_trained(args.models_dir, args.dataset, m) for m in MODEL_NAMES):
        print(f"error: no trained models under {args.models_dir / args.dataset}; run "
              f"`python -m keras_digits.train all --dataset {args.dataset}` first",
              file=sys.stderr)
        return 2
    print(models_table(args.models_dir, args.export_dir, args.dataset))
    if args.dataset == "mnist":
        for folder, title in (("semeion", "Semeion"), ("held-out-fonts", "held-out fonts")):
            table = semeion_table(args.evaluate_dir, folder, title)
            if table:
                print()
                print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
