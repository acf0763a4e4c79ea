"""Calibration: the temperature fit and the error measure are right on known cases, the model's
temperature layer does what the numpy twin says, and train/calibrate leave it in the files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import last_error_line, run_module

from keras_digits.models import calibration, registry, saved


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(20_000, 10))
    truth = _softmax(logits / 2.5)  # the labels follow softer odds than the model claims
    labels = np.array([rng.choice(10, p=p) for p in truth])
    fitted = calibration.fit_temperature(_softmax(logits), labels)
    assert fitted == pytest.approx(2.5, rel=0.05)
    before = calibration.expected_calibration_error(_softmax(logits), labels)
    after = calibration.expected_calibration_error(
        calibration.apply_temperature(_softmax(logits), fitted), labels)
    assert after < 0.02 < before


def test_expected_calibration_error_on_a_hand_worked_case():
    # 10 answers at 90% confidence, 5 of them right: one bin, |0.5 - 0.9| = 0.4.
    probabilities = np.full((10, 2), 0.1)
    probabilities[:, 0] = 0.9
    labels = np.array([0] * 5 + [1] * 5)
    assert calibration.expected_calibration_error(probabilities, labels) == pytest.approx(0.4)
    rows = calibration.reliability(probabilities, labels)
    assert sum(r["count"] for r in rows) == 10 and len(rows) == calibration.BINS


def test_temperature_in_the_model_matches_the_numpy_twin_and_keeps_the_answers():
    plain = registry.create_model("cnn", inference=True)
    calibrated = registry.create_model("cnn", inference=True, temperature=1.7)
    calibrated.set_weights(plain.get_weights())  # no new weights
    pixels = np.random.default_rng(1).uniform(0, 255, (32, 28, 28, 1)).astype(np.float32)
    p, q = plain.predict(pixels, verbose=0), calibrated.predict(pixels, verbose=0)
    np.testing.assert_allclose(q, calibration.apply_temperature(p, 1.7), atol=1e-5)
    np.testing.assert_allclose(calibration.uncalibrated(q, 1.7), p, atol=1e-5)
    assert (p.argmax(1) == q.argmax(1)).all()


def test_train_publishes_the_calibrated_model(tiny_trained_dir, mnist):
    folder = tiny_trained_dir / "mnist" / "cnn"
    fitted = json.loads((folder / "calibration.json").read_text())
    assert 0.05 <= fitted["temperature"] <= 20
    assert set(fitted["test"]) == {"before", "after"}
    assert fitted["validation"]["after"]["nll"] <= fitted["validation"]["before"]["nll"] + 1e-6
    published = saved.load_keras(folder / "model.keras")
    assert published.get_layer("temperature").scale == pytest.approx(1 / fitted["temperature"])
    # What export rebuilds from the registry gives the published model's answers.
    rebuilt = saved.load_trained(folder / "model.keras", "cnn")
    pixels = mnist.test_images[:64].astype(np.float32)
    np.testing.assert_allclose(rebuilt.predict(pixels, verbose=0),
                               published.predict(pixels, verbose=0), atol=1e-6)


def test_calibrate_refits_in_place_and_refuses_a_missing_model(tiny_trained_dir, tmp_path):
    models_dir = tmp_path / "models"
    shutil.copytree(tiny_trained_dir, models_dir)
    first = json.loads((models_dir / "mnist" / "linear" / "calibration.json").read_text())
    result = run_module("keras_digits.calibrate", "linear", "--models-dir", str(models_dir))
    assert result.returncode == 0, result.stderr[-2000:]
    again = json.loads((models_dir / "mnist" / "linear" / "calibration.json").read_text())
    # Refitting starts from the uncalibrated model, so it finds the same temperature.
    assert again["temperature"] == pytest.approx(first["temperature"], rel=1e-4)
    assert "T = " in result.stdout
    missing = run_module("keras_digits.calibrate", "mlp", "--models-dir", str(models_dir))
    assert missing.returncode == 2
    assert "python -m keras_digits.train mlp" in last_error_line(missing.stderr)
