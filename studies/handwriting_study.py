"""Which training-time distortions make MNIST models read other people's handwriting?

Trains each variant on the MNIST training split with `keras_digits.train`, then scores it on
MNIST test and on Semeion (1,593 digits by about 80 other writers) through predict's own
preprocessing. Semeion is only measured, never trained on. Writes one JSON line per variant.
With `--dataset fashion_mnist` it trains on clothes and reports the test accuracy alone.

    .venv/bin/python -m studies.handwriting_study cnn:augmentation=1.0:epochs=12 ...

A variant is `model[:key=value...]`: `epochs`, `seed` and `predict_view` go to training, the
other fields of the model's `Recipe` (`label_smoothing`, `weight_decay`, ...) replace the
recipe's, and every other key goes to the model builder (`width`, `augmentation`, ...). MNIST
test is scored twice: as given, and as predict renders it (`mnist_predict`); Semeion's expected
calibration error (`semeion_ece`, 15 bins) is of the calibrated model, and so are the shares of
wrong and of right Semeion answers the one-model unsure rule flags. `fonts_held_out` is the
accuracy on digits written in the handwriting fonts that training never uses (20 per family
and digit, data/handwriting.py).

With `--ensemble`, after each MNIST variant past the first, one more row scores the mean of the
calibrated probabilities of all variants so far (e.g. the same model with seeds 0, 1, 2, ...),
and every variant's probabilities are kept in `<out>.npz`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from keras_digits.core.contract import UNSURE
from keras_digits.data import datasets, folders, handwriting
from keras_digits.imaging import normalize
from keras_digits.models import calibration
from keras_digits.models.registry import Recipe
from keras_digits.training import (
    renderings,
)
from keras_digits.training.compiled import TrainConfig
from keras_digits.training.train import train_and_evaluate


def semeion_inputs(cache: Path):
    """Semeion through predict's preprocessing: (N, 28, 28, 1) pixels and labels."""
    import numpy as np

    folder = folders.write_semeion_folder(cache / "semeion")
    samples = folders.read_labelled_folder(folder, tuple(str(d) for d in range(10)))
    pixels = np.stack([normalize.load_digit(s.path) for s in samples])
    return pixels, np.array([s.label for s in samples])


TRAINING_KEYS = ("epochs", "seed", "predict_view")
RECIPE_KEYS = tuple(f.name for f in fields(Recipe) if f.name not in TRAINING_KEYS)


def parse_variant(text: str) -> tuple[str, dict, dict, dict]:
    """`model:key=value...` as (model, training settings, recipe fields, builder options)."""
    name, *pairs = text.split(":")
    train, recipe, build = {}, {}, {}
    for pair in pairs:
        key, value = pair.split("=")
        parsed = json.loads(value) if value[0] in "[0123456789-." else value
        if isinstance(parsed, list):
            parsed = tuple(parsed)
        (train if key in TRAINING_KEYS else recipe if key in RECIPE_KEYS else build)[key] = parsed
    return name, train, recipe, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--out", default="reports/handwriting_study.jsonl")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--ensemble", action="store_true")
    args = parser.parse_args()
    run(args)


def run(args: argparse.Namespace) -> None:
    """Train and score each of `args.variants`, appending a JSON line each to `args.out`."""
    work = Path(tempfile.mkdtemp(prefix="handwriting-study-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    mnist = args.dataset == "mnist"
    x_semeion, y_semeion = semeion_inputs(work) if mnist else (None, None)
    x_fonts, y_fonts = handwriting.written_digits("held_out", 20, seed=1) if mnist else (None, None)
    if mnist:
        mnist_arrays = datasets.load_arrays("mnist")
        x_test, y_test = mnist_arrays.test_images, mnist_arrays.test_labels
        x_test_view = renderings.predict_view(x_test)
    members: dict[str, dict] = {}
    for variant in args.variants:
        name, train, recipe, build = parse_variant(variant)
        config = TrainConfig(model=name, dataset=args.dataset, epochs=train.get("epochs"),
                             seed=train.get("seed", 0),
                             patience=train.get("epochs"), verbose=2,
                             predict_view=train.get("predict_view"),
                             build_options=tuple(sorted(build.items())),
                             recipe_options=tuple(sorted(recipe.items())))
        started = time.time()
        metrics = train_and_evaluate(config, work / variant.replace(":", "_"))
        row = {"variant": variant, "dataset": args.dataset, "commit": commit,
               "test_accuracy": round(100 * metrics["test_accuracy"], 2),
               "epochs_run": metrics["epochs_run"], "train_seconds": metrics["train_seconds"],
               "wall_seconds": round(time.time() - started, 1),
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               **getattr(args, "extra", {})}  # what a study that calls this one set
        if mnist:
            import keras

            model = keras.models.load_model(
                work / variant.replace(":", "_") / "mnist" / name / "model.keras")
            semeion_probabilities = model.predict(x_semeion, verbose=0)
            predicted = semeion_probabilities.argmax(axis=1)
            through_predict = model.predict(x_test_view, verbose=0).argmax(axis=1)
            row["mnist_predict"] = round(100 * float((through_predict == y_test).mean()), 2)
            row["semeion"] = round(100 * float((predicted == y_semeion).mean()), 2)
            row["semeion_ece"] = round(100 * calibration.expected_calibration_error(
                semeion_probabilities, y_semeion), 2)
            row["fonts_held_out"] = round(100 * float(
                (model.predict(x_fonts, verbose=0).argmax(axis=1) == y_fonts).mean()), 2)
            for name, (images, labels) in getattr(args, "sets", {}).items():  # a caller's own
                row[name] = round(100 * float(
                    (model.predict(images, verbose=0).argmax(axis=1) == labels).mean()), 2)
            row["semeion_per_class"] = [
                round(100 * float((predicted[y_semeion == c] == c).mean())) for c in range(10)]
            unsure = semeion_probabilities.max(axis=1) < UNSURE["BELOW"]  # the one-model rule
            right = predicted == y_semeion
            row["semeion_unsure_of_wrong"] = round(100 * float(unsure[~right].mean()), 1)
            row["semeion_unsure_of_right"] = round(100 * float(unsure[right].mean()), 1)
            if args.ensemble:
                members[variant] = {"semeion": semeion_probabilities,
                                    "mnist": model.predict(x_test, verbose=0)}
        rows = [row]
        if len(members) > 1:
            rows.append(ensemble_row(members, y_test, y_semeion, commit))
            save_probabilities(Path(args.out).with_suffix(".npz"), members)
        for each in rows:
            print(json.dumps(each), flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as handle:
                handle.write(json.dumps(each) + "\n")


def ensemble_row(members: dict[str, dict], y_test, y_semeion, commit: str) -> dict:
    """The mean of the members' calibrated probabilities, scored like one variant."""
    import numpy as np

    mnist = np.mean([m["mnist"] for m in members.values()], axis=0)
    semeion = np.mean([m["semeion"] for m in members.values()], axis=0)
    return {"variant": "ensemble: " + " + ".join(map(str, members)), "members": len(members),
            "commit": commit,
            "test_accuracy": round(100 * float((mnist.argmax(1) == y_test).mean()), 2),
            "mnist_ece": round(100 * calibration.expected_calibration_error(mnist, y_test), 2),
            "semeion": round(100 * float((semeion.argmax(1) == y_semeion).mean()), 2),
            "semeion_ece": round(100 * calibration.expected_calibration_error(semeion, y_semeion),
                                 2)}


def save_probabilities(path: Path, members: dict[str, dict]) -> None:
    """Each member's probabilities, `<variant>/semeion` and `<variant>/mnist`, for later study."""
    import numpy as np

    from keras_digits.core import atomic

    arrays = {f"{variant}/{split}": probabilities for variant, member in members.items()
              for split, probabilities in member.items()}
    with atomic.atomic_path(path) as staging, open(staging, "wb") as handle:
        np.savez(handle, **arrays)


if __name__ == "__main__":
    main()
