"""The splits as `fit` and `evaluate` take them: tf.data pipelines, or numpy arrays for the JAX
backend, sharded evenly over devices when a distribution asks, and with a share of each training
image's second rendering (predict's view of it, training/renderings.py) swapped in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from keras_digits.data.datasets import Splits

if TYPE_CHECKING:
    import tensorflow as tf


def to_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool = False,
               seed: int = 0, drop_remainder: bool = False,
               weights: np.ndarray | None = None, alternate: np.ndarray | None = None,
               share: float = 0.0, mixup: float = 0.0) -> tf.data.Dataset:
    """A cached, optionally shuffled, batched and prefetched tf.data pipeline of uint8 images
    (with per-image weights when given; each image swapped for its `alternate` with probability
    `share`, drawn afresh every pass; with `mixup`, each batch blended as `mix_batch` does)."""
    import tensorflow as tf

    columns = (images, labels.astype(np.int32))
    if weights is not None:
        columns += (weights.astype(np.float32),)
    if alternate is not None:
        columns += (alternate,)
    ds = tf.data.Dataset.from_tensor_slices(columns).cache()
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if alternate is not None:
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        def pick(row, draw):
            image, *rest, other = row
            swap = tf.cast(draw % 1_000_000, tf.float32) < share * 1_000_000
            return (tf.where(swap, other, image), *rest)

        ds = tf.data.Dataset.zip((ds, draws)).map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    # In-memory arrays have no files to split among workers: shard by element under
    # MultiWorkerMirroredStrategy (ignored otherwise).
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if mixup:
        ds = ds.map(lambda images, labels, *rest: (*mix_batch(images, labels, mixup, seed), *rest),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def mix_batch(images, labels, alpha: float, seed: int = 0):
    """Mixup: each image blended with another of its batch, weight λ ~ Beta(alpha, alpha) for
    the one whose label comes first, λ ≥ 1/2. Labels become rows (label a, label b, λ), which
    the training loss and accuracy read (training/compiled.py)."""
    import tensorflow as tf

    count = tf.shape(images)[0]
    draws = [tf.random.gamma([count], alpha, seed=seed + i) for i in (1, 2)]
    weight = draws[0] / (draws[0] + draws[1] + 1e-12)
    weight = tf.maximum(weight, 1.0 - weight)
    partner = tf.random.shuffle(tf.range(count), seed=seed + 3)
    pixels = tf.cast(images, tf.float32)
    share = tf.reshape(weight, (-1, 1, 1, 1))
    blended = share * pixels + (1.0 - share) * tf.gather(pixels, partner)
    labels = tf.cast(tf.reshape(labels, (-1,)), tf.float32)
    rows = tf.stack([labels, tf.gather(labels, partner), weight], axis=1)
    return blended, rows


def padded(images: np.ndarray, labels: np.ndarray, multiple: int):
    """The split padded with blank, zero-weight images to a multiple of `multiple`, so every
    batch divides evenly between devices and the padding changes no weighted metric."""
    missing = -len(images) % multiple
    weights = np.concatenate([np.ones(len(images)), np.zeros(missing)])
    return (np.concatenate([images, np.zeros((missing, *images.shape[1:]), images.dtype)]),
            np.concatenate([labels, np.zeros(missing, labels.dtype)]), weights)


def train_feed(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int = 0,
               arrays: bool = False, drop_remainder: bool = False,
               alternate: np.ndarray | None = None, share: float = 0.0,
               mixup: float = 0.0,
               written: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """`fit`'s training arguments: a shuffled tf.data pipeline, or with `arrays` the numpy
    arrays, which Keras shuffles itself each epoch. `mixup` blends each batch.

    With `alternate` (a second rendering of the same images), each image is swapped for its
    alternate with probability `share`, drawn afresh every epoch (for numpy arrays, this and
    mixup by `numpy_batches`). `written` (images and labels already in predict's view, their
    own alternate) joins the images.
    """
    if written is not None and len(written[0]):
        images, labels = np.concatenate([images, written[0]]), np.concatenate([labels, written[1]])
        if alternate is not None:
            alternate = np.concatenate([alternate, written[0]])
    if alternate is None or share <= 0:
        alternate, share = None, 0.0
    elif alternate.shape != images.shape:
        raise ValueError(f"alternate images {alternate.shape} do not match {images.shape}")
    if arrays:
        if alternate is not None or mixup:
            return {"x": numpy_batches(images, labels, batch_size, seed, alternate, share,
                                       mixup),
                    "shuffle": False}
        return {"x": images, "y": labels, "batch_size": batch_size, "shuffle": True}
    return {"x": to_dataset(images, labels, batch_size, shuffle=True, seed=seed,
                            drop_remainder=drop_remainder, alternate=alternate, share=share,
                            mixup=mixup),
            "shuffle": False}


def mix_numpy_batch(images: np.ndarray, labels: np.ndarray, alpha: float,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`mix_batch` for numpy batches (the JAX backend): the same blend and label rows."""
    weight = rng.beta(alpha, alpha, len(images)).astype(np.float32)
    weight = np.maximum(weight, 1.0 - weight)
    partner = rng.permutation(len(images))
    pixels = images.astype(np.float32)
    share = weight[:, None, None, None]
    blended = share * pixels + (1.0 - share) * pixels[partner]
    labels = labels.astype(np.float32)
    return blended, np.stack([labels, labels[partner], weight], axis=1)


def numpy_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int = 0,
                  alternate: np.ndarray | None = None, share: float = 0.0,
                  mixup: float = 0.0):
    """Numpy batches in a new order each epoch, each image swapped for its `alternate` with
    probability `share` and each batch mixed up when asked, drawn afresh each epoch as the
    tf.data feed does (a Keras PyDataset, so the JAX backend trains on the same mix without
    TensorFlow)."""
    import keras

    class NumpyBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.draw()

        def draw(self) -> None:
            rng = np.random.default_rng((seed, self.epoch))
            self.order = rng.permutation(len(images))
            self.swap = rng.random(len(images)) < share if alternate is not None else None

        def __len__(self) -> int:
            return -(-len(images) // batch_size)

        def __getitem__(self, index: int):
            rows = self.order[index * batch_size:(index + 1) * batch_size]
            batch = images[rows]
            if self.swap is not None:
                batch = np.where(self.swap[rows][:, None, None, None], alternate[rows], batch)
            if mixup:
                rng = np.random.default_rng((seed, self.epoch, index, 1))
                return mix_numpy_batch(batch, labels[rows], mixup, rng)
            return batch, labels[rows]

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.draw()

    return NumpyBatches()


@dataclass(frozen=True)
class Feeds:
    """The arguments `fit` and `evaluate` take for each split, tf.data or numpy alike."""

    train: dict
    validation: object
    test: dict


def feeds(splits: Splits, batch_size: int, seed: int = 0, devices: int = 0,
          arrays: bool = False, alternate: np.ndarray | None = None,
          share: float = 0.0, mixup: float = 0.0,
          written: tuple[np.ndarray, np.ndarray] | None = None) -> Feeds:
    """Train (shuffled), validation and test inputs; evaluation batches are larger.

    tf.data pipelines, or with `arrays` the numpy arrays themselves, which the JAX backend takes
    faster on one device and without TensorFlow. Sharded over `devices` (keras.distribution,
    where every batch must split evenly), training drops its last partial batch (another one
    each epoch) and validation is padded with zero-weight images; the test set is evaluated
    whole, on one device. `alternate`, `share`, `mixup` and `written` go to `train_feed`.
    """
    eval_batch = max(batch_size, 512)
    train = train_feed(*splits.train, batch_size, seed, arrays, drop_remainder=bool(devices),
                       alternate=alternate, share=share, mixup=mixup, written=written)
    if arrays:
        return Feeds(train=train, validation=splits.validation,
                     test={"x": splits.test[0], "y": splits.test[1], "batch_size": eval_batch})
    if not devices:
        validation = to_dataset(*splits.validation, eval_batch)
    else:
        sharded_batch = -(-eval_batch // devices) * devices
        images, labels, weights = padded(*splits.validation, sharded_batch)
        validation = to_dataset(images, labels, sharded_batch, weights=weights)
    return Feeds(train=train, validation=validation,
                 test={"x": to_dataset(*splits.test, eval_batch)})
