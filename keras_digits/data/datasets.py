"""Data stage: MNIST and Fashion-MNIST as verified numpy arrays, split for training
(training/input_pipeline.py turns the splits into what `fit` takes).

Local files come first so that nothing touches the network when the data is on disk:

1. `--data-dir` (or the `KERAS_DIGITS_DATA_DIR` environment variable),
2. the copy vendored in this repository (`data/<dataset>/`),
3. Debian's `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist/`).

Only when none of those hold the four IDX files does the loader fall back to tensorflow-datasets,
and only after a 3-second reachability check, so an offline machine gets a clear error at once
instead of tfds's minutes of retries.

Every file is checked against the published SHA-256 of its *uncompressed* content.
No TensorFlow here (tfds only for the download), which keeps error paths fast and lets the JAX
benchmark reuse it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from keras_digits.core.cli import UserError
from keras_digits.core.names import DATASET_NAMES

REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
DATA_DIR_ENV = "KERAS_DIGITS_DATA_DIR"
OFFLINE_ENV = "KERAS_DIGITS_OFFLINE"
VALIDATION_SIZE = 5_000
IMAGE_SHAPE = (28, 28, 1)

FILE_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# SHA-256 of the uncompressed IDX files, as published for each dataset.
SHA256 = {
    "mnist": {
        "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

SYSTEM_DIRS = {
    "mnist": (),
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

HOW_TO_GET = {
    "mnist": "the repository ships it in data/mnist; restore it with `git checkout -- data/mnist`",
    "fashion_mnist": "install it with `apt-get install dataset-fashion-mnist`",
}

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


@dataclass(frozen=True)
class Arrays:
    """The official train/test split as uint8 images (N, 28, 28, 1) and int64 labels (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


@dataclass(frozen=True)
class Splits:
    """Train / validation / test arrays; validation is carved from the end of the training set."""

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def check_dataset_name(dataset: str) -> str:
    if dataset not in DATASET_NAMES:
        raise UserError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASET_NAMES)}")
    return dataset


def candidate_dirs(dataset: str, data_dir: str | Path | None = None) -> list[Path]:
    """Directories searched, in order, for the four IDX files of `dataset`.

    An explicit `data_dir` (or the environment variable) is searched alone.
    """
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if explicit:  # the user said where the data is: look nowhere else
        root = Path(explicit)
        return [root / dataset, root / dataset.replace("_", "-"), root]
    # The checkout's data/, then ./data (an installed package run from a checkout).
    return [REPO_DATA_DIR / dataset, Path("data") / dataset, *SYSTEM_DIRS[dataset]]


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        path = directory / name
        if path.is_file():
            return path
    return None


def find_local_files(dataset: str, data_dir: str | Path | None = None) -> dict[str, Path] | None:
    """The first candidate directory holding all four files, or None."""
    for directory in candidate_dirs(dataset, data_dir):
        found = {key: _find_file(directory, stem) for key, stem in FILE_STEMS.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(
            f"cannot read {path}: {exc or 'truncated file'}; the file is damaged, replace it"
        ) from exc


def parse_idx(raw: bytes, path: Path | str, kind: str) -> np.ndarray:
    """Decode an IDX byte string: images as (N, 28, 28, 1) uint8, labels as (N,) int64."""
    expected_magic = IDX_IMAGES_MAGIC if kind == "images" else IDX_LABELS_MAGIC
    ndim = 3 if kind == "images" else 1
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise UserError(f"{path} is too short to be an IDX {kind} file; replace it")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise UserError(
            f"{path} is not an IDX {kind} file (magic 0x{magic:08x}, "
            f"expected 0x{expected_magic:08x}); replace it"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected_len = header_size + int(np.prod(dims))
    if len(raw) != expected_len:
        raise UserError(
            f"{path} holds {len(raw) - header_size} data bytes but its header promises "
            f"{expected_len - header_size}; the file is truncated or damaged, replace it"
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)
    if kind == "images":
        if tuple(dims[1:]) != IMAGE_SHAPE[:2]:
            raise UserError(f"{path} has {dims[1]}x{dims[2]} images, expected 28x28")
        return array.reshape(-1, *IMAGE_SHAPE)
    return array.astype(np.int64)


def load_idx_dir(dataset: str, files: dict[str, Path], verify: bool = True) -> Arrays:
    """Read, checksum and decode the four IDX files of `dataset`."""
    arrays: dict[str, np.ndarray] = {}
    for key, path in files.items():
        raw = _read_bytes(path)
        if verify:
            digest = hashlib.sha256(raw).hexdigest()
            if digest != SHA256[dataset][key]:
                raise UserError(
                    f"checksum mismatch for {path} (sha256 {digest[:12]}…, expected "
                    f"{SHA256[dataset][key][:12]}…): the file is not the published {dataset}; "
                    f"replace it ({HOW_TO_GET[dataset]})"
                )
        arrays[key] = parse_idx(raw, path, "images" if key.endswith("images") else "labels")
    for split in ("train", "test"):
        n_images, n_labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_images != n_labels:
            raise UserError(
                f"{split} split of {dataset} has {n_images} images but {n_labels} labels; "
                "the files do not belong together, replace them"
            )
        if arrays[f"{split}_labels"].max(initial=0) > 9:
            raise UserError(f"{split} labels of {dataset} go beyond 9; replace the label file")
    source = str(files["train_images"].parent)
    return Arrays(**arrays, source=source)


def network_reachable(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    """A quick TCP check, so an offline machine never enters tfds's long retry loop."""
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_with_tfds(dataset: str) -> Arrays:
    import tensorflow_datasets as tfds

    (train_x, train_y), (test_x, test_y) = tfds.as_numpy(
        tfds.load(dataset, split=["train", "test"], batch_size=-1, as_supervised=True)
    )
    return Arrays(
        train_images=train_x.astype(np.uint8),
        train_labels=train_y.astype(np.int64),
        test_images=test_x.astype(np.uint8),
        test_labels=test_y.astype(np.int64),
        source="tensorflow-datasets",
    )


@lru_cache(maxsize=4)
def _load_cached(dataset: str, data_dir: str | None) -> Arrays:
    files = find_local_files(dataset, data_dir)
    if files is not None:
        return load_idx_dir(dataset, files)
    searched = ", ".join(str(d) for d in candidate_dirs(dataset, data_dir))
    if not network_reachable():
        raise UserError(
            f"{dataset} not found (looked in {searched}) and the network is unreachable: "
            f"{HOW_TO_GET[dataset]}, or pass --data-dir DIR holding the four IDX .gz files"
        )
    return _load_with_tfds(dataset)


def load_arrays(dataset: str, data_dir: str | Path | None = None) -> Arrays:
    """The verified train and test arrays of `dataset`, from local files or tfds."""
    check_dataset_name(dataset)
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if explicit is not None and not Path(explicit).is_dir():
        raise UserError(f"data directory {explicit} does not exist; pass an existing directory")
    return _load_cached(dataset, None if explicit is None else str(explicit))


def split(arrays: Arrays, limit: int | None = None, val_size: int = VALIDATION_SIZE) -> Splits:
    """Carve the validation set from the end of the training set; `limit` caps every split.

    The test set is only ever evaluated, never used to choose a model or an epoch.
    """
    n_train = len(arrays.train_images) - val_size
    if n_train <= 0:
        raise UserError(f"training set has only {len(arrays.train_images)} images")
    train = (arrays.train_images[:n_train][:limit], arrays.train_labels[:n_train][:limit])
    val = (arrays.train_images[n_train:][:limit], arrays.train_labels[n_train:][:limit])
    test = (arrays.test_images[:limit], arrays.test_labels[:limit])
    return Splits(train=train, validation=val, test=test)
