"""Training stage: a short fit learns, and `train` writes every artifact or fails cleanly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import last_error_line, run_module

from keras_digits.core import artifacts
from keras_digits.data import datasets
from keras_digits.models import registry


def test_short_fit_improves_accuracy(mnist, tmp_path):
    splits = datasets.split(mnist, limit=1000)
    import keras

    keras.utils.set_random_seed(0)
    # The plain network: handwriting distortions make 3 epochs on 1,000 images too few.
    model = registry.create_model("mlp", augmentation=0.0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x_test, y_test = splits.test
    before = model.evaluate(x_test, y_test, verbose=0)[1]
    model.fit(*splits.train, epochs=3, batch_size=64, verbose=0)
    after = model.evaluate(x_test, y_test, verbose=0)[1]
    assert before < 0.3 and after > 0.8, (before, after)


def written_count(share: float, mnist: int) -> int:
    """The handwriting-font digits beside `mnist` MNIST digits at the recipe's share."""
    return round(share / (1 - share) * mnist)


def test_tiny_run_writes_every_artifact(tiny_trained_dir):
    """The fast tier's train check: the same artifacts from two epochs on 4,096 images."""
    for name in ("linear", "cnn"):
        folder = tiny_trained_dir / "mnist" / name
        assert {"model.keras", "saved_model", "history.csv", "metrics.json", "logs"} <= {
            p.name for p in folder.iterdir()}
        metrics = artifacts.read_metrics(tiny_trained_dir, "mnist", name)
        recipe = registry.get_entry(name).recipe
        assert metrics["epochs_run"] == 2
        assert metrics["examples"]["train"] == 4096 + written_count(recipe.handwriting, 4096)
        assert metrics["predict_view"] == recipe.predict_view
        assert metrics["machine"]["cpu_count"] and "backend" in metrics["versions"]
        assert len(artifacts.read_history(folder / "history.csv")) == 2


def test_a_short_run_shortens_batchnorm_memory(tiny_trained_dir):
    """BatchNorm's running statistics start at mean 0 and variance 1 and inference uses them:
    with Keras's 0.99 the two-epoch cnn of the fast tier read 80.6% of its test slice, with the
    memory shortened to a fifth of its 64 steps 93.6%."""
    from keras_digits.training.compiled import TrainConfig, build_compiled

    def momenta(n_train: int, epochs: int | None) -> list[float]:
        model = build_compiled(TrainConfig(model="cnn", epochs=epochs), n_train=n_train).model
        return [layer.momentum for layer in model.layers if "bn" in layer.name]

    assert momenta(4096, 2) == [pytest.approx(1 - 5 / 64)] * 6  # 64 steps, six BatchNorms
    assert momenta(55_000, None) == [0.99] * 6  # the whole recipe keeps Keras's momentum
    assert artifacts.read_metrics(tiny_trained_dir, "mnist", "cnn")["test_accuracy"] > 0.88


def test_train_end_to_end_writes_every_artifact(trained_dir):
    for name in ("linear", "mlp", "cnn"):
        folder = trained_dir / "mnist" / name
        assert (folder / "model.keras").is_file()
        assert (folder / "saved_model" / "saved_model.pb").is_file()
        assert any((folder / "logs").rglob("events.out.tfevents.*"))
        history = artifacts.read_history(folder / "history.csv")
        assert [int(r["epoch"]) for r in history] == [0, 1, 2]
        assert all(r["epoch_seconds"] > 0 for r in history)
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["model"] == name and metrics["epochs_run"] == 3
        assert metrics["handwriting"] == 0.0  # the fixture's --handwriting 0
        assert metrics["examples"] == {"train": 24000, "validation": 5000, "test": 10000}
        assert 0.85 < metrics["test_accuracy"] <= 1.0
        assert metrics["parameters"] > 0 and metrics["train_seconds"] > 0
        assert metrics["precision"] == "float32" and metrics["versions"]["keras"]
    # Nothing temporary is left beside the published folders.
    assert sorted(p.name for p in (trained_dir / "mnist").iterdir()) == ["cnn", "linear", "mlp"]


def test_saved_model_matches_keras(trained_dir, mnist):
    import keras
    import tensorflow as tf

    folder = trained_dir / "mnist" / "linear"
    model = keras.saving.load_model(folder / "model.keras")
    exported = tf.saved_model.load(str(folder / "saved_model"))
    images = mnist.test_images[:64].astype("float32")
    np.testing.assert_allclose(exported.serve(images).numpy(), model.predict(images, verbose=0),
                               atol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resnet"], "unknown model 'resnet'"),
        (["linear", "--epochs", "0"], "argument --epochs: 0 must be 1 or more"),
        (["linear", "--batch-size", "-5"], "argument --batch-size: -5 must be 1 or more"),
        (["linear", "--limit", "abc"], "'abc' is not a whole number"),
        (["linear", "--dataset", "cifar"], "argument --dataset: invalid choice"),
        (["cnn", "--predict-view", "1.5"], "argument --predict-view: 1.5 must be from 0 to 1"),
        (["cnn", "--handwriting", "1"], "--handwriting must be below 1"),
    ],
)
def test_bad_arguments_fail_with_one_line(args, message, tmp_path):
    result = run_module("keras_digits.train", *args, "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_predict_view_can_be_switched_off(tmp_path):
    result = run_module("keras_digits.train", "mlp", "--limit", "256", "--epochs", "1",
                        "--predict-view", "0", "--quiet", "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert artifacts.read_metrics(tmp_path, "mnist", "mlp")["predict_view"] == 0.0


def test_handwriting_digits_join_the_training_split(tmp_path):
    """`--handwriting 0.2`: a fifth of the training split is written in the training fonts."""
    result = run_module("keras_digits.train", "mlp", "--limit", "256", "--epochs", "1",
                        "--handwriting", "0.2", "--quiet", "--no-report",
                        "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = artifacts.read_metrics(tmp_path, "mnist", "mlp")
    assert metrics["handwriting"] == 0.2
    assert metrics["examples"]["train"] == 256 + 64  # 64 of 320 is a fifth


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    result = run_module("keras_digits.train", "linear", "--limit", "50",
                        "--out-dir", str(blocker / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write to {blocker}")


@pytest.mark.slow
def test_train_all_is_the_main_job_and_ends_with_the_report(tmp_path):
    """`train all` loops over the registry, prints the comparison table and writes the report."""
    result = run_module("keras_digits.train", "all", "--limit", "300", "--epochs", "1",
                        "--quiet", "--out-dir", str(tmp_path / "models"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout[result.stdout.index("| model |"):]
    for name in ("linear", "mlp", "cnn", "alexnet"):
        assert f"| {name} |" in table
        assert (tmp_path / "models" / "mnist" / name / "metrics.json").is_file()
    assert (tmp_path / "reports" / "mnist" / "index.html").is_file()


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """--strategy mirrored splits each batch over two CPU devices; the batch is per replica."""
    result = run_module("keras_digits.train", "cnn", "--strategy", "mirrored", "--cpu-devices",
                        "2", "--limit", "3000", "--epochs", "2", "--quiet", "--out-dir",
                        str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas" in result.stdout
    metrics = json.loads((tmp_path / "mnist" / "cnn" / "metrics.json").read_text())
    assert metrics["strategy"] == "MirroredStrategy" and metrics["replicas"] == 2
    assert metrics["batch_size"] == 2 * 128  # the cnn recipe's 128 per replica
    assert metrics["test_accuracy"] > 0.5  # it learned (2 epochs on 3,000 images)


@pytest.mark.parametrize("env, args", [
    ({}, ["--strategy", "multiworker"]),
    ({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", '
                   '"index": 0}}'}, []),
])
def test_multiworker_is_refused_before_tensorflow_starts(env, args, tmp_path):
    result = run_module("keras_digits.train", "cnn", *args, "--out-dir", str(tmp_path),
                        env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "keras-team/keras#20585" in result.stderr
    assert not (tmp_path / "mnist" / "cnn").exists()


def test_malformed_tf_config_is_one_line(tmp_path):
    result = run_module("keras_digits.train", "cnn", "--out-dir", str(tmp_path),
                        env={"TF_CONFIG": "{not json"}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: TF_CONFIG is not a valid cluster description")
    assert result.stderr.count("\n") == 1


@pytest.mark.slow
def test_a_second_run_is_refused_and_a_dead_runs_lock_taken_over(tmp_path):
    """Two runs of one model into one folder would spoil each other's resume state."""
    import subprocess
    import sys

    lock = artifacts.lock_path(tmp_path, "mnist", "linear")
    lock.parent.mkdir(parents=True)
    args = ("keras_digits.train", "linear", "--limit", "512", "--epochs", "1", "--quiet",
            "--out-dir", str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock.write_text(str(holder.pid))  # a live run holds it
        refused = run_module(*args)
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 2
    assert f"already running (process {holder.pid})" in last_error_line(refused.stderr)
    assert not (tmp_path / "mnist" / "linear").exists()
    resumed = run_module(*args)  # the holder is gone (as after kill -9): its lock is taken over
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (tmp_path / "mnist" / "linear" / "model.keras").is_file() and not lock.exists()


@pytest.mark.slow
def test_jax_trains_without_tensorflow_what_export_and_report_accept(tmp_path):
    """The lent GPU hosts have JAX but no TensorFlow: `KERAS_BACKEND=jax train` must not need
    it, and writes the same artifacts; export (on TensorFlow) and the report take them as they
    take a TensorFlow run's."""
    pytest.importorskip("jax", reason="pip install -r requirements-jax.txt")
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoTensorFlow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'tf_keras'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, NoTensorFlow())\n")
    models, exported = tmp_path / "models", tmp_path / "export"
    trained = run_module("keras_digits.train", "linear", "cnn", "--limit", "1000", "--epochs",
                         "2", "--quiet", "--no-report", "--out-dir", str(models),
                         env={"KERAS_BACKEND": "jax", "PYTHONPATH": str(hide)})
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "TensorFlow is not installed" in trained.stdout
    for name in ("linear", "cnn"):
        metrics = artifacts.read_metrics(models, "mnist", name)
        assert metrics["versions"]["backend"] == "jax" and metrics["jit_compile"] is True
        assert metrics["test_accuracy"] > 0.4  # it learned (chance is 0.1)
        folder = models / "mnist" / name
        assert {"model.keras", "metrics.json", "history.csv", "calibration.json"} <= {
            p.name for p in folder.iterdir()}
        assert not (folder / "saved_model").exists()
    done = run_module("keras_digits.export", "linear", "cnn", "--models-dir", str(models),
                      "--out-dir", str(exported), "--limit", "300")
    # The float formats must match; int8 on 300 images of models this undertrained may lose
    # an image or two beyond its limit, which is not what this test is about.
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr[-3000:]
    parity = json.loads((exported / "mnist" / "parity.json").read_text())
    for name in ("linear", "cnn"):
        assert all(parity["models"][name][kind]["passed"]
                   for kind in ("onnx", "saved_model", "litert")), parity["models"][name]
    report = run_module("keras_digits.report", "--models-dir", str(models), "--export-dir",
                        str(exported), "--out-dir", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr[-3000:]
    assert (tmp_path / "report" / "mnist" / "index.html").is_file()


def test_a_study_can_replace_recipe_fields():
    """`recipe_options` reach the compiled model: weight decay switches Adam for AdamW and the
    label smoothing goes into the loss (studies compare recipes through them)."""
    from keras_digits.training.compiled import TrainConfig, build_compiled

    plain = build_compiled(TrainConfig(model="linear"), n_train=1000).model
    studied = build_compiled(TrainConfig(model="linear", recipe_options=(
        ("label_smoothing", 0.2), ("weight_decay", 0.01))), n_train=1000).model
    assert type(plain.optimizer).__name__ == "Adam"
    assert type(studied.optimizer).__name__ == "AdamW"
    assert studied.optimizer.weight_decay == pytest.approx(0.01)
    labels, probabilities = np.array([0]), np.eye(10, dtype="float32")[:1] * 0.99 + 0.001
    assert float(studied.loss(labels, probabilities)) > float(plain.loss(labels, probabilities))
    averaged = build_compiled(TrainConfig(model="linear", recipe_options=(("ema", 0.99),)),
                              n_train=50_000)
    assert averaged.averaged and averaged.model.optimizer.use_ema
    assert averaged.model.optimizer.ema_momentum == pytest.approx(0.99)
    assert not plain.optimizer.use_ema


def test_a_short_run_averages_its_weights_over_its_own_last_steps(tmp_path):
    """A moving average starts at the initial weights: with the recipe's memory a two-epoch run
    on a slice published an mlp at chance (9.9%), so a short run's average spans a fifth of it."""
    from keras_digits.training.compiled import averaging_momentum

    assert averaging_momentum(0.999, steps=17_200) == 0.999  # the mlp's whole recipe
    assert averaging_momentum(0.999, steps=28) == pytest.approx(1 - 5 / 28)
    assert averaging_momentum(0.999, steps=3) == 0.0
    result = run_module("keras_digits.train", "mlp", "--limit", "2000", "--epochs", "2",
                        "--quiet", "--no-report", "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "mnist" / "mlp" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # it learned (chance is 0.1)


def test_a_runs_description_is_its_settings_history_and_outcome():
    """`train.describe_run`, the metrics.json builder, on its own: the best epoch is the best
    validation epoch, the speed is training images over epoch time, the outcome is kept."""
    from types import SimpleNamespace

    from keras_digits.training.compiled import TrainConfig
    from keras_digits.training.train import describe_run

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((n, 28, 28, 1), np.uint8), np.zeros(n, np.uint8)

    splits = datasets.Splits(train=split(1000), validation=split(100), test=split(50))
    plan = SimpleNamespace(precision="float32", jit=False, batch_size=128, replicas=1,
                           learning_rate=0.003, predict_view=0.5, handwriting=0.0,
                           train_images=1000)
    rows = [{"epoch": 0.0, "val_accuracy": 0.9, "epoch_seconds": 2.0},
            {"epoch": 1.0, "val_accuracy": 0.95, "epoch_seconds": 2.0},
            {"epoch": 2.0, "val_accuracy": 0.93, "epoch_seconds": 1.0}]
    metrics = describe_run(TrainConfig(model="cnn", limit=1000, seed=3), plan, splits, rows,
                           {"test_accuracy": 0.97, "test_loss": 0.1, "parameters": 82_586,
                            "weights_sha256": "ab" * 32})
    assert metrics["best_epoch"] == 2 and metrics["best_val_accuracy"] == 0.95
    assert metrics["epochs_run"] == 3 and metrics["train_seconds"] == 5.0
    assert metrics["images_per_second"] == 600  # 1,000 images x 3 epochs in 5 s
    assert metrics["examples"] == {"train": 1000, "validation": 100, "test": 50}
    assert (metrics["seed"], metrics["limit"], metrics["predict_view"]) == (3, 1000, 0.5)
    assert metrics["processes"] == 1 and metrics["distribution"] == "none"
    assert json.loads(json.dumps(metrics)) == metrics  # it goes to metrics.json as it is
