"""Report stage: every file is produced, images are real pictures, links resolve, names fit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_module
from PIL import Image

from keras_digits.analysis import report


def _assert_real_picture(path: Path) -> None:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert image.size[0] >= 400 and image.size[1] >= 200, image.size
    assert pixels.std() > 10  # not a blank canvas


@pytest.fixture(scope="module")
def mnist_report(exported_dir) -> Path:
    """The report that `export` rewrote after exporting the models of `trained_dir`."""
    return exported_dir.parent / "reports" / "mnist"


def test_every_file_is_written(mnist_report):
    names = {p.name for p in mnist_report.iterdir()}
    for model in ("linear", "mlp", "cnn"):
        assert {f"confusion_{model}.png", f"mistakes_{model}.png"} <= names
    assert {"learning_curves.png", "index.html", "summary.md", "per_class.json"} <= names
    assert {"templates.png", "filters.png", "hidden_maps.png", "shift_rotate.png"} <= names
    for png in mnist_report.glob("*.png"):
        _assert_real_picture(png)


def test_html_links_resolve_and_table_shows_parity(mnist_report):
    page = (mnist_report / "index.html").read_text()
    links = re.findall(r'src="([^"]+)"', page)
    # Curves, two reliability diagrams (test set, Semeion), per model two pictures, and what
    # the models learned: templates, filters, hidden layers, shifted and rotated digits.
    assert len(links) == 13
    assert all((mnist_report / link).is_file() for link in links)
    assert "http://" not in page and "https://" not in page  # opens offline from disk
    assert "98.60%" in page  # the video's CNN number, beside ours
    assert "agree" in page  # ONNX parity column filled from export/parity.json


def test_the_report_shows_what_the_models_learned(mnist_report):
    page = (mnist_report / "index.html").read_text()
    assert "<h2>What the models learned</h2>" in page
    sentence = re.search(r"Moved 4 pixels, the digits are read at ([^:]+):", page).group(1)
    assert {"linear", "mlp", "cnn"} == {part.split()[0] for part in sentence.split(", ")}


def test_calibration_table_shows_each_models_temperature_and_errors(mnist_report, trained_dir):
    summary = (mnist_report / "summary.md").read_text()
    for name in ("linear", "mlp", "cnn"):
        fitted = json.loads((trained_dir / "mnist" / name / "calibration.json").read_text())
        row = next(line for line in summary.splitlines()
                   if line.startswith(f"| {name} | {fitted['temperature']:.3f} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        # Test ECE after, as the report measures it, is the one calibration.json recorded.
        assert float(cells[3].rstrip("%")) == pytest.approx(
            100 * fitted["test"]["after"]["ece"], abs=0.05)
        assert all(c.endswith("%") for c in cells[2:])  # Semeion columns filled too


def test_per_class_numbers_agree_with_the_confusion_matrix(mnist_report):
    per_class = json.loads((mnist_report / "per_class.json").read_text())
    matrix = np.array(per_class["cnn"]["confusion"])
    assert matrix.sum() == 10_000
    recall = np.diag(matrix) / matrix.sum(axis=1)
    np.testing.assert_allclose(per_class["cnn"]["recall"], recall)
    summary = (mnist_report / "summary.md").read_text()
    assert "| cnn |" in summary and "| 9 |" in summary


@pytest.mark.slow
def test_fashion_mnist_report_uses_its_class_names(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    models = tmp_path / "models"
    trained = run_module("keras_digits.train", "linear", "--dataset", "fashion_mnist",
                         "--limit", "500", "--epochs", "1", "--quiet", "--out-dir", str(models))
    assert trained.returncode == 0, trained.stderr[-2000:]
    made = run_module("keras_digits.report", "--dataset", "fashion_mnist", "--models-dir",
                      str(models), "--out-dir", str(tmp_path / "reports"),
                      "--export-dir", str(tmp_path / "none"))
    assert made.returncode == 0, made.stderr[-2000:]
    page = (tmp_path / "reports" / "fashion_mnist" / "index.html").read_text()
    assert "Ankle boot" in page and "T-shirt/top" in page and "Fashion-MNIST" in page
    assert "not exported" in page
    assert not (tmp_path / "reports" / "fashion_mnist" / "reliability_others.png").exists()


def test_export_leaves_the_report_showing_each_model_with_its_parity(tiny_exported_dir):
    """After `train` and then `export`, the report is current without running `report`."""
    folder = tiny_exported_dir.parent / "reports" / "mnist"
    summary = (folder / "summary.md").read_text()
    for name in ("linear", "cnn"):
        row = next(line for line in summary.splitlines() if line.startswith(f"| {name} |"))
        assert "agree)" in row and "not exported" not in row
        assert (folder / f"confusion_{name}.png").is_file()


def test_the_report_is_built_in_process_the_same_way(tiny_trained_dir, tiny_exported_dir,
                                                    tmp_path):
    index = report.build_report("mnist", tiny_trained_dir, tmp_path, tiny_exported_dir.parent)
    assert index == tmp_path / "mnist" / "index.html"
    written = (tiny_exported_dir.parent / "reports" / "mnist" / "summary.md").read_text()
    assert (index.parent / "summary.md").read_text() == written


def test_report_without_models_says_what_to_do(tmp_path):
    result = run_module("keras_digits.report", "--models-dir", str(tmp_path / "none"),
                        "--out-dir", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "run `python -m keras_digits.train all --dataset mnist` first" in result.stderr
