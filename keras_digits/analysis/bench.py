"""Benchmark stage: `python -m keras_digits.bench [SUITE...]`, against in-run baselines.

Every figure is measured against a baseline run in the same invocation, because the machines
this runs on are shared and noisy; results are reported as ratios beside the raw numbers, and
written as JSON and a Markdown table with the machine, library versions and the exact command.

- time-to-accuracy: wall seconds of training until the MNIST test accuracy first reaches 98.6%,
  99.0% and 99.5%, mean and spread over `--seeds`, for our CNNs against the keras.io "Simple
  MNIST convnet" (keras_digits/analysis/time_to_accuracy.py).
- train: steady-state training images/s per model (one warm-up epoch, then one timed epoch),
  and the FLOP/s that makes as a share of this machine's float32 matmul peak, measured in the
  same run (analysis/flops.py).
- pipeline: the tf.data input pipeline alone, next to the fastest model's training rate.
- inference: batch-1 latency (p50/p99) and batch-256 images/s for `model.predict`, `model(x)`,
  the SavedModel signature, onnxruntime and LiteRT, fp32 and int8 (each with its file size).

Runs on the JAX backend too (`KERAS_BACKEND=jax`): there the data is fed as numpy arrays and the
TensorFlow-only parts (tf.data, SavedModel) are skipped.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from keras_digits.analysis import flops, time_to_accuracy
from keras_digits.core import artifacts, atomic
from keras_digits.core.cli import Parser, positive_int, run_cli
from keras_digits.core.names import MODEL_NAMES
from keras_digits.data import datasets
from keras_digits.deploy import litert
from keras_digits.models.saved import load_trained
from keras_digits.training import input_pipeline, runtime
from keras_digits.training.compiled import TrainConfig, build_compiled

SUITES = ("time-to-accuracy", "train", "pipeline", "inference")


def _backend() -> str:
    import keras

    return keras.backend.backend()


def bench_train(arrays: datasets.Arrays, models: list[str], images: int, seed: int,
                peak: dict, precisions: tuple[str, ...] = ("auto",)) -> dict:
    """Steady-state training throughput: a warm-up epoch (tracing, caches), then a timed one;
    and what share of the machine's matmul `peak` (measured in the same run) that is. Each model
    runs in each of `precisions` that resolves to a precision not yet measured for it; rows
    after a model's first are named `model (precision)`."""
    import keras

    splits = datasets.split(arrays, images)
    results = {}
    runs = [("keras_io_convnet", "float32")] + [(m, p) for m in models for p in precisions]
    measured: set[tuple[str, str]] = set()
    for name, precision in runs:
        keras.utils.set_random_seed(seed)
        if name == "keras_io_convnet":
            model, batch, resolved, share = time_to_accuracy.keras_io_convnet(), 128, "float32", 0.0
        else:
            plan = build_compiled(TrainConfig(model=name, precision=precision),
                                  len(splits.train[0]))
            model, batch, resolved = plan.model, plan.batch_size, plan.precision
            share = plan.predict_view
        if (name, resolved) in measured:
            continue
        key = name if not any(done == name for done, _ in measured) else f"{name} ({resolved})"
        measured.add((name, resolved))
        inputs = time_to_accuracy.fit_inputs(*splits.train, batch, seed, share)
        model.fit(**inputs, epochs=1, verbose=0)
        start = time.perf_counter()
        model.fit(**inputs, initial_epoch=1, epochs=2, verbose=0)
        seconds = time.perf_counter() - start
        rate = len(splits.train[0]) / seconds
        work = flops.TRAINING_PASSES * flops.forward_flops(model)
        results[key] = {"images_per_s": round(rate, 1), "batch_size": batch, "precision": resolved,
                         "epoch_seconds_55k": round(55_000 / rate, 1),
                         "training_flops_per_image": work,
                         "share_of_peak": flops.share_of_peak(work, rate, peak)}
    base = results["keras_io_convnet"]["images_per_s"]
    for entry in results.values():
        entry["ratio_vs_keras_io_convnet"] = round(entry["images_per_s"] / base, 2)
    return results


def bench_pipeline(arrays: datasets.Arrays, batch_size: int = 128, epochs: int = 3) -> dict:
    """The tf.data pipeline alone: how fast it can hand batches to a model."""
    if _backend() != "tensorflow":
        return {"skipped": "tf.data needs the TensorFlow backend"}
    splits = datasets.split(arrays)
    dataset = input_pipeline.to_dataset(*splits.train, batch_size, shuffle=True)
    for _ in dataset:  # fill the cache
        pass
    start = time.perf_counter()
    count = 0
    for _ in range(epochs):
        for images, _labels in dataset:
            count += int(images.shape[0])
    seconds = time.perf_counter() - start
    return {"images_per_s": round(count / seconds, 1), "batch_size": batch_size}


def _latencies(fn, batch: np.ndarray, repeats: int) -> dict:
    fn(batch)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - start)
    return {"p50_ms": round(1000 * float(np.percentile(times, 50)), 3),
            "p99_ms": round(1000 * float(np.percentile(times, 99)), 3)}


def _throughput(fn, images: np.ndarray, batch: int, rounds: int = 3) -> float:
    fn(images[:batch])
    start = time.perf_counter()
    count = 0
    for _ in range(rounds):
        for i in range(0, len(images) - batch + 1, batch):
            fn(images[i:i + batch])
            count += batch
    return round(count / (time.perf_counter() - start), 1)


def bench_inference(arrays: datasets.Arrays, models: list[str], models_dir: Path, export_dir: Path,
                    repeats: int, peak: dict) -> dict:
    import keras

    from keras_digits.deploy.export import onnx_runner

    images = arrays.test_images[:2048].astype(np.float32)
    one = images[:1]
    results = {}
    for name in models:
        keras_path = artifacts.model_dir(models_dir, "mnist", name) / "model.keras"
        if not keras_path.is_file():
            results[name] = {"skipped": f"no trained model at {keras_path}"}
            continue
        model = load_trained(keras_path, name)
        runners = {
            "keras.predict": lambda x, m=model: m.predict(x, verbose=0),
            "keras model(x)": lambda x, m=model: keras.ops.convert_to_numpy(m(x, training=False)),
        }
        saved = artifacts.saved_model_path(export_dir, "mnist", name)
        if _backend() == "tensorflow" and saved.is_dir():
            import tensorflow as tf

            serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
            runners["SavedModel signature"] = lambda x, s=serve: s(pixels=tf.constant(x))
        for runtime_name, int8 in (("onnxruntime", False), ("onnxruntime", True),
                                   ("LiteRT", False), ("LiteRT", True)):
            path = (artifacts.onnx_path if runtime_name == "onnxruntime" else
                    artifacts.litert_path)(export_dir, "mnist", name, int8=int8)
            if not path.is_file() or (runtime_name == "LiteRT" and _backend() != "tensorflow"):
                continue
            label = f"{runtime_name} {'int8' if int8 else 'fp32'}, {path.stat().st_size // 1000} kB"
            for threads in (1, os.cpu_count() or 1):
                plural = "s" if threads > 1 else ""
                runners[f"{label} ({threads} thread{plural})"] = (
                    litert.runner if runtime_name == "LiteRT" else onnx_runner)(path, threads)
        rows, forward = {}, flops.forward_flops(model)
        for label, fn in runners.items():
            reps = max(10, repeats // 10) if label == "keras.predict" else repeats
            rows[label] = {"batch1": _latencies(fn, one, reps),
                           "batch256_images_per_s": _throughput(fn, images, 256)}
        base_latency = rows["keras.predict"]["batch1"]["p50_ms"]
        base_throughput = rows["keras model(x)"]["batch256_images_per_s"]
        for row in rows.values():
            row["batch1_speedup_vs_keras_predict"] = round(
                base_latency / max(row["batch1"]["p50_ms"], 1e-6), 1)
            row["batch256_ratio_vs_keras_call"] = round(
                row["batch256_images_per_s"] / base_throughput, 2)
            row["batch256_share_of_peak"] = flops.share_of_peak(
                forward, row["batch256_images_per_s"], peak)
        results[name] = rows
    return results


def to_markdown(report: dict) -> str:
    table = artifacts.markdown_table
    lines = [f"# Benchmark ({report['machine']['description']})", "",
             f"Command: `{report['command']}`  ", f"Date: {report['date']}  ",
             f"Versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}", ""]
    if tta := report.get("time-to-accuracy"):
        lines += time_to_accuracy.to_markdown(tta)
    if peak := report.get("peak"):
        lines += [f"Float32 matmul peak of this machine, measured in this run: "
                  f"{peak['gflops_per_s']} GFLOP/s ({peak['size']}-square, best of 8).", ""]
    if train := report.get("train"):
        lines += ["## Training throughput (steady state)", "", table(
            ("model", "precision", "batch", "images/s", "epoch of 55k", "vs keras.io convnet",
             "share of peak"),
            [[name, row["precision"], str(row["batch_size"]), str(row["images_per_s"]),
              f"{row['epoch_seconds_55k']} s", f"{row['ratio_vs_keras_io_convnet']}x",
              f"{100 * row['share_of_peak']:.1f}%"]
             for name, row in train.items()]), ""]
    if report.get("pipeline"):
        lines += ["## tf.data pipeline alone", "", f"{report['pipeline']}", ""]
    for name, rows in (report.get("inference") or {}).items():
        lines += [f"## Inference: {name}", "", rows["skipped"] if "skipped" in rows else table(
            ("runtime", "batch-1 p50 ms", "batch-1 p99 ms", "vs keras.predict",
             "batch-256 images/s", "vs Keras model(x)", "share of peak"),
            [[label, str(row["batch1"]["p50_ms"]), str(row["batch1"]["p99_ms"]),
              f"{row['batch1_speedup_vs_keras_predict']}x", str(row["batch256_images_per_s"]),
              f"{row['batch256_ratio_vs_keras_call']}x",
              f"{100 * row['batch256_share_of_peak']:.1f}%"] for label, row in rows.items()]),
            ""]
    return "\n".join(lines)


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.bench",
                    description="Measure training and inference speed against in-run baselines.")
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"any of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--limit", type=positive_int,
                        help="time-to-accuracy on at most N images per split (default: all)")
    parser.add_argument("--train-images", type=positive_int, default=8192,
                        help="images per epoch for the throughput suite")
    parser.add_argument("--max-epochs", type=positive_int, default=8)
    parser.add_argument("--precisions", nargs="+", default=["auto"],
                        choices=("auto", "float32", "mixed", "bfloat16"),
                        help="train suite: each model in each of these precisions")
    parser.add_argument("--repeats", type=positive_int, default=200,
                        help="batch-1 calls per latency measurement")
    parser.add_argument("--seed", type=int, default=0, help="the seed (the first of --seeds)")
    parser.add_argument("--seeds", type=positive_int, default=1,
                        help="time-to-accuracy: repeat the race with this many seeds")
    parser.add_argument("--contestants", nargs="+",
                        default=list(time_to_accuracy.DEFAULT_CONTESTANTS),
                        choices=list(time_to_accuracy.CONTESTANTS),
                        help="time-to-accuracy: who races the keras.io convnet (default: "
                             f"{' '.join(time_to_accuracy.DEFAULT_CONTESTANTS)})")
    parser.add_argument("--models-dir", default="saved_models")
    parser.add_argument("--export-dir", default="export")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="bench_results", help="folder for the JSON and Markdown")
    parser.add_argument("--name", default=None, help="file name stem (default: bench-<backend>)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    suites = args.suites or list(SUITES)
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)}: choose from {', '.join(SUITES)}")
    arrays = datasets.load_arrays("mnist", args.data_dir)
    out = Path(args.out)
    atomic.require_writable(out)
    report: dict = {
        "command": "python -m keras_digits.bench " + " ".join(shlex.quote(a) for a in argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "versions": runtime.library_versions(),
        "machine": runtime.machine_description(),
    }
    if "time-to-accuracy" in suites:
        print(f"== time to accuracy: keras.io convnet, then {', '.join(args.contestants)}",
              flush=True)
        report["time-to-accuracy"] = time_to_accuracy.race(arrays, args.limit, args.max_epochs,
                                               list(range(args.seed, args.seed + args.seeds)),
                                               args.contestants)
    if "train" in suites or "inference" in suites:
        print("== float32 matmul peak", flush=True)
        report["peak"] = flops.matmul_peak()
    if "train" in suites:
        print("== training throughput", flush=True)
        report["train"] = bench_train(arrays, args.models, args.train_images, args.seed,
                                      report["peak"], tuple(args.precisions))
    if "pipeline" in suites:
        print("== tf.data pipeline", flush=True)
        report["pipeline"] = bench_pipeline(arrays)
    if "inference" in suites:
        print("== inference", flush=True)
        report["inference"] = bench_inference(arrays, args.models, Path(args.models_dir),
                                              Path(args.export_dir), args.repeats,
                                              report["peak"])
    stem = args.name or f"bench-{report['versions']['backend']}"
    atomic.write_json(out / f"{stem}.json", report)
    markdown = to_markdown(report)
    with atomic.atomic_path(out / f"{stem}.md") as tmp:
        tmp.write_text(markdown + "\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
