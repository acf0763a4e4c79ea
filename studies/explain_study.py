"""Are the evidence maps of `explain` faithful? Two checks, on MNIST test digits.

    .venv/bin/python -m studies.explain_study [--count 1000] [--models cnn alexnet]
        [--patches 2 3 4] [--random-count 100]

Deletion test: set to paper the 10% of a digit's ink pixels that the map ranks highest, and
measure how far the probability of the model's answer falls; the same with 10% of the ink chosen
at random (three draws, averaged). A faithful map's deletion hurts far more than a random one:
the ratio of the two mean falls is printed for each occlusion patch size, and for the gradient
map (the gradient of the answer's log-odds against the runner-up, times the input, from the
Keras model: the usual cheap alternative, which needs TensorFlow).

Model randomisation (Adebayo et al., 2018): the same model with its weights re-initialised
(`registry.create_model`, untrained) should give maps unlike the trained model's. Printed: the
median Spearman rank correlation between the two maps over each digit's ink pixels (where an
occlusion map can be non-zero), and over all 784 pixels.

Trained models are the exported ONNX files (`export/mnist/NAME.onnx`), as `explain` reads them.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from keras_digits.core import artifacts
from keras_digits.data import datasets
from keras_digits.reading import explain
from keras_digits.reading.reader import DigitReader


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long vectors (ties ranked in order)."""
    ra, rb = (np.argsort(np.argsort(v, kind="stable")).astype(np.float64) for v in (a, b))
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denominator) if denominator else 0.0


def gradient_map(model, pixels: np.ndarray, answer: int, rival: int) -> np.ndarray:
    """Gradient x input of log p(answer) - log p(rival), from a Keras model (TensorFlow)."""
    import tensorflow as tf

    x = tf.constant(pixels[None].astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        p = tf.clip_by_value(model(x, training=False), explain.EPSILON, 1.0)
        margin = tf.math.log(p[0, answer]) - tf.math.log(p[0, rival])
    return (tape.gradient(margin, x)[0, ..., 0] * x[0, ..., 0]).numpy()


def deletion(classifier, images: np.ndarray, maps: list[np.ndarray], answers: list[int],
             rng: np.random.Generator) -> tuple[float, float]:
    """Mean fall of p(answer) deleting the top 10% of ink by the maps, and at random."""
    ranked, random = [], []
    for pixels, ranking, answer in zip(images, maps, answers, strict=True):
        ranked.append(explain.deletion_drop(classifier, pixels, ranking, answer))
        random.append(np.mean([explain.deletion_drop(
            classifier, pixels, rng.random(pixels.shape[:2]), answer) for _ in range(3)]))
    return float(np.mean(ranked)), float(np.mean(random))


def keras_classifier(model):
    return lambda pixels: np.asarray(model(pixels.astype(np.float32), training=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--random-count", type=int, default=100)
    parser.add_argument("--models", nargs="+", default=["cnn", "alexnet"])
    parser.add_argument("--patches", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--models-dir", default="saved_models")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras

    from keras_digits.models import registry, saved

    images = datasets.load_arrays("mnist").test_images[:args.count].astype(np.float32)
    for name in args.models:
        onnx = DigitReader(name, export_dir=args.export_dir).classifier
        for patch in args.patches:
            found = [explain.evidence(onnx, pixels, patch) for pixels in images]
            top, rand = deletion(onnx, images, [f.map for f in found],
                                 [f.answer for f in found], np.random.default_rng(args.seed))
            print(f"{name} occlusion {patch}x{patch}: deleting the top 10% of ink lowers "
                  f"p(answer) by {top:.4f}, 10% at random by {rand:.4f}: "
                  f"{top / max(rand, 1e-12):.1f}x", flush=True)
        trained = saved.load_trained(
            artifacts.model_dir(args.models_dir, "mnist", name) / "model.keras", name)
        grads = []
        for pixels in images:
            p = np.asarray(trained(pixels[None], training=False))[0]
            answer, rival = (int(i) for i in np.argsort(-p)[:2])
            grads.append((gradient_map(trained, pixels, answer, rival), answer))
        top, rand = deletion(onnx, images, [g for g, _ in grads], [a for _, a in grads],
                             np.random.default_rng(args.seed))
        print(f"{name} gradient x input: deleting the top 10% of ink lowers p(answer) by "
              f"{top:.4f}, 10% at random by {rand:.4f}: {top / max(rand, 1e-12):.1f}x",
              flush=True)
        keras.utils.set_random_seed(args.seed)
        untrained = keras_classifier(registry.create_model(name))
        on_ink, everywhere = [], []
        for pixels in images[:args.random_count]:
            mine = explain.evidence(onnx, pixels).map
            theirs = explain.evidence(untrained, pixels).map
            ink = pixels[..., 0] > 0
            on_ink.append(spearman(mine[ink], theirs[ink]))
            everywhere.append(spearman(mine.ravel(), theirs.ravel()))
        print(f"{name} re-initialised: rank correlation with the trained model's map, median "
              f"over {len(on_ink)} digits: {np.median(on_ink):.3f} on the ink, "
              f"{np.median(everywhere):.3f} over all pixels", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
