"""Score the probabilities a `handwriting_study.py --ensemble` run kept, without a GPU.

    .venv/bin/python -m studies.ensemble_rescore reports/gpu_ensemble/alexnet.npz [more.npz ...]

For each member, and for the average of every subset of the members (by size), prints MNIST test
and Semeion accuracy and Semeion's expected calibration error (15 bins); for the average of all
members also the recall of each class and its most common misreadings. Several files are pooled
(e.g. the alexnets' and the cnns' together).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from keras_digits.data import datasets
from studies.handwriting_study import ensemble_row, semeion_inputs


def score(members: list[dict], y_test: np.ndarray, y_semeion: np.ndarray) -> tuple:
    """(MNIST test %, Semeion %, Semeion ECE %) of the members' mean probabilities."""
    row = ensemble_row(dict(enumerate(members)), y_test, y_semeion, commit="")
    return row["test_accuracy"], row["semeion"], row["semeion_ece"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    members: dict[str, dict] = {}
    for path in args.files:
        with np.load(path) as kept:
            for key in kept.files:
                variant, split = key.rsplit("/", 1)
                members.setdefault(variant, {})[split] = kept[key]
    y_test = datasets.load_arrays("mnist").test_labels
    _, y_semeion = semeion_inputs(Path(tempfile.mkdtemp(prefix="ensemble-rescore-")))
    names = list(members)
    print("members:", ", ".join(names))
    print(f"{'averaged':<10} {'MNIST test':>22} {'Semeion':>22} {'Semeion ECE':>22}")
    for size in range(1, len(names) + 1):
        rows = np.array([score([members[n] for n in subset], y_test, y_semeion)
                         for subset in itertools.combinations(names, size)])
        cells = [f"{m:6.2f} ({lo:.2f}-{hi:.2f})"
                 for m, lo, hi in zip(rows.mean(0), rows.min(0), rows.max(0), strict=True)]
        print(f"{size:<10} " + " ".join(f"{c:>22}" for c in cells))
    semeion = np.mean([m["semeion"] for m in members.values()], axis=0).argmax(1)
    print("the average of all, per class: recall and most common misreadings")
    for digit in range(10):
        mine = semeion[y_semeion == digit]
        wrong = Counter(mine[mine != digit].tolist()).most_common(3)
        print(f"  {digit}: {100 * float((mine == digit).mean()):5.1f}%  "
              + ", ".join(f"as {d}: {n}" for d, n in wrong))


if __name__ == "__main__":
    main()
