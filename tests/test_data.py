"""Data stage: the real files verify and decode; damaged files and missing data fail clearly."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, make_idx_dir, run_module, write_idx

from keras_digits.core.cli import UserError
from keras_digits.data import datasets
from keras_digits.training import input_pipeline


def test_mnist_integrity(mnist):
    assert mnist.train_images.shape == (60_000, 28, 28, 1)
    assert mnist.test_images.shape == (10_000, 28, 28, 1)
    assert mnist.train_images.dtype == np.uint8
    assert mnist.train_labels.shape == (60_000,) and mnist.test_labels.shape == (10_000,)
    assert set(np.unique(mnist.train_labels)) == set(range(10))
    assert mnist.train_images.max() == 255 and mnist.train_images.min() == 0
    # The famous first test digits of MNIST.
    assert mnist.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert Path(mnist.source) == REPO / "data" / "mnist"


def test_split_sizes_and_no_overlap(mnist):
    splits = datasets.split(mnist)
    assert len(splits.train[0]) == 55_000
    assert len(splits.validation[0]) == 5_000
    assert len(splits.test[0]) == 10_000
    # Validation is the tail of the training set, never the test set.
    assert np.array_equal(splits.validation[0], mnist.train_images[55_000:])
    limited = datasets.split(mnist, limit=100)
    assert [len(s[0]) for s in (limited.train, limited.validation, limited.test)] == [100] * 3


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian():
    arrays = datasets.load_arrays("fashion_mnist")
    assert arrays.train_images.shape == (60_000, 28, 28, 1)
    assert arrays.test_labels.shape == (10_000,)
    assert arrays.source == "/usr/share/datasets/fashion-mnist"


def test_pipeline_batches(mnist):
    splits = datasets.split(mnist, limit=300)
    feeds = input_pipeline.feeds(splits, batch_size=64)
    images, labels = next(iter(feeds.train["x"]))
    assert images.shape == (64, 28, 28, 1) and images.dtype.name == "uint8"
    assert labels.dtype.name == "int32"
    assert sum(int(b[0].shape[0]) for b in feeds.test["x"]) == 300


def test_sharded_feeds_split_evenly_and_padding_weighs_nothing(mnist):
    """Over 3 devices every batch divides by 3: training drops its partial batch, validation
    is padded with zero-weight images; the test set stays whole."""
    splits = datasets.split(mnist, limit=1000)
    feeds = input_pipeline.feeds(splits, batch_size=96, devices=3)
    assert {int(b[0].shape[0]) for b in feeds.train["x"]} == {96}
    batches = list(feeds.validation)
    assert all(int(b[0].shape[0]) % 3 == 0 for b in batches)
    weights = np.concatenate([b[2].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert weights.sum() == 1000 and set(weights[1000:]) <= {0.0}
    assert (labels[:1000] == splits.validation[1]).all()
    assert sum(int(b[0].shape[0]) for b in feeds.test["x"]) == 1000
    numpy_feeds = input_pipeline.feeds(splits, batch_size=96, arrays=True)
    assert numpy_feeds.train["x"] is splits.train[0] and numpy_feeds.train["shuffle"]


def test_mixup_blends_each_digit_with_one_partner_and_both_labels():
    """Every mixed image is λ of its own digit and 1 - λ of one other in the batch, λ ≥ 1/2,
    and its label row names both digits and λ: the loss then blends the two targets."""
    from keras_digits.training.compiled import TrainConfig, _mixed_accuracy, build_compiled

    count = 64
    images = np.repeat(np.arange(count, dtype=np.uint8)[:, None, None, None] * 4, 28, axis=1)
    images = np.repeat(images, 28, axis=2)
    labels = np.arange(count) % 10
    blended, rows = (t.numpy() for t in next(iter(input_pipeline.to_dataset(
        images, labels, count, mixup=0.4))))
    own, partner, weight = rows[:, 0], rows[:, 1], rows[:, 2]
    assert ((weight >= 0.5) & (weight <= 1.0)).all() and weight.std() > 0.01
    assert (own == labels).all() and set(partner) <= set(range(10))
    # The blend of two flat images is flat: recover the partner's value and find its label.
    partner_value = (blended[:, 0, 0, 0] - weight * images[:, 0, 0, 0]) / np.maximum(
        1 - weight, 1e-6)
    mixed = weight < 0.99
    found = np.rint(partner_value[mixed] / 4).astype(int) % 10
    assert (found == partner[mixed]).all()
    assert np.allclose(blended.std(axis=(1, 2, 3)), 0, atol=1e-3)

    model = build_compiled(TrainConfig(model="linear", recipe_options=(
        ("mixup", 0.4), ("label_smoothing", 0.0))), n_train=1000).model
    probabilities = np.full((2, 10), 0.02, "float32")
    probabilities[:, 3], probabilities[:, 5] = 0.6, 0.24
    mixed_rows = np.array([[3, 5, 0.75], [5, 3, 0.5]], "float32")
    want = np.mean([-(0.75 * np.log(0.6) + 0.25 * np.log(0.24)),
                    -(0.5 * np.log(0.24) + 0.5 * np.log(0.6))])
    assert float(model.loss(mixed_rows, probabilities)) == pytest.approx(want, rel=1e-4)
    assert float(model.loss(np.array([3, 3]), probabilities)) == pytest.approx(-np.log(0.6),
                                                                             rel=1e-4)
    accuracy = _mixed_accuracy()  # the first label of a mixed row counts, as plain labels do
    accuracy.update_state(mixed_rows, probabilities)
    accuracy.update_state(np.array([3, 3]), probabilities)
    assert accuracy.name == "accuracy" and float(accuracy.result()) == pytest.approx(0.75)
    # The numpy feed (the JAX backend) mixes its batches the same way.
    batches = input_pipeline.train_feed(images, labels, count, arrays=True, mixup=0.4)["x"]
    blended, rows = batches[0]
    own, partner, weight = rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2]
    assert ((weight >= 0.5) & (weight <= 1.0)).all() and weight.std() > 0.01
    assert blended.shape == images.shape and (own != partner).any()
    assert np.allclose(blended.std(axis=(1, 2, 3)), 0, atol=1e-3)
    # Image i is all 4 * i with label i % 10: each blend is λ of one image with its row's first
    # label and 1 - λ of one with its second.
    pixel = blended[:, 0, 0, 0]
    for value, a, b, w in zip(pixel, own, partner, weight, strict=True):
        assert any(value == pytest.approx(w * 4 * i + (1 - w) * 4 * j, abs=1e-3)
                   for i in range(a, count, 10) for j in range(b, count, 10))


def test_data_dir_override(tmp_path):
    # Copies of the real files in a user's folder are found there first.
    target = tmp_path / "mine" / "mnist"
    shutil.copytree(REPO / "data" / "mnist", target)
    arrays = datasets.load_arrays("mnist", data_dir=tmp_path / "mine")
    assert arrays.source == str(target)


def _damaged_copy(tmp_path: Path, damage) -> Path:
    folder = tmp_path / "mnist"
    shutil.copytree(REPO / "data" / "mnist", folder)
    damage(folder)
    return tmp_path


def _truncate_gz(folder: Path) -> None:
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:2000])


def _garbage_gz(folder: Path) -> None:
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"this is not gzip at all")


def _altered_pixel(folder: Path) -> None:
    path = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    path.write_bytes(gzip.compress(bytes(raw)))


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_truncate_gz, "damaged"), (_garbage_gz, "damaged"), (_altered_pixel, "checksum mismatch")],
)
def test_damaged_files_are_refused(tmp_path, damage, message):
    root = _damaged_copy(tmp_path, damage)
    with pytest.raises(UserError, match=message):
        datasets.load_arrays("mnist", data_dir=root)


def test_idx_format_errors(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    bad_magic = write_idx(tmp_path / "bad-magic", labels, 0x999, compress=False)
    with pytest.raises(UserError, match="not an IDX labels file"):
        datasets.parse_idx(bad_magic.read_bytes(), bad_magic, "labels")
    short = write_idx(tmp_path / "short", labels, 0x801, compress=False)
    with pytest.raises(UserError, match="truncated"):
        datasets.parse_idx(short.read_bytes()[:-3], short, "labels")


def test_image_label_count_mismatch(tmp_path):
    folder = make_idx_dir(tmp_path / "fake")
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8), 0x801)
    files = datasets.find_local_files("mnist", tmp_path / "fake")
    with pytest.raises(UserError, match="16 images but 5 labels"):
        datasets.load_idx_dir("mnist", files, verify=False)


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown dataset"):
        datasets.load_arrays("cifar10")


def test_local_data_never_touches_network():
    """With the data on disk, loading never opens a socket and never imports tfds."""
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise AssertionError('network access attempted')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "from keras_digits.data import datasets\n"
        "a = datasets.load_arrays('mnist')\n"
        "assert 'tensorflow_datasets' not in sys.modules\n"
        "print(len(a.train_images))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "60000"


def test_missing_data_offline_fails_fast(tmp_path):
    """No local files and no network: a one-line error naming the fix, in under 5 seconds."""
    empty = tmp_path / "empty"
    empty.mkdir()
    start = time.monotonic()
    result = run_module("keras_digits.train", "linear", "--dataset", "fashion_mnist",
                        "--data-dir", str(empty), "--out-dir", str(tmp_path / "out"),
                        env={"KERAS_DIGITS_OFFLINE": "1"})
    elapsed = time.monotonic() - start
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: fashion_mnist not found")
    assert "apt-get install dataset-fashion-mnist" in lines[0]
    assert elapsed < 5, elapsed
    assert not (tmp_path / "out").exists()
