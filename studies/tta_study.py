"""Does reading each digit several times, slightly warped, and averaging help other writers?

Test-time augmentation: each 28x28 that predict makes is also read turned, scaled, narrowed or
shifted, and the answers' probabilities are averaged; the temperature is refitted on MNIST's
validation split read the same way (as `calibrate` fits it). Scored on MNIST test and on Semeion
(only measured, never fitted on) for the models in `saved_models/mnist/`. Only symmetric sets
are reported (a turn both ways, a scale both ways): a set leaning one way would be a guess at one
set of writers' slant.

    .venv/bin/python -m studies.tta_study --model cnn alexnet
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from keras_digits.data import datasets
from keras_digits.models import calibration
from studies.handwriting_study import semeion_inputs

ROOT = Path(__file__).resolve().parent.parent

# name: (turn in degrees, horizontal scale, vertical scale, shift right, shift down)
WARPS = {"turn +8": (8, 1, 1, 0, 0), "turn -8": (-8, 1, 1, 0, 0),
         "scale 0.9": (0, 0.9, 0.9, 0, 0), "scale 1.1": (0, 1.1, 1.1, 0, 0),
         "width 0.85": (0, 0.85, 1, 0, 0), "width 1.15": (0, 1.15, 1, 0, 0),
         "right 1": (0, 1, 1, 1, 0), "left 1": (0, 1, 1, -1, 0),
         "down 1": (0, 1, 1, 0, 1), "up 1": (0, 1, 1, 0, -1)}
SETS = {"one reading": [],
        "turned ±8°": ["turn +8", "turn -8"],
        "scaled ±10%": ["scale 0.9", "scale 1.1"],
        "width ±15%": ["width 0.85", "width 1.15"],
        "shifted 1 px": ["right 1", "left 1", "down 1", "up 1"],
        "turned and width": ["turn +8", "turn -8", "width 0.85", "width 1.15"],
        "all eleven": list(WARPS)}


def warp(images: np.ndarray, turn: float, sx: float, sy: float, dx: float, dy: float):
    """The images (N, 28, 28, 1) turned, scaled about their centre and shifted, bilinearly."""
    from keras import ops

    angle = math.radians(turn)
    cos, sin = math.cos(angle), math.sin(angle)
    forward = np.array([[cos * sx, -sin * sy], [sin * sx, cos * sy]])
    inverse = np.linalg.inv(forward)  # the sampler maps output pixels back to input ones
    centre = np.array([13.5, 13.5])
    offset = centre - inverse @ (centre + np.array([dx, dy]))
    transform = np.array([[inverse[0, 0], inverse[0, 1], offset[0],
                           inverse[1, 0], inverse[1, 1], offset[1], 0, 0]], np.float32)
    warped = ops.image.affine_transform(ops.convert_to_tensor(images.astype(np.float32)),
                                        np.repeat(transform, len(images), axis=0),
                                        interpolation="bilinear", fill_mode="constant")
    return ops.convert_to_numpy(warped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["cnn", "alexnet"])
    parser.add_argument("--models-dir", default=str(ROOT / "saved_models"))
    args = parser.parse_args()

    import keras

    semeion = semeion_inputs(Path(tempfile.mkdtemp(prefix="tta-study-")))
    splits = datasets.split(datasets.load_arrays("mnist"))
    sets = {"semeion": semeion, "validation": splits.validation, "test": splits.test}
    for name in args.model:
        model = keras.models.load_model(Path(args.models_dir) / "mnist" / name / "model.keras")
        started = time.time()
        read = {w: {s: model.predict(warp(x, *WARPS[w]) if w != "as given" else x,
                                     batch_size=512, verbose=0)
                    for s, (x, _) in sets.items()}
                for w in ("as given", *WARPS)}
        seconds = time.time() - started
        print(f"\n{name} ({seconds:.0f} s for {len(read)} readings of each set)\n"
              "| readings | T refitted | MNIST test | Semeion | Semeion ECE | MNIST test ECE |\n"
              "|---|---:|---:|---:|---:|---:|")
        for label, warps in SETS.items():
            mean = {s: np.mean([read[w][s] for w in ("as given", *warps)], axis=0) for s in sets}
            temperature = calibration.fit_temperature(mean["validation"], sets["validation"][1])
            scores = {s: calibration.summary(calibration.apply_temperature(p, temperature),
                                           sets[s][1]) for s, p in mean.items()}
            print(f"| {label} ({1 + len(warps)}) | {temperature:.3f} "
                  f"| {100 * scores['test']['accuracy']:.2f}% "
                  f"| {100 * scores['semeion']['accuracy']:.2f}% "
                  f"| {100 * scores['semeion']['ece']:.2f}% "
                  f"| {100 * scores['test']['ece']:.2f}% |", flush=True)
        print(json.dumps({"model": name, "one_way_semeion": {
            w: round(100 * float((read[w]["semeion"].argmax(1) == semeion[1]).mean()), 2)
            for w in read}}))


if __name__ == "__main__":
    main()
