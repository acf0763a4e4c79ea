"""Where one AlexNet training step spends its time on this machine, part by part.

Times each part of a training step of the registry AlexNet (batch 256, its recipe's optimizer),
each compiled with tf.function, best of `--repeats` after a warm-up:

- step: the whole step, as `model.fit` runs it (distortions, forward, backward, Adam)
- distortions: the training-only pen and warp layers, forward (they have no weights)
- convolutions: the five conv/BatchNorm/pool blocks, forward and backward
- dense: fc6, fc7 and the logits, forward and backward, from features of the same shape
- adam: the optimizer's update of all 18M weights, with gradients given

The parts are timed apart, so they need not add up to the step exactly (the step overlaps some
work and adds the loss and the gradient bookkeeping). Each precision asked for is measured in
the same run, float32 first, so their ratio is fair. Prints a table and a JSON line for each.

    .venv/bin/python -m studies.alexnet_profile [--precision float32 mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def best_seconds(fn, repeats: int) -> float:
    fn()  # trace and warm up
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def profile(precision: str, batch: int, repeats: int) -> dict:
    """Milliseconds per part of one training step under `precision`."""
    import keras
    import tensorflow as tf

    from keras_digits.analysis import flops
    from keras_digits.models import registry

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = registry.create_model("alexnet")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    recipe = registry.get_entry("alexnet").recipe
    optimizer = keras.optimizers.Adam(recipe.learning_rate)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    rng = np.random.default_rng(0)
    pixels = tf.constant(rng.integers(0, 256, (batch, 28, 28, 1)).astype("float32"))
    labels = tf.constant(rng.integers(0, 10, batch))

    distort = keras.Model(model.input, model.get_layer("handwriting").output)
    convolutions = keras.Model(model.get_layer("conv1_conv").input,
                               model.get_layer("flatten").output)
    dense = keras.Model(model.get_layer("fc6").input, model.get_layer("probabilities").output)
    distorted = distort(pixels, training=True)
    features = convolutions(distorted, training=True)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(pixels, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables),
                        model.trainable_variables)

    @tf.function
    def distortions():
        return distort(pixels, training=True)

    def backward_through(part, inputs):
        @tf.function
        def run():
            with tf.GradientTape() as tape:
                out = tf.reduce_mean(tf.cast(part(inputs, training=True), tf.float32))
            return tape.gradient(out, part.trainable_variables)
        return run

    zeros = [tf.zeros_like(v) for v in model.trainable_variables]

    @tf.function
    def adam():
        optimizer.apply(zeros, model.trainable_variables)

    parts = {"step": step, "distortions": distortions,
             "convolutions": backward_through(convolutions, distorted),
             "dense": backward_through(dense, features), "adam": adam}
    seconds = {name: best_seconds(fn, repeats) for name, fn in parts.items()}
    conv_flops = flops.forward_flops(convolutions) * flops.TRAINING_PASSES * batch
    dense_flops = flops.forward_flops(dense) * flops.TRAINING_PASSES * batch
    return {"precision": precision, "batch": batch,
            "ms": {k: round(1000 * v, 1) for k, v in seconds.items()},
            "share_of_step": {k: round(v / seconds["step"], 3) for k, v in seconds.items()
                              if k != "step"},
            "gflops_per_s": {"convolutions": round(conv_flops / seconds["convolutions"] / 1e9, 1),
                             "dense": round(dense_flops / seconds["dense"] / 1e9, 1)},
            "epoch_seconds_55k": round(seconds["step"] * 55_000 / batch, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"],
                        choices=("float32", "mixed_bfloat16"))
    args = parser.parse_args()

    from keras_digits.analysis import flops

    peak = flops.matmul_peak()
    rows = [profile(precision, args.batch, args.repeats) for precision in args.precision]
    print(f"float32 matmul peak: {peak['gflops_per_s']} GFLOP/s\n")
    print("| part | " + " | ".join(f"{r['precision']} ms (share)" for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for part in rows[0]["ms"]:
        print(f"| {part} | " + " | ".join(
            f"{r['ms'][part]} ({100 * r['share_of_step'].get(part, 1.0):.0f}%)" for r in rows)
            + " |")
    for row in rows:
        row["matmul_peak_gflops_per_s"] = peak["gflops_per_s"]
        row["step_speedup_vs_first"] = round(rows[0]["ms"]["step"] / row["ms"]["step"], 2)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
