"""Bench stage: every suite runs end to end on a tiny slice and writes JSON and Markdown.

No timing is asserted here: numbers come from real runs, recorded in docs/RESULTS.md.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_module


@pytest.mark.slow
def test_bench_runs_every_suite_on_a_tiny_slice(trained_dir, exported_dir, tmp_path):
    result = run_module(
        "keras_digits.bench", "time-to-accuracy", "train", "pipeline", "inference",
        "--models", "linear", "--limit", "600", "--max-epochs", "1", "--seeds", "2",
        "--train-images", "512",
        "--repeats", "10", "--models-dir", str(trained_dir),
        "--export-dir", str(exported_dir.parent), "--out", str(tmp_path), "--name", "tiny",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "tiny.json").read_text())
    assert report["command"].startswith("python -m keras_digits.bench time-to-accuracy")
    assert report["versions"]["backend"] == "tensorflow"
    tta = report["time-to-accuracy"]
    assert tta["seeds"] == [0, 1]
    for contestant in ("baseline", "cnn", "cnn_unaugmented", "cnn_fast"):
        assert [len(run["curve"]) for run in tta[contestant]["runs"]] == [1, 1]
        first = tta[contestant]["first_epoch_accuracy"]
        assert 0 < first["min"] <= first["mean"] <= first["max"] <= 1
    images = {key: tta[key]["runs"][0]["train_images"] for key in ("baseline", "cnn", "cnn_fast")}
    assert images["cnn"] > images["baseline"] == images["cnn_fast"]  # the cnn's fonts, as trained
    assert report["peak"]["gflops_per_s"] > 0
    assert set(report["train"]) == {"keras_io_convnet", "linear"}
    assert report["train"]["keras_io_convnet"]["ratio_vs_keras_io_convnet"] == 1.0
    linear = report["train"]["linear"]
    assert linear["training_flops_per_image"] == 3 * 2 * 784 * 10
    assert 0 < linear["share_of_peak"] < 1
    assert report["pipeline"]["images_per_s"] > 0
    runtimes = report["inference"]["linear"]
    assert {"keras.predict", "keras model(x)", "SavedModel signature"} <= set(runtimes)
    assert any(label.startswith("onnxruntime int8") for label in runtimes)
    markdown = (tmp_path / "tiny.md").read_text()
    assert "## Inference: linear" in markdown and "keras.io convnet" in markdown
    assert "no augmentation, 6-epoch recipe" in markdown and "one-epoch recipe" in markdown
    assert "share of peak" in markdown


def test_bench_rejects_an_unknown_suite(tmp_path):
    result = run_module("keras_digits.bench", "warp-speed", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "unknown suite warp-speed" in result.stderr.strip().splitlines()[-1]
