"""The one-digit verifier: `python -m keras_digits.verifier [--examples 30000]`.

A digit classifier is as sure of two squashed, touching digits ("53" read as a 3 at 100%) as of
one, so its confidence cannot say where to cut a number. This small CNN answers the other
question: is this piece of ink one whole digit, or two digits, or a part of one? It learns from
MNIST training digits laid out by `compose`: lone digits (whole or with a skipped stroke) are
one digit; neighbours side by side (touching or close) and the two sides of a cut through a lone
digit are not. Each example is enlarged 1-4 times, as photos and scans show numbers larger than
MNIST's 28 pixels (trained at MNIST's scale alone, it doubted bold whole digits in enlarged
numbers and let them be cut in two), and goes through number mode's own preprocessing
(`segment`, then the MNIST recipe), so the verifier sees what it will judge.

The reader multiplies its score into the classifier's when it cuts a number
(`segment.choose_cut`); predict, the HTTP endpoint and the page use it whenever
`export/mnist/verifier/one_digit.onnx` exists. Written atomically, with a JSON of how it was
made beside it; it never sees the test split.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from keras_digits.core import artifacts, atomic
from keras_digits.core.cli import Parser, UserError, positive_int, run_cli
from keras_digits.data import datasets
from keras_digits.data.compose import compose, enlarge
from keras_digits.imaging import decode, find_ink, normalize, segment, strokes

CLASSES = ("one digit",)  # the single output: the probability that a piece is one whole digit
PAIR_LAYOUTS = ("touching", "touching", "separated")  # neighbours, mostly touching
LARGEST = 4.0  # examples are enlarged by a factor drawn evenly in log scale from 1 to this


def _ink(image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """The ink map of a composed image, as number mode makes it (faint marks evened out); with
    `rng`, of the image enlarged by a random factor."""
    if rng is not None:
        image = enlarge(image, float(np.exp(rng.uniform(0.0, np.log(LARGEST)))))
    return strokes.even_out(find_ink.ink_map(decode.read_gray(image)))


def _cut_sides(ink: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Both sides of a cut through one digit, where number mode would try one: no digit."""
    mask = ink > 0.5
    columns = segment.cut_candidates(mask, segment.VERIFIED_CANDIDATES)
    if not columns:
        return []
    sides, _ = segment.cut_at(mask, int(rng.choice(columns)))
    return [normalize.to_pixels(segment.piece_ink(ink, side)) for side in sides
            if side.sum() > 0.2 * mask.sum()]  # a sliver cut off is still most of a digit


def examples(images: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, 1 for one whole digit else 0): `count` lone digits, `count` neighbour pairs and
    the sides of up to `count` cut digits, from `images` (white ink on black, 0-255)."""
    rng = np.random.default_rng(seed)
    pixels, labels = [], []
    for k in range(count):
        i, j, other = (int(v) for v in rng.integers(len(images), size=3))
        lone = compose([images[i]], ("separated", "broken")[k % 2], rng)
        pixels.append(normalize.to_pixels(_ink(lone, rng)))
        labels.append(1)
        pair = compose([images[j], images[other]], PAIR_LAYOUTS[k % len(PAIR_LAYOUTS)], rng)
        pixels.append(normalize.to_pixels(_ink(pair, rng)))
        labels.append(0)
        sides = _cut_sides(_ink(compose([images[i]], "separated", rng), rng), rng)
        pixels.extend(sides)
        labels.extend([0] * len(sides))
    return np.stack(pixels).astype(np.float32), np.asarray(labels, np.float32)


def build_verifier():
    """Raw 0-255 pixels in, the probability of one whole digit out (N, 1)."""
    import keras

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="one_digit_verifier")


def train_verifier(export_root: Path, count: int = 30000, epochs: int = 10, seed: int = 0,
                   data_dir: str | None = None) -> dict:
    """Make the examples, train, write the ONNX file and its JSON; returns the JSON's content."""
    import keras

    from keras_digits.deploy.export import export_onnx

    final = artifacts.verifier_path(artifacts.export_dir(export_root, "mnist"))
    atomic.require_writable(final.parent)
    atomic.sweep_leftovers(final.parent)
    started = time.time()
    images = datasets.load_arrays("mnist", data_dir).train_images[..., 0]
    pixels, labels = examples(images, count, seed)
    order = np.random.default_rng(seed).permutation(len(labels))
    pixels, labels = pixels[order], labels[order]
    # Both answers weigh the same however many examples each has.
    weights = np.where(labels == 1, (labels == 0).sum() / max(1, labels.sum()), 1.0)
    held = max(1, len(labels) // 10)
    keras.utils.set_random_seed(seed)
    model = build_verifier()
    model.compile("adam", "binary_crossentropy", weighted_metrics=["accuracy"])
    model.fit(pixels[held:], labels[held:], sample_weight=weights[held:], batch_size=128,
              epochs=epochs, verbose=2)
    said = model.predict(pixels[:held], verbose=0)[:, 0] > 0.5
    accuracy = float(np.mean(said == (labels[:held] == 1)))
    export_onnx(model, final, "one_digit_verifier", "mnist", CLASSES)
    info = {"examples": int(len(labels)), "one_digit": int(labels.sum()), "epochs": epochs,
            "seed": seed, "held_out": held, "held_out_accuracy": round(accuracy, 4),
            "seconds": round(time.time() - started, 1), "file": str(final)}
    atomic.write_json(final.with_suffix(".json"), info)
    return info


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.verifier",
                    description="Train the one-digit verifier that number mode cuts with.")
    parser.add_argument("--examples", type=positive_int, default=30000,
                        help="lone digits to make (as many pairs and cut digits come with them)")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default="export")
    parser.add_argument("--data-dir", help="folder with the MNIST IDX files")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.examples < 10:
        raise UserError(f"--examples {args.examples} is too few to learn from; pass 10 or more")
    info = train_verifier(Path(args.out_dir), args.examples, args.epochs, args.seed,
                          args.data_dir)
    print(f"one-digit verifier: {info['held_out_accuracy']:.2%} right on {info['held_out']} "
          f"held-out pieces; written to {info['file']}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
