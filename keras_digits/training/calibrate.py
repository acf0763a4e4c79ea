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
(`studies/calibration_study.py`, studies/README.md).

The measuring functions are numpy only, in `models.calibration`.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

from keras_digits.core import artifacts, atomic
from keras_digits.core.cli import Parser, add_model_arguments, expand_models, run_cli
from keras_digits.data import datasets
from keras_digits.models import saved
from keras_digits.models.calibration import BINS, apply_temperature, fit_temperature, summary


def predict(model, images: np.ndarray) -> np.ndarray:
    """A Keras model's probabilities for 0-255 images, in batches of 1,000."""
    return np.asarray(model.predict(images.astype(np.float32), batch_size=1000, verbose=0))


def fit(model, splits: datasets.Splits) -> dict:
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
    from keras_digits.models import registry

    folder = artifacts.model_dir(models_root, dataset, name)
    plain = saved.load_trained(folder / "model.keras", name, dataset, calibrated=False)
    metrics = artifacts.read_metrics(models_root, dataset, name)
    splits = datasets.split(datasets.load_arrays(dataset, data_dir), metrics.get("limit"))
    result = fit(plain, splits) | {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    calibrated = registry.create_model(name, dataset=dataset, inference=True,
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
            saved.load_keras(artifacts.model_dir(args.models_dir, args.dataset, name)
                                 / "model.keras", name)  # raises the one-line "train first"
        result = calibrate_trained(name, args.dataset, args.models_dir, args.data_dir)
        print(format_result(name, result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
