"""Reliability: a killed run resumes, artifacts are whole or absent, seeded runs repeat."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_module

from keras_digits.core import artifacts, atomic


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_kill_nine_mid_training_then_resume(backend, tmp_path):
    if backend == "jax":
        pytest.importorskip("jax", reason="pip install -r requirements-jax.txt")
    out = tmp_path / "models"
    args = ["-m", "keras_digits.train", "mlp", "--limit", "4000", "--epochs", "6",
            "--patience", "10", "--quiet", "--out-dir", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "KERAS_BACKEND": backend}
    work = out / "mnist" / ".mlp.work"
    process = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(artifacts.read_history(work / "history.csv")) < 2:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "training never reached epoch 2"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = artifacts.read_history(work / "history.csv")
    assert 2 <= len(before) < 6
    assert not (out / "mnist" / "mlp").exists()  # nothing published from a dead run

    resumed = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # Resumes from the last epoch whose backup landed (the last logged one, or the one before
    # it when the kill fell between logging and backing up).
    match = re.search(r"resuming mlp from epoch (\d+)", resumed.stdout)
    assert match, resumed.stdout
    resumed_at = int(match.group(1))
    assert len(before) - 1 <= resumed_at <= len(before) and resumed_at >= 1
    final = out / "mnist" / "mlp"
    history = artifacts.read_history(final / "history.csv")
    assert [int(r["epoch"]) for r in history] == list(range(6))
    # The epochs finished before the kill were kept, not trained again.
    assert [r["epoch_seconds"] for r in history[:resumed_at]] == \
        [r["epoch_seconds"] for r in before[:resumed_at]]
    metrics = json.loads((final / "metrics.json").read_text())
    assert metrics["epochs_run"] == 6 and (final / "model.keras").is_file()
    assert metrics["versions"]["backend"] == backend
    assert not work.exists()


def test_interrupted_write_leaves_nothing_under_the_final_name(tmp_path):
    final = tmp_path / "cnn.onnx"
    with pytest.raises(RuntimeError), atomic.atomic_path(final) as tmp:
        tmp.write_bytes(b"half a model")
        raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_a_later_run_sweeps_leftovers_of_a_crash(tmp_path):
    dead_pid = 2 ** 22 + 12345  # above Linux's default pid_max: no such process
    leftovers = [tmp_path / f".cnn.onnx.tmp-{dead_pid}", tmp_path / f".cnn.staging-{dead_pid}"]
    leftovers[0].write_bytes(b"partial")
    leftovers[1].mkdir()
    alive = tmp_path / f".mlp.onnx.tmp-{os.getppid()}"  # a writer that is still running
    alive.write_bytes(b"in progress")
    keep = tmp_path / "linear.onnx"
    keep.write_bytes(b"whole")
    removed = atomic.sweep_leftovers(tmp_path)
    assert sorted(removed) == sorted(leftovers)
    assert alive.exists() and keep.exists()


def test_publish_replaces_an_old_folder_whole(tmp_path):
    final, staging = tmp_path / "cnn", tmp_path / ".cnn.staging-1"
    final.mkdir()
    (final / "model.keras").write_text("old")
    staging.mkdir()
    (staging / "model.keras").write_text("new")
    atomic.publish_dir(staging, final)
    assert (final / "model.keras").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["cnn"]


@pytest.mark.slow
def test_seeded_deterministic_runs_are_identical(tmp_path):
    runs = []
    for i in (1, 2):
        out = tmp_path / f"run{i}"
        result = run_module("keras_digits.train", "mlp", "--limit", "1500", "--epochs", "2",
                            "--seed", "7", "--deterministic", "--quiet", "--out-dir", str(out))
        assert result.returncode == 0, result.stderr[-2000:]
        runs.append(out / "mnist" / "mlp")
    first, second = (json.loads((r / "metrics.json").read_text()) for r in runs)
    for key in ("test_accuracy", "test_loss", "best_val_accuracy", "epochs_run"):
        assert first[key] == second[key], key
    import keras

    weights = [keras.saving.load_model(r / "model.keras").get_weights() for r in runs]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_pickle_anywhere():
    for path in Path(REPO, "keras_digits").glob("*.py"):
        source = path.read_text()
        assert "import pickle" not in source and "allow_pickle=True" not in source, path


def test_disk_full_leaves_no_partial_file_and_one_line(tmp_path, monkeypatch, capsys):
    import errno

    from keras_digits.core.cli import run_cli

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full_disk)
    target = tmp_path / "metrics.json"

    def main(argv):
        atomic.write_json(target, {"test_accuracy": 0.99})
        return 0

    assert run_cli(main, []) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: No space left on device") and "\n" not in line
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_replaces_an_existing_one(tmp_path):
    final = tmp_path / "saved_model"
    for version in ("first", "second"):
        with atomic.atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "saved_model.pb").write_text(version)
    assert (final / "saved_model.pb").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["saved_model"]


def test_a_resumed_run_with_averaged_weights_carries_on_from_the_raw_ones(tmp_path):
    """The backup holds the average in the model and the raw weights in the optimizer; a
    resumed run must swap them back before training on, as the uninterrupted run does."""
    import keras

    from keras_digits.training import resume

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 4)).astype("float32"), rng.random((64, 2)).astype("float32")

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.at_epoch = {}

        def on_epoch_begin(self, epoch, logs=None):
            self.at_epoch[epoch] = [w.copy() for w in self.model.get_weights()]

    class Killed(Exception):
        pass

    class KillAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise Killed

    def fit(work, resumed, *extra):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=0.5), "mse")
        recorder = Recorder()
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                  callbacks=[resume.AveragedWeights(resumed), recorder,
                             resume.AtomicBackupAndRestore(str(work)), *extra])
        return recorder.at_epoch

    straight = fit(tmp_path / "straight", False)
    with pytest.raises(Killed):
        fit(tmp_path / "killed", False, KillAfterFirstEpoch())
    resumed = fit(tmp_path / "killed", True)
    assert list(resumed) == [1]  # the backup skipped epoch 0
    for a, b, first in zip(straight[1], resumed[1], straight[0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        assert not np.allclose(a, first)  # epoch 0 trained: the check compares real weights
