"""What the models learned (analysis/learned.py): moved digits, the 2-D projection and the
sentence the report prints about the shift and rotation experiment."""

from __future__ import annotations

import numpy as np
import pytest

from keras_digits.analysis import learned


def _centre(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(image[..., 0] > 100)
    return np.array([ys.mean(), xs.mean()])


def test_moved_digits_shift_by_the_distance_asked_and_rotate(mnist):
    digits = mnist.test_images[:20].astype(np.float32)
    assert np.array_equal(learned.moved(digits), digits)  # nothing asked, nothing moved
    shifted = learned.moved(digits, shift=4)
    moves = [np.linalg.norm(_centre(a) - _centre(b)) for a, b in zip(digits, shifted,
                                                                   strict=True)]
    assert np.median(moves) == pytest.approx(4, abs=0.8)
    bar = np.zeros((1, 28, 28, 1), np.float32)
    bar[0, 4:24, 13:15] = 255.0  # upright
    turned = learned.moved(bar, angle=30)[0, ..., 0] > 100
    columns = np.flatnonzero(turned.any(axis=0))
    assert columns[-1] - columns[0] >= 8  # leaning now, not two columns wide


def test_pca_separates_what_differs_most():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 20))
    b = rng.normal(size=(50, 20)) + 6.0
    xy = learned.pca_2d(np.concatenate([a, b]))
    assert xy.shape == (100, 2)
    first = xy[:, 0]
    assert (first[:50].max() < first[50:].min()) or (first[:50].min() > first[50:].max())


def test_the_sentence_orders_the_models_by_what_moving_costs_them():
    flat = [0.98] * len(learned.SHIFTS)
    falling = [0.95, 0.9, 0.8, 0.6, 0.4, 0.3, 0.2]
    said = learned.what_it_shows({"cnn": {"shift": flat, "angle": flat},
                                  "linear": {"shift": falling, "angle": falling}})
    assert said.startswith("Moved 4 pixels, the digits are read at linear 40%, cnn 98%:")
