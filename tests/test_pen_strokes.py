"""Digits composed from pen strokes: every digit's taught shapes, the pen, the cache, and the
share of them that training writes beside the fonts' digits."""

from __future__ import annotations

import numpy as np

from keras_digits.core import cache
from keras_digits.data import handwriting, pen_strokes
from keras_digits.training import train
from keras_digits.training.compiled import TrainConfig


def _tails(count: int) -> list[np.ndarray]:
    return [np.asarray(pen_strokes.nine(np.random.default_rng(i))[-1]) for i in range(count)]


def test_nines_have_straight_hooked_curled_and_slanting_tails():
    """The 9s MNIST's writers seldom write (a tail curled back under the loop, a stem slanting
    left) are there beside the ones they do."""
    ends = np.array([tail[-1] for tail in _tails(200)])
    straight = ends[:, 0] > 0.6  # the tail ends below where it left the loop
    left_of_loop = ends[:, 0] < 0.2  # curled under, or a slanting stem
    assert straight.mean() > 0.15 and left_of_loop.mean() > 0.25
    assert (ends[:, 1] > 0.6).all()  # every tail reaches down to the digit's foot


def test_every_digit_is_ink_in_a_digits_box_and_varies_with_each_writing():
    for digit in range(10):
        first, second = (pen_strokes.ink(digit, np.random.default_rng(i)) for i in range(2))
        assert first.shape == (handwriting.CANVAS, handwriting.CANVAS)
        rows = np.flatnonzero(first.max(axis=1) > 0.5)
        cols = np.flatnonzero(first.max(axis=0) > 0.5)
        height, width = rows[-1] - rows[0], cols[-1] - cols[0]
        assert 0.8 * pen_strokes.HEIGHT < height < 1.3 * pen_strokes.HEIGHT, digit
        assert width < 1.1 * height, digit
        assert not np.array_equal(first, second), digit
    scan = pen_strokes.write(7, np.random.default_rng(0))
    assert scan.dtype == np.uint8 and scan.min() < 120 < np.median(scan)  # ink on paper


def test_composed_digits_are_balanced_read_by_predicts_path_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    images, labels = pen_strokes.composed_digits(30, seed=3, workers=1)
    assert images.shape == (30, 28, 28, 1) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [3] * 10
    assert images.reshape(30, -1).max(axis=1).min() > 200  # every digit found and inked
    rows = np.flatnonzero(images[0, :, :, 0].max(axis=1) > 50)
    assert 18 <= rows[-1] - rows[0] + 1 <= 20  # predict's 20-pixel box
    [cached] = tmp_path.glob("pen-strokes-*.npy")
    cached.write_bytes(b"damaged")  # a damaged cache is made again, never half-read
    again, _ = pen_strokes.composed_digits(30, seed=3, workers=1)
    assert np.array_equal(images, again) and np.load(cached).shape == images.shape
    other, _ = pen_strokes.composed_digits(30, seed=4, workers=1)
    assert not np.array_equal(images, other)


def test_training_composes_the_recipes_share_of_its_written_digits(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    fonts_asked = []

    def fonts(count, seed):
        fonts_asked.append(count)
        return np.zeros((count, 28, 28, 1), np.uint8), np.full(count, -1, np.int64)

    monkeypatch.setattr(handwriting, "training_digits", fonts)
    config = TrainConfig(model="cnn", recipe_options=(("handwriting", 0.2), ("composed", 0.5)))
    images, labels = train.written_digits(config, mnist_count=400)  # 100 written beside 400
    assert fonts_asked == [50] and len(images) == len(labels) == 100
    assert np.bincount(labels[labels >= 0]).tolist() == [5] * 10
    assert images[labels >= 0].reshape(50, -1).max(axis=1).min() > 200
