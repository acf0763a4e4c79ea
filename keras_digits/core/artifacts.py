"""Where every stage's outputs live and how they are read back: one home for the layout.

    saved_models/<dataset>/<model>/     train: model.keras, saved_model/, history.csv,
                                        metrics.json, calibration.json, logs/
    saved_models/<dataset>/.<model>.work/   a run in progress (resume state)
    saved_models/<dataset>/.<model>.lock    the process id of the run in progress
    export/<dataset>/<model>.onnx       export: ONNX, <model>.int8.onnx, saved_model/<model>/,
    export/<dataset>/parity.json        and the parity of every exported model

train, export, report, bench, evaluate and serve all find files through these functions, and the
comparison row (the table train prints and the report shows) is built here once.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from keras_digits.core import atomic
from keras_digits.core.names import VIDEO_ACCURACY


def model_dir(models_root: Path | str, dataset: str, name: str) -> Path:
    return Path(models_root) / dataset / name


def _process_suffix(process: int) -> str:
    """Process 0 (or the only one) uses the plain names; the other processes of a cluster
    sharing a folder keep their own resume state beside it."""
    return f"-p{process}" if process else ""


def work_dir(models_root: Path | str, dataset: str, name: str, process: int = 0) -> Path:
    return Path(models_root) / dataset / f".{name}{_process_suffix(process)}.work"


def lock_path(models_root: Path | str, dataset: str, name: str, process: int = 0) -> Path:
    return Path(models_root) / dataset / f".{name}{_process_suffix(process)}.lock"


def export_dir(export_root: Path | str, dataset: str) -> Path:
    return Path(export_root) / dataset


def onnx_path(export_root: Path | str, dataset: str, name: str, int8: bool = False) -> Path:
    return export_dir(export_root, dataset) / f"{name}{'.int8' if int8 else ''}.onnx"


def litert_path(export_root: Path | str, dataset: str, name: str, int8: bool = False) -> Path:
    return export_dir(export_root, dataset) / f"{name}{'.int8' if int8 else ''}.tflite"


def verifier_path(models_folder: Path | str) -> Path:
    """The one-digit verifier (`keras_digits.verifier`) of the exported models in
    `models_folder`: in a folder of its own, so that the page's model picker, which lists every
    .onnx beside the models, does not offer it."""
    return Path(models_folder) / "verifier" / "one_digit.onnx"


def inside_path(model_path: Path | str) -> Path:
    """The "inside" copy of an exported model (deploy/inside.py): its hidden layers as extra
    outputs, in a folder of its own beside it, so the page's model picker does not offer it."""
    model_path = Path(model_path)
    return model_path.parent / "inside" / model_path.name


def saved_model_path(export_root: Path | str, dataset: str, name: str) -> Path:
    return export_dir(export_root, dataset) / "saved_model" / name


def parity_path(export_root: Path | str, dataset: str) -> Path:
    return export_dir(export_root, dataset) / "parity.json"


def calibration_path(folder: Path) -> Path:
    """The fitted temperature and what it did, beside the model it calibrates."""
    return Path(folder) / "calibration.json"


def read_calibration(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads(calibration_path(folder).read_text())
    except (OSError, ValueError):
        return None


def is_trained(models_root: Path | str, dataset: str, name: str) -> bool:
    folder = model_dir(models_root, dataset, name)
    return (folder / "model.keras").is_file() and (folder / "metrics.json").is_file()


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of a CSVLogger file, one per epoch; a repeated epoch (after a resume) keeps its last."""
    if not path.is_file():
        return []
    by_epoch: dict[int, dict[str, float]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                parsed = {k: float(v) for k, v in row.items() if k and v not in (None, "")}
            except ValueError:
                continue  # a half-written last line from a killed run
            if "epoch" in parsed:
                by_epoch[int(parsed["epoch"])] = parsed
    return [by_epoch[e] for e in sorted(by_epoch)]


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    """Rewrite a history CSV in CSVLogger's column order (none at all for no rows)."""
    if not rows:
        path.unlink(missing_ok=True)
        return
    keys = sorted({k for row in rows for k in row}, key=lambda k: (k != "epoch", k))
    with atomic.atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (int(v) if k == "epoch" else v) for k, v in row.items()})


def read_metrics(models_root: Path | str, dataset: str, name: str) -> dict[str, Any]:
    return json.loads((model_dir(models_root, dataset, name) / "metrics.json").read_text())


def read_parity(folder: Path) -> dict[str, Any]:
    """`<export>/<dataset>/parity.json` as `{"models": {name: entry}, ...}`; empty when missing
    or unreadable (the report then says which command fills its columns)."""
    try:
        existing = json.loads((folder / "parity.json").read_text())
        if isinstance(existing.get("models"), dict):
            return existing
    except (OSError, ValueError, AttributeError):
        pass
    return {"models": {}}


COMPARISON_COLUMNS = ("model", "parameters", "epochs", "train time", "test accuracy", "video",
                      "ONNX accuracy", "int8 accuracy")


def comparison_row(metrics: dict[str, Any], parity: dict[str, Any] | None = None) -> list[str]:
    """One model's row of the comparison table (train's summary and the report's table)."""
    video = VIDEO_ACCURACY.get(metrics["model"]) if metrics["dataset"] == "mnist" else None
    return [
        metrics["model"], f"{metrics['parameters']:,}", str(metrics["epochs_run"]),
        f"{metrics['train_seconds']:.1f} s", f"{100 * metrics['test_accuracy']:.2f}%",
        f"{video:.2f}%" if video else "–",
        (f"{100 * parity['onnx']['accuracy']:.2f}% ({100 * parity['onnx']['agreement']:.2f}% "
         "agree)" if parity else "not exported (run export)"),
        f"{100 * parity['int8']['accuracy']:.2f}%" if parity else "–",
    ]


def markdown_table(header: tuple[str, ...] | list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
