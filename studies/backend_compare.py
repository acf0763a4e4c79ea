"""JAX against TensorFlow as the Keras backend of `train`, per model, on this machine.

For each model the two backends are measured back to back (a child process each, since Keras
fixes its backend at import), so both see the same machine load. Each child builds the model
exactly as `train` does (`compiled.build_compiled`: recipe, precision, jit), fits one warm-up epoch
(tracing, compilation) and then times one epoch on `--images` MNIST training images. On JAX it
times both feedings `train` could use: tf.data (what it uses) and numpy arrays.

    .venv/bin/python -m studies.backend_compare [--models cnn alexnet] [--images 8192]

Prints a Markdown table and writes bench_results/backend_compare.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(model_name: str, images: int, feedings: list[str]) -> dict:
    """Runs in the child: training images/s of one model for each feeding."""
    import keras

    from keras_digits.data import datasets
    from keras_digits.training import input_pipeline
    from keras_digits.training.compiled import TrainConfig, build_compiled

    splits = datasets.split(datasets.load_arrays("mnist"), images)
    x, y = splits.train
    results = {}
    for feeding in feedings:
        keras.utils.set_random_seed(0)
        plan = build_compiled(TrainConfig(model=model_name), len(x))
        inputs = input_pipeline.train_feed(x, y, plan.batch_size, arrays=feeding == "numpy")
        plan.model.fit(**inputs, epochs=1, verbose=0)
        start = time.perf_counter()
        plan.model.fit(**inputs, initial_epoch=1, epochs=2, verbose=0)
        seconds = time.perf_counter() - start
        results[feeding] = {"images_per_s": round(len(x) / seconds, 1),
                            "precision": plan.precision, "jit": plan.jit,
                            "batch_size": plan.batch_size}
    return results


def child(backend: str, model_name: str, images: int) -> dict:
    feedings = ["tf.data"] + (["numpy"] if backend == "jax" else [])
    code = ("import json, sys; from studies.backend_compare import measure; "
            "print('RESULT ' + json.dumps(measure(sys.argv[1], int(sys.argv[2]), "
            "sys.argv[3].split(','))))")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-c", code, model_name, str(images), ",".join(feedings)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800,
                          cwd=REPO)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"error: {backend} {model_name} failed:\n{done.stderr[-2000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> int:
    from keras_digits.core import atomic
    from keras_digits.core.names import MODEL_NAMES
    from keras_digits.training import runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--images", type=int, default=8192)
    args = parser.parse_args()
    rows = {}
    for name in args.models:
        rows[name] = {"tensorflow": child("tensorflow", name, args.images),
                      "jax": child("jax", name, args.images)}
        print(f"{name}: {json.dumps(rows[name])}", flush=True)
    print("\n| model | precision | TensorFlow, tf.data | JAX, tf.data | JAX, numpy | JAX/TF |")
    print("|---|---|---:|---:|---:|---:|")
    for name, row in rows.items():
        tf_rate = row["tensorflow"]["tf.data"]["images_per_s"]
        jax_best = max(r["images_per_s"] for r in row["jax"].values())
        print(f"| {name} | {row['tensorflow']['tf.data']['precision']} | {tf_rate:,.0f} img/s "
              f"| {row['jax']['tf.data']['images_per_s']:,.0f} img/s "
              f"| {row['jax']['numpy']['images_per_s']:,.0f} img/s | {jax_best / tf_rate:.2f}× |")
    out = REPO / "bench_results"
    out.mkdir(exist_ok=True)
    atomic.write_json(out / "backend_compare.json",
                      {"images": args.images, "results": rows,
                       "machine": runtime.machine_description(gpu=False),
                       "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                       "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
