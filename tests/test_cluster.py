"""Data-parallel training on the JAX backend across processes, run for real on this machine:
two processes on localhost (gloo collectives on the CPU), and every way a cluster goes wrong."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, last_error_line, run_module

from keras_digits.core import artifacts
from keras_digits.core.cli import UserError
from keras_digits.training import cluster

pytest.importorskip("jax", reason="pip install -r requirements-jax.txt")

JAX = {"KERAS_BACKEND": "jax"}
SLICE = ["cnn", "--limit", "2000", "--epochs", "2", "--quiet"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(out: Path, process_id: int, port: int, *extra: str, processes: int = 2):
    """One process of a localhost cluster, as a user would start it on each host."""
    env = {**os.environ, **JAX, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_DIGITS_OFFLINE": "1",
           "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "keras_digits.train", *SLICE, "--out-dir", str(out),
            "--distribute", "data-parallel", "--coordinator", f"localhost:{port}",
            "--num-processes", str(processes), "--process-id", str(process_id), *extra]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def digest_of(stdout: str) -> str:
    match = re.search(r"weights sha256 ([0-9a-f]{16})", stdout)
    assert match, stdout
    return match.group(1)


@pytest.mark.parametrize("env, message", [
    ({cluster.PROCESSES_ENV: "two"}, "not a whole number"),
    ({cluster.PROCESSES_ENV: "2", cluster.PROCESS_ID_ENV: "2",
      cluster.ADDRESSES_ENV: "localhost:1234"}, "process id 2 is out of range for 2"),
    ({cluster.PROCESSES_ENV: "2", cluster.PROCESS_ID_ENV: "-1",
      cluster.ADDRESSES_ENV: "localhost:1234"}, "out of range"),
    ({cluster.PROCESSES_ENV: "2", cluster.ADDRESSES_ENV: "localhost"}, "not HOST:PORT"),
    ({cluster.PROCESSES_ENV: "2", cluster.ADDRESSES_ENV: "localhost:99999"}, "not HOST:PORT"),
    ({cluster.PROCESSES_ENV: "3", cluster.ADDRESSES_ENV: "a:1,b:2"}, "lists 2 addresses for 3"),
    ({cluster.PROCESSES_ENV: "2"}, "need a coordinator"),
])
def test_malformed_cluster_variables_are_refused(env, message):
    with pytest.raises(UserError, match=message):
        cluster.cluster_from(None, None, None, env)


def test_cluster_from_flags_and_variables():
    env = {cluster.ADDRESSES_ENV: "10.0.0.1:1234,10.0.0.2:1234", cluster.PROCESSES_ENV: "2",
           cluster.PROCESS_ID_ENV: "1"}
    assert cluster.cluster_from(None, None, None, env) == \
        cluster.ClusterSpec("10.0.0.1:1234", 2, 1)
    # Flags win over the variables; no cluster at all is one process.
    assert cluster.cluster_from("h:9", 2, 0, env) == cluster.ClusterSpec("h:9", 2, 0)
    assert cluster.cluster_from(None, None, None, {}) == cluster.ClusterSpec()


@pytest.mark.parametrize("env, args, message", [
    ({**JAX, cluster.PROCESSES_ENV: "abc"}, ["--distribute", "data-parallel"],
     "not a whole number"),
    ({}, ["--distribute", "data-parallel"], "needs the JAX backend"),
    ({**JAX, cluster.PROCESSES_ENV: "2", cluster.ADDRESSES_ENV: "localhost:1234"}, [],
     "add it, or drop the cluster settings"),
    ({**JAX}, ["--strategy", "mirrored"], "on JAX use --distribute data-parallel"),
    ({}, ["--strategy", "multiworker"], "KERAS_BACKEND=jax"),
])
def test_cluster_mistakes_are_one_line_before_training(env, args, message, tmp_path):
    result = run_module("keras_digits.train", "cnn", *args, "--out-dir", str(tmp_path),
                        env=env, timeout=120)
    assert result.returncode == 2
    assert message in last_error_line(result.stderr)
    assert not (tmp_path / "mnist" / "cnn").exists()


def test_port_in_use_is_refused(tmp_path):
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        code, _, err = finish(start(tmp_path, 0, taken.getsockname()[1]), timeout=120)
    assert code == 2 and "is in use" in last_error_line(err)
    assert not (tmp_path / "mnist" / "cnn").exists()


@pytest.mark.parametrize("who", ["peer never arrives", "mismatched process counts"])
def test_a_cluster_that_never_forms_stops_in_bounded_time(who, tmp_path):
    port = free_port()
    began = time.monotonic()
    if who == "peer never arrives":  # process 1 of 2 waits for a coordinator nobody started
        runs = [start(tmp_path, 1, port, "--peer-timeout", "5")]
    else:  # process 0 waits for three, process 1 believes in two
        runs = [start(tmp_path, 0, port, "--peer-timeout", "15", processes=3),
                start(tmp_path, 1, port, "--peer-timeout", "15")]
    results = [finish(run, timeout=120) for run in runs]
    assert time.monotonic() - began < 90
    for code, _, err in results:
        assert code == cluster.EXIT_CLUSTER_ERROR, err[-2000:]
        line = last_error_line(err)
        assert "did not form" in line or "--num-processes" in line
    assert not (tmp_path / "mnist" / "cnn").exists()


@pytest.mark.slow
def test_two_processes_train_one_model_and_publish_once(tmp_path):
    """Two processes of one CPU device each, per-device batch 32: identical weights, one set
    of artifacts, and the accuracy of one process with the same global batch of 64."""
    port = free_port()
    runs = [start(tmp_path / "cluster", i, port, "--batch-size", "32", "--epochs", "1")
            for i in (0, 1)]
    (code0, out0, err0), (code1, out1, err1) = [finish(run) for run in runs]
    assert code0 == 0, err0[-3000:]
    assert code1 == 0, err1[-3000:]
    assert digest_of(out0) == digest_of(out1)
    accuracy = [re.search(r"test accuracy ([0-9.]+)%", out).group(1) for out in (out0, out1)]
    assert accuracy[0] == accuracy[1]  # every process evaluates the same way
    folder = tmp_path / "cluster" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == ["cnn"]  # no work or lock left behind
    metrics = json.loads((folder / "cnn" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["replicas"] == 2
    assert metrics["batch_size"] == 64 and metrics["weights_sha256"].startswith(digest_of(out0))

    single = run_module("keras_digits.train", *SLICE, "--out-dir", str(tmp_path / "single"),
                        "--distribute", "data-parallel", "--batch-size", "64", "--epochs", "1",
                        env=JAX)
    assert single.returncode == 0, single.stderr[-3000:]
    alone = json.loads((tmp_path / "single" / "mnist" / "cnn" / "metrics.json").read_text())
    assert alone["processes"] == 1 and alone["batch_size"] == 64
    assert abs(alone["test_accuracy"] - metrics["test_accuracy"]) <= 0.01
    assert metrics["test_accuracy"] > 0.8  # it learned: 1 epoch of 2,000 images


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill -9", "kill"])
def test_a_killed_peer_stops_the_other_with_one_line(how, tmp_path):
    port = free_port()
    # 30 s of missed heartbeats: under a loaded CI machine 20 s once let a process be declared
    # dead while it was still compiling its first epoch.
    runs = [start(tmp_path, i, port, "--epochs", "30", "--peer-timeout", "30") for i in (0, 1)]
    peer_state = artifacts.work_dir(tmp_path, "mnist", "cnn", process=1) / "history.csv"
    deadline = time.monotonic() + 240
    while not artifacts.read_history(peer_state):  # let the peer finish an epoch
        assert all(run.poll() is None for run in runs), runs[0].stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the cluster never finished an epoch"
        time.sleep(0.2)
    runs[1].send_signal(how)  # JAX's preemption service used to swallow a plain kill
    assert runs[1].wait(timeout=30) != 0
    killed_at = time.monotonic()
    code, _, err = finish(runs[0], timeout=120)
    assert time.monotonic() - killed_at < 60
    assert code == cluster.EXIT_CLUSTER_ERROR
    assert "lost contact with another process" in last_error_line(err)
    assert not (tmp_path / "mnist" / "cnn").exists()  # nothing published


def test_processes_with_different_settings_are_refused(tmp_path):
    port = free_port()
    runs = [start(tmp_path, 0, port, "--seed", "0", "--peer-timeout", "60"),
            start(tmp_path, 1, port, "--seed", "1", "--peer-timeout", "60")]
    for code, _, err in [finish(run, timeout=120) for run in runs]:
        assert code == cluster.EXIT_CLUSTER_ERROR
        assert "different training settings" in last_error_line(err)
    assert not (tmp_path / "mnist").exists() or not (tmp_path / "mnist" / "cnn").exists()


def test_processes_that_saved_different_epochs_do_not_resume(tmp_path):
    """A kill can land between two processes saving their epoch: resuming them from different
    points would train two different models, so both stop and say how to start over."""
    peer_backup = artifacts.work_dir(tmp_path, "mnist", "cnn", process=1) / "backup"
    peer_backup.mkdir(parents=True)
    (peer_backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    port = free_port()
    runs = [start(tmp_path, i, port, "--peer-timeout", "60") for i in (0, 1)]
    for code, _, err in [finish(run, timeout=180) for run in runs]:
        assert code == 2
        assert "saved different epochs (0, 1)" in last_error_line(err)
    assert peer_backup.is_dir()  # nothing deleted: the user decides
    assert not (tmp_path / "mnist" / "cnn").exists()
