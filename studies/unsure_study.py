"""Which answers to mark unsure: the share of wrong and of right answers each rule flags.

    .venv/bin/python -m studies.unsure_study [--model cnn ...] [--check alexnet] [--json out.json]

Reads the Semeion digits and the MNIST test set one digit at a time through `DigitReader.read`
(the predict path, calibrated ONNX export), then for each threshold on the calibrated probability
of the answer (with `--check`, its mean over the model and the check model) prints how many of
the wrong answers and of the right answers fall below it. Also prints the share of each set's
digits the `MAX_MARKS` rule (too many separate marks for one digit) marks, and what the whole
rule in `contract.UNSURE` flags.

With `--alternatives` (and `--check`) it also prints, for Semeion, how many of the wrong answers
the check model gives too (no confidence rule can flag a mistake both models make surely), and
what three other rules would flag: the lower of the two probabilities, the mean of three models
(`--third`, the mlp by default), and the two models' mean over the digit as read and turned ±8°.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from keras_digits.core.contract import UNSURE
from keras_digits.data import (
    datasets,
    folders,
)
from keras_digits.reading.reader import DigitReader, OnnxClassifier, resolve_model_path

THRESHOLDS = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)


def digit_sets() -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    masks, semeion_labels = folders.load_semeion()
    arrays = datasets.load_arrays("mnist")
    return {"semeion": ([(1.0 - m.astype(np.float32)) * 255.0 for m in masks], semeion_labels),
            "mnist_test": (list(arrays.test_images[..., 0].astype(np.float32)),
                           arrays.test_labels)}


def turned(pixels: np.ndarray, degrees: float) -> np.ndarray:
    """(N, 28, 28, 1) pixels turned about the centre, bilinearly (paper outside)."""
    from studies.tta_study import warp

    return warp(pixels, degrees, 1.0, 1.0, 0.0, 0.0).astype(np.float32)


def in_batches(classifier, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([classifier(pixels[i:i + 500]) for i in range(0, len(pixels), 500)])


def alternatives(reader: DigitReader, third: OnnxClassifier, pixels: np.ndarray,
                 own: np.ndarray, other: np.ndarray, labels: np.ndarray, answers: np.ndarray,
                 below: float = 0.8) -> dict:
    """Shared mistakes, and what other rules built on the same models (`own` and `other`: the
    model's and the check model's probabilities for `pixels`) would flag."""
    rows, right = np.arange(len(answers)), answers == labels
    mean = (own[rows, answers] + other[rows, answers]) / 2
    shared = ~right & (other.argmax(axis=1) == answers)
    sure = shared & (mean >= UNSURE["BELOW"])
    print(f"  the check model gives the same wrong answer to {shared.sum()} of {(~right).sum()}; "
          f"{sure.sum()} of those at a mean of {UNSURE['BELOW']:.2f} or more, most often "
          "(label, answer) " + ", ".join(f"{k}: {n}" for k, n in Counter(
              zip(labels[sure].tolist(), answers[sure].tolist(), strict=True)).most_common(5)))
    around = [own, other]
    for degrees in (-8.0, 8.0):
        view = turned(pixels, degrees)
        around += [in_batches(reader.classifier, view), in_batches(reader.checker, view)]
    scores = {
        "the lower of the two": np.minimum(own[rows, answers], other[rows, answers]),
        "the mean of three, with the third model": (own[rows, answers] + other[rows, answers]
                                                    + in_batches(third, pixels)[rows, answers]) / 3,
        "the two models' mean over the digit as read and turned +-8 degrees": np.mean(
            [p[rows, answers] for p in around], axis=0)}
    found = {}
    for name, score in scores.items():
        found[name] = {"wrong_flagged": float(np.mean(score[~right] < below)),
                       "right_flagged": float(np.mean(score[right] < below))}
        print(f"  {name}, below {below:.2f}: flags {100 * found[name]['wrong_flagged']:.1f}% of "
              f"wrong, {100 * found[name]['right_flagged']:.1f}% of right")
    return {"shared_mistakes": int(shared.sum()), "shared_and_sure": int(sure.sum()),
            "rules_below": below, "rules": found}


def study(model: str, export_dir: str, sets: dict, check: str | None = None,
          third: str | None = None) -> dict:
    reader = DigitReader(model, export_dir=export_dir, check=check)
    result = {"model": str(reader.path), "check": check, "sets": {}}
    for name, (images, labels) in sets.items():
        readings = [r for i in range(0, len(images), 500)
                    for r in reader.read_many(images[i:i + 500])]
        answers = np.array([r.label for r in readings])
        right = answers == labels
        pixels = np.stack([r.pixels for r in readings])
        own = support = in_batches(reader.classifier, pixels)
        if reader.checker is not None:
            other = in_batches(reader.checker, pixels)
            support = (own + other) / 2
        confidence = support[np.arange(len(answers)), answers]
        rows = [{"below": t, "wrong_flagged": float(np.mean(confidence[~right] < t)),
                 "right_flagged": float(np.mean(confidence[right] < t))} for t in THRESHOLDS]
        many_marks = np.array([bool(r.reason and "marks" in r.reason) for r in readings])
        result["sets"][name] = {
            "accuracy": float(right.mean()), "wrong": int((~right).sum()), "rows": rows,
            "many_marks": float(many_marks.mean()),
            "rule": {"wrong_flagged": float(np.mean([r.unsure for r, ok in
                                                     zip(readings, right, strict=True) if not ok])),
                     "right_flagged": float(np.mean([r.unsure for r, ok in
                                                     zip(readings, right, strict=True) if ok]))}}
        checked = f" checked by {check}" if check else ""
        print(f"{model}{checked} on {name}: accuracy {100 * right.mean():.2f}%, "
              f"{(~right).sum()} wrong; marked for too many marks "
              f"{100 * many_marks.mean():.2f}%")
        for row in rows:
            print(f"  below {row['below']:.2f}: flags {100 * row['wrong_flagged']:5.1f}% of "
                  f"wrong, {100 * row['right_flagged']:5.1f}% of right")
        rule = result["sets"][name]["rule"]
        print(f"  the rule in contract.UNSURE ({UNSURE}): flags "
              f"{100 * rule['wrong_flagged']:.1f}% of wrong, {100 * rule['right_flagged']:.1f}% "
              "of right", flush=True)
        if third is not None and reader.checker is not None and name == "semeion":
            result["sets"][name]["alternatives"] = alternatives(
                reader, OnnxClassifier(resolve_model_path(third, "mnist", export_dir)), pixels,
                own, other, labels, answers)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["cnn"])
    parser.add_argument("--check", help="a second model whose opinion joins the flag")
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--alternatives", action="store_true",
                        help="with --check: shared mistakes and other rules, on Semeion")
    parser.add_argument("--third", default="mlp", help="the third model of --alternatives")
    args = parser.parse_args()
    if args.alternatives and not args.check:
        parser.error("--alternatives compares rules built on two models: pass --check too")
    sets = digit_sets()
    third = args.third if args.alternatives else None
    results = [study(model, args.export_dir, sets, args.check, third) for model in args.model]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
