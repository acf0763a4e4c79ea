"""Training on what predict feeds a model: MNIST digits rendered through predict's path, cached,
and swapped into the training pipeline at the recipe's share."""

from __future__ import annotations

import numpy as np
import pytest

from keras_digits.core import cache
from keras_digits.imaging import normalize
from keras_digits.models import registry
from keras_digits.training import input_pipeline, renderings


def test_render_is_predicts_own_28x28(mnist):
    digits = mnist.test_images[:20]
    rendered = renderings.render(digits)
    assert rendered.dtype == np.uint8 and rendered.shape == digits.shape
    for digit, seen in zip(digits, rendered, strict=True):
        expected = normalize.load_digit(255 - digit[..., 0])  # the scan predict would get
        assert np.abs(seen.astype(np.float32) - expected).max() <= 0.5
    assert not np.array_equal(rendered, digits)  # re-cropped and re-centred, not a copy


def test_render_keeps_a_digit_predict_refuses():
    blank = np.zeros((1, 28, 28, 1), np.uint8)  # "shows no ink": the training image stays
    assert np.array_equal(renderings.render(blank), blank)


def test_many_renderings_are_made_in_processes_alike(mnist, tmp_path, monkeypatch):
    digits = mnist.test_images[:12]
    in_processes, workers_used = renderings.render_in_processes, []

    def spy(images, workers):
        workers_used.append(workers)
        return in_processes(images, workers)

    monkeypatch.setattr(renderings, "render_in_processes", spy)
    monkeypatch.setattr(renderings, "PARALLEL_FROM", 12)
    assert np.array_equal(renderings.predict_view(digits, tmp_path, workers=2),
                          renderings.render(digits))
    assert workers_used == [2]


def test_predict_view_is_cached_per_images_and_code(mnist, tmp_path, monkeypatch):
    digits = mnist.test_images[:8]
    first = renderings.predict_view(digits, tmp_path)
    cached = list(tmp_path.glob("predict-view-*.npy"))
    assert len(cached) == 1 and not list(tmp_path.glob(".*"))  # no leftover temporaries

    def fail(_images):
        raise AssertionError("rendered again despite the cache")

    monkeypatch.setattr(renderings, "render", fail)
    assert np.array_equal(renderings.predict_view(digits, tmp_path), first)
    monkeypatch.setattr(renderings, "code_digest", lambda: "changed")  # new preprocessing code
    with pytest.raises(AssertionError, match="rendered again"):
        renderings.predict_view(digits, tmp_path)
    monkeypatch.undo()
    cached[0].write_bytes(b"damaged")
    assert np.array_equal(renderings.predict_view(digits, tmp_path), first)


def test_cache_key_follows_the_preprocessing_constants_only(monkeypatch):
    from keras_digits.core import contract

    before = renderings.code_digest()
    monkeypatch.setitem(contract.SEGMENTATION, "MAX_DIGITS", 99)  # number splitting: kept
    assert renderings.code_digest() == before
    monkeypatch.setitem(contract.PREPROCESSING, "PAPER_MARGIN", 3)  # the rendering: made again
    assert renderings.code_digest() != before


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_training_feed_swaps_in_the_alternate_at_its_share(share):
    images = np.zeros((2000, 28, 28, 1), np.uint8)
    alternate = np.full_like(images, 255)
    labels = np.arange(2000) % 10
    images[:, 1, 1, 0] = alternate[:, 1, 1, 0] = labels  # each image carries its label
    feed = input_pipeline.train_feed(images, labels, 100, seed=0, alternate=alternate, share=share)
    epochs = [np.concatenate([b[0].numpy()[:, 0, 0, 0] for b in feed["x"]]) for _ in range(2)]
    for swapped in epochs:
        assert len(swapped) == 2000
        assert abs((swapped == 255).mean() - share) < 0.04
    if share == 0.3:  # drawn afresh each epoch
        assert not np.array_equal(epochs[0], epochs[1])
    numpy_feed = input_pipeline.train_feed(images, labels, 100, arrays=True, alternate=alternate,
                                     share=share)  # numpy, for the JAX backend
    if share == 0:
        assert numpy_feed["x"] is images and numpy_feed["shuffle"]
    else:
        batches, numpy_epochs = numpy_feed["x"], []
        for _ in range(2):
            seen = [batches[i] for i in range(len(batches))]
            pixels = np.concatenate([x for x, _ in seen])
            assert (pixels[:, 1, 1, 0] == np.concatenate([y for _, y in seen])).all()
            numpy_epochs.append(pixels[:, 0, 0, 0])
            batches.on_epoch_end()
        for swapped in numpy_epochs:
            assert len(swapped) == 2000
            assert abs((swapped == 255).mean() - share) < 0.04
        if share == 0.3:
            assert not np.array_equal(numpy_epochs[0], numpy_epochs[1])
    with pytest.raises(ValueError, match="do not match"):
        input_pipeline.train_feed(images, labels, 100, alternate=alternate[:10], share=share or 0.5)


def test_digit_models_train_on_predicts_view_and_clothes_do_not():
    for name in ("mlp", "cnn", "alexnet"):
        assert registry.get_entry(name).recipe_for("mnist").predict_view > 0
        assert registry.get_entry(name).recipe_for("fashion_mnist").predict_view == 0
        # Handwriting fonts write digits, not garments.
        assert 0 < registry.get_entry(name).recipe_for("mnist").handwriting < 1
        assert registry.get_entry(name).recipe_for("fashion_mnist").handwriting == 0


def test_a_cache_that_cannot_be_written_costs_time_not_the_run(mnist, tmp_path, monkeypatch,
                                                               capsys):
    """$KERAS_DIGITS_CACHE naming a file (or a read-only folder): the renderings are made, used
    and not kept, with a one-line note."""
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file")
    monkeypatch.setenv(cache.CACHE_ENV, str(not_a_folder))
    digits = mnist.test_images[:4]
    assert np.array_equal(renderings.predict_view(digits), renderings.render(digits))
    note = capsys.readouterr().out.strip()
    assert note.startswith("note: could not cache") and "\n" not in note
    assert not_a_folder.read_text() == "a file"
