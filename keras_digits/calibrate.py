"""Calibration stage: `python -m keras_digits.calibrate all|<model>` (train runs it too).

A classifier's top probability should be how often such answers are right; trained networks are
over- or under-confident (label smoothing and augmentation push them under). Temperature scaling
fixes that with one number T fitted on held-out data: calibrated p = softmax(logits / T), which
keeps every answer (the order of the classes never changes) and only rescales the confidence.
The temperature lives in the model (its logits are divided by T before the softmax), so the
`.keras` file, the SavedModel and the ONNX export all give calibrated probabilities and the
parity checks compare like with like.

T is fitted on the validation split as it is. Fitting it on validation images through the
training distortions, as a stand-in for other writers, calibrated the Semeion digits worse for the
mlp and the cnn and better only for alexnet, and never halved their error
(`scripts/calibration_study.py`, docs/RESULTS.md).

The measuring functions at the top are numpy only (evaluate and the report use them too).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

from keras_digits import artifacts, atomic, data
from keras_digits.cli import Parser, add_model_arguments, expand_models, run_cli

MIN_SHOWN = 10  # answers a bin needs to be drawn in a reliability diagram
# Probabilities are floored here before their log (a softmax can underflow to 0); above it,
# softmax(log p / T) is exactly the model's softmax(logits / T).
PROBABILITY_FLOOR = 1e-30
BINS = 15  # the usual number of equal-width confidence bins for the expected calibration error


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row by row: what dividing the logits by T does to probabilities p."""
    scaled = np.log(np.clip(probabilities, PROBABILITY_FLOOR, 1.0)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, PROBABILITY_FLOOR, 1.0))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the negative log-likelihood (golden-section search on
    log T; the likelihood is unimodal in T)."""
    def loss(log_t: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, np.exp(log_t)), labels)

    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(60):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return float(np.exp((low + high) / 2))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin: its range, how many answers fall in it, their mean confidence and the
    share of them that is right (the points of a reliability diagram)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "confidence": float(confidence[inside].mean()) if count else 0.0,
                     "accuracy": float(correct[inside].mean()) if count else 0.0})
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their counts."""
    rows = reliability(probabilities, labels, bins)
    total = sum(r["count"] for r in rows)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total)


def summary(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, ECE and NLL of one set of answers (the numbers calibration.json keeps)."""
    return {"accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
            "ece": expected_calibration_error(probabilities, labels),
            "nll": negative_log_likelihood(probabilities, labels)}


def plot_reliability(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], title: str,
                     path: Path) -> None:
    """Reliability diagrams, one panel per model: accuracy against confidence per bin for each
    named set of (probabilities, labels), with the diagonal a calibrated model follows (bins of
    fewer than MIN_SHOWN answers are left out: their accuracy is noise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 4.2), squeeze=False)
    for ax, (name, sets) in zip(axes[0], curves.items(), strict=True):
        ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
        for (label, (probabilities, labels)), style in zip(sets.items(), ("o--", "s-", "^-."),
                                                           strict=False):
            rows = [r for r in reliability(probabilities, labels) if r["count"] >= MIN_SHOWN]
            ece = expected_calibration_error(probabilities, labels)
            ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], style,
                    markersize=4, label=f"{label} (ECE {100 * ece:.2f}%)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def uncalibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The model's probabilities before its temperature (calibration inverted)."""
    return apply_temperature(probabilities, 1.0 / temperature)


def predict(model, images: np.ndarray) -> np.ndarray:
    """A Keras model's probabilities for 0-255 images, in batches of 1,000."""
    return np.asarray(model.predict(images.astype(np.float32), batch_size=1000, verbose=0))


def fit(model, splits: data.Splits) -> dict:
    """The temperature for an uncalibrated `model`, and what it does on validation and test."""
    result = {"temperature": 1.0, "fitted_on": f"validation ({len(splits.validation[1]):,} "
              "images)", "bins": BINS}
    before = {name: predict(model, x) for name, (x, _) in
              (("validation", splits.validation), ("test", splits.test))}
    result["temperature"] = fit_temperature(before["validation"], splits.validation[1])
    for name, (_, labels) in (("validation", splits.validation), ("test", splits.test)):
        result[name] = {"before": summary(before[name], labels), "after": summary(
            apply_temperature(before[name], result["temperature"]), labels)}
    return result


def calibrate_trained(name: str, dataset: str = "mnist", models_root: Path | str = "saved_models",
                      data_dir: str | None = None) -> dict:
    """Fit (or refit) the temperature of an already trained model and rewrite its folder: the
    calibrated model.keras and saved_model/ and calibration.json appear together or not at all."""
    from keras_digits import models

    folder = artifacts.model_dir(models_root, dataset, name)
    plain = artifacts.load_trained(folder / "model.keras", name, dataset, calibrated=False)
    metrics = artifacts.read_metrics(models_root, dataset, name)
    splits = data.split(data.load_arrays(dataset, data_dir), metrics.get("limit"))
    result = fit(plain, splits) | {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    calibrated = models.create_model(name, dataset=dataset, inference=True,
                                     temperature=result["temperature"])
    calibrated.set_weights(plain.get_weights())  # saved uncompiled, as train saves it
    with atomic.atomic_path(folder) as staging:
        shutil.copytree(folder, staging, ignore=shutil.ignore_patterns("model.keras",
                                                                       "saved_model"))
        calibrated.save(staging / "model.keras")
        calibrated.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
        atomic.write_json(artifacts.calibration_path(staging), result)
    return result


def format_result(name: str, result: dict) -> str:
    test = result["test"]
    return (f"{name}: T = {result['temperature']:.3f}; test ECE "
            f"{100 * test['before']['ece']:.2f}% -> {100 * test['after']['ece']:.2f}%, "
            f"NLL {test['before']['nll']:.4f} -> {test['after']['nll']:.4f}")


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.calibrate",
                    description="Fit the temperature of trained models on the validation split.")
    add_model_arguments(parser)
    parser.add_argument("--models-dir", default="saved_models")
    parser.add_argument("--data-dir")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    for name in expand_models(args.models):
        if not artifacts.is_trained(args.models_dir, args.dataset, name):
            artifacts.load_keras(artifacts.model_dir(args.models_dir, args.dataset, name)
                                 / "model.keras", name)  # raises the one-line "train first"
        result = calibrate_trained(name, args.dataset, args.models_dir, args.data_dir)
        print(format_result(name, result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
