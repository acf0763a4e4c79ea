"""Two-process data-parallel training against one process with the same global batch.

Starts `--processes` local processes of `train --distribute data-parallel` (one CPU device each,
`--batch-size` per device, gloo collectives over localhost), then one process alone with the
whole global batch on one device, and compares them: test accuracy, epoch seconds, and whether
every process of the cluster ended with the same weights.

    .venv/bin/python -m studies.data_parallel_check [--model cnn] [--processes 2]
        [--batch-size 128] [--limit N] [--epochs N] [--out /tmp/data_parallel]

Prints a Markdown table and writes OUT/data_parallel.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def train_command(args, out: Path, batch_size: int) -> list[str]:
    command = [sys.executable, "-m", "keras_digits.train", args.model, "--quiet", "--no-report",
               "--distribute", "data-parallel", "--out-dir", str(out),
               "--batch-size", str(batch_size)]
    for flag in ("limit", "epochs"):
        if getattr(args, flag):
            command += [f"--{flag}", str(getattr(args, flag))]
    return command


def summary(folder: Path, model: str) -> dict:
    from keras_digits.core import artifacts

    metrics = artifacts.read_metrics(folder, "mnist", model)
    rows = artifacts.read_history(folder / "mnist" / model / "history.csv")
    return {"test_accuracy": metrics["test_accuracy"], "epochs_run": metrics["epochs_run"],
            "best_epoch": metrics["best_epoch"], "batch_size": metrics["batch_size"],
            "processes": metrics["processes"], "replicas": metrics["replicas"],
            "mean_epoch_seconds": round(sum(r["epoch_seconds"] for r in rows) / len(rows), 1),
            "weights_sha256": metrics["weights_sha256"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="per device")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--out", type=Path, default=Path("/tmp/data_parallel"))
    args = parser.parse_args()
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    began = time.time()
    cluster_out = args.out / "cluster"
    cluster_out.mkdir(parents=True, exist_ok=True)
    logs = [cluster_out / f"process-{i}.log" for i in range(args.processes)]
    runs = []
    for i, log in enumerate(logs):  # a file each: a full pipe would stall a process
        with log.open("w") as sink:
            runs.append(subprocess.Popen(
                train_command(args, cluster_out, args.batch_size)
                + ["--coordinator", f"localhost:{port}", "--num-processes", str(args.processes),
                   "--process-id", str(i)],
                cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT))
    for run in runs:
        run.wait()
    texts = [log.read_text() for log in logs]
    if any(run.returncode for run in runs):
        for log, run in zip(logs, runs, strict=True):
            print(f"{log} (exit {run.returncode}):\n{log.read_text()[-2000:]}")
        return 1
    digests = {re.search(r"weights sha256 ([0-9a-f]+)", text).group(1) for text in texts}
    cluster_seconds = time.time() - began

    began = time.time()
    alone_out = args.out / "alone"
    subprocess.run(train_command(args, alone_out, args.batch_size * args.processes), cwd=REPO,
                   env=env, check=True, capture_output=True, text=True)
    alone_seconds = time.time() - began

    rows = {f"{args.processes} processes": summary(cluster_out, args.model)
            | {"wall_seconds": round(cluster_seconds), "same_weights_everywhere":
               len(digests) == 1},
            "1 process": summary(alone_out, args.model) | {"wall_seconds": round(alone_seconds)}}
    print("| run | global batch | epochs (best) | test accuracy | mean epoch | wall |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['batch_size']} | {row['epochs_run']} ({row['best_epoch']}) "
              f"| {100 * row['test_accuracy']:.2f}% | {row['mean_epoch_seconds']} s "
              f"| {row['wall_seconds']} s |")
    first, second = rows.values()
    print(f"same weights in every process: {first['same_weights_everywhere']}; accuracy "
          f"difference {100 * (first['test_accuracy'] - second['test_accuracy']):+.2f} pp")
    (args.out / "data_parallel.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "rows": rows,
         "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
