"""What to fit the temperature on: the validation split as it is, through the distortions, as
predict renders it, or digits written in the held-out handwriting fonts.

    .venv/bin/python -m studies.calibration_study [--models mlp cnn alexnet]
        [--models-dir saved_models] [--json out.json]

For each trained MNIST model (its uncalibrated build), fits one temperature on the clean
validation split (what `calibrate` does), one on the validation split through the model's own
training distortions at full and at double strength (a stand-in for other writers), one on the
validation digits as predict renders them (`views`), and one on those with the clean ones (the
mix the digit models train on), one on 1,600 digits written in the held-out fonts (other
writings than `evaluate held-out-fonts` scores: another seed) and one on those with the clean
validation split, and prints the expected calibration error each gives on the MNIST test set and
on the Semeion digits.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

import numpy as np

from keras_digits.core import artifacts
from keras_digits.core.names import MODEL_NAMES
from keras_digits.data import datasets, folders, handwriting
from keras_digits.models import calibration, distortions, registry, saved
from keras_digits.training import (
    calibrate,
    renderings,
)


def distorted(images: np.ndarray, name: str, strength: float, seed: int = 0) -> np.ndarray | None:
    """Validation images through the model's training distortions at `strength` times their
    recipe's; None for a model trained without them."""
    import keras

    default = registry.create_model(name)
    if not any(isinstance(layer, distortions._TrainingDistortion) for layer in default.layers):
        return None
    base = inspect.signature(registry.get_entry(name).builder).parameters["augmentation"].default
    trainer = registry.create_model(name, augmentation=base * strength)
    layers = [layer for layer in trainer.layers
              if isinstance(layer, distortions._TrainingDistortion)]
    keras.utils.set_random_seed(seed)
    out = []
    for i in range(0, len(images), 1000):
        batch = keras.ops.convert_to_tensor(images[i:i + 1000].astype("float32") / 255.0)
        for layer in layers:
            batch = layer(batch, training=True)
        out.append(keras.ops.convert_to_numpy(batch))
    return np.clip(np.concatenate(out) * 255.0, 0, 255).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES))
    parser.add_argument("--models-dir", default="saved_models")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    splits = datasets.split(datasets.load_arrays("mnist"))
    semeion, semeion_labels = folders.semeion_digits()
    test_images, test_labels = splits.test
    fonts, font_labels = handwriting.written_digits("held_out", per_digit=20, seed=2)
    results = []
    for name in args.models:
        if not artifacts.is_trained(args.models_dir, "mnist", name):
            continue
        folder = artifacts.model_dir(args.models_dir, "mnist", name)
        model = saved.load_trained(folder / "model.keras", name, calibrated=False)
        on_test = calibrate.predict(model, test_images)
        on_semeion = calibrate.predict(model, semeion)
        images, labels = splits.validation
        fits = {"none": None, "clean": (images, labels)}
        for strength in (1.0, 2.0):
            moved = distorted(images, name, strength)
            fits[f"distorted x{strength:g}"] = None if moved is None else (moved, labels)
        view = renderings.predict_view(images)
        fits["predict view"] = (view, labels)
        fits["clean + predict view"] = (np.concatenate([images, view]), np.tile(labels, 2))
        fits["held-out fonts"] = (fonts, font_labels)
        fits["clean + held-out fonts"] = (np.concatenate([images, fonts]),
                                          np.concatenate([labels, font_labels]))
        for fit_on, fit_set in fits.items():
            if fit_on != "none" and fit_set is None:
                continue
            t = 1.0 if fit_set is None else calibration.fit_temperature(
                calibrate.predict(model, fit_set[0]), fit_set[1])
            row = {"model": name, "fit_on": fit_on, "temperature": t,
                   "test_ece": calibration.expected_calibration_error(
                       calibration.apply_temperature(on_test, t), test_labels),
                   "semeion_ece": calibration.expected_calibration_error(
                       calibration.apply_temperature(on_semeion, t), semeion_labels)}
            results.append(row)
            print(f"{name:8} fitted on {fit_on:20} T = {t:.3f}   MNIST test ECE "
                  f"{100 * row['test_ece']:5.2f}%   Semeion ECE {100 * row['semeion_ece']:5.2f}%",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
