"""Evaluate stage: a labelled folder (or Semeion) is scored through the predict path, with a
report page of the misread images, and bad folders get one line each."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import last_error_line, run_module
from PIL import Image

from keras_digits.analysis import evaluate
from keras_digits.core.contract import THUMBNAIL_POLARITY
from keras_digits.data import folders
from keras_digits.reading.reader import DigitReader


def _digit_folder(root, mnist, per_class: int = 3, layout: str = "csv"):
    """Real MNIST test digits saved as dark-on-light PNGs, labelled one of two ways."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["file,label"]
    for label in range(10):
        for k, index in enumerate(np.flatnonzero(mnist.test_labels == label)[:per_class]):
            name = f"{label}_{k}.png"
            target = root / name if layout == "csv" else root / str(label) / name
            target.parent.mkdir(exist_ok=True)
            Image.fromarray(255 - mnist.test_images[index, ..., 0]).save(target)
            rows.append(f"{name},{label}")
    if layout == "csv":
        (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_semeion_through_evaluate_scores_and_reports(exported_dir, tmp_path):
    result = run_module("keras_digits.evaluate", "semeion", "--model", "cnn", "mlp",
                        "--export-dir", str(exported_dir.parent), "--out-dir",
                        str(tmp_path / "reports"), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    answer = json.loads(result.stdout)
    cnn, mlp = answer["models"]
    assert cnn["scored"] == 1593 and cnn["model"] == "cnn" and mlp["model"] == "mlp"
    assert 50 < cnn["accuracy"] <= 100 and set(cnn["recall"]) == {str(d) for d in range(10)}
    wrong = cnn["scored"] - cnn["correct"]
    assert sum(c["count"] for c in cnn["confusions"]) <= wrong
    page = (tmp_path / "reports" / "semeion" / "index.html").read_text()
    # Every misread image appears twice (the original and the 28x28 seen), up to the limit.
    assert page.count("alt='original'") == min(wrong, evaluate.GALLERY_LIMIT) + min(
        mlp["scored"] - mlp["correct"], evaluate.GALLERY_LIMIT)
    assert (tmp_path / ".cache" / "semeion" / "labels.csv").is_file()


def test_class_folders_and_labels_csv_give_the_same_score(exported_dir, mnist, tmp_path):
    scores = []
    for layout in ("csv", "folders"):
        folder = _digit_folder(tmp_path / layout, mnist, layout=layout)
        summaries, _, failures, _ = evaluate.evaluate_folder(
            folder, {"cnn": exported_dir / "cnn.onnx"})
        assert not failures and summaries[0]["scored"] == 30
        scores.append(summaries[0]["accuracy"])
    assert scores[0] == scores[1] >= 80


def test_broken_images_are_listed_and_the_rest_scored(tiny_exported_dir, mnist, tmp_path):
    folder = _digit_folder(tmp_path / "mixed", mnist)
    (folder / "broken.png").write_bytes(b"not an image")
    Image.new("L", (40, 40), 255).save(folder / "blank.png")
    with (folder / "labels.csv").open("a") as handle:
        handle.write("broken.png,3\nblank.png,4\n")
    result = run_module("keras_digits.evaluate", str(folder), "--model",
                        str(tiny_exported_dir / "cnn.onnx"), "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "cnn: " in result.stdout and "(" in result.stdout and "/30)" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "broken.png" in errors[0] and "no ink" in errors[1]
    saved = json.loads((tmp_path / "out" / "mixed" / "results.json").read_text())
    assert len(saved["failed"]) == 2 and saved["models"][0]["scored"] == 30


def _bad(tmp_path, tiny_exported_dir, folder) -> str:
    result = run_module("keras_digits.evaluate", str(folder), "--model",
                        str(tiny_exported_dir / "cnn.onnx"), "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written
    return last_error_line(result.stderr)


def test_bad_folders_get_one_line(tiny_exported_dir, tmp_path):
    assert "is not a folder" in _bad(tmp_path, tiny_exported_dir, tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    assert "holds no labelled images" in _bad(tmp_path, tiny_exported_dir, empty)
    missing_file = tmp_path / "missing_file"
    missing_file.mkdir()
    (missing_file / "labels.csv").write_text("file,label\nghost.png,3\n")
    assert "'ghost.png' is not a file" in _bad(tmp_path, tiny_exported_dir, missing_file)
    bad_label = tmp_path / "bad_label"
    bad_label.mkdir()
    Image.new("L", (8, 8)).save(bad_label / "a.png")
    (bad_label / "labels.csv").write_text("file,label\na.png,12\n")
    assert "label '12' is not one of the classes" in _bad(tmp_path, tiny_exported_dir, bad_label)
    no_header = tmp_path / "no_header"
    no_header.mkdir()
    (no_header / "labels.csv").write_text("a.png,3\n")
    assert "needs a header row `file,label`" in _bad(tmp_path, tiny_exported_dir, no_header)


def test_evaluate_never_imports_tensorflow(tiny_exported_dir, mnist, tmp_path):
    folder = _digit_folder(tmp_path / "few", mnist, per_class=1)
    code = ("import sys\nfrom keras_digits.evaluate import main\n"
            f"main([{str(folder)!r}, '--model', {str(tiny_exported_dir / 'cnn.onnx')!r}, "
            f"'--out-dir', {str(tmp_path / 'out')!r}])\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    import subprocess

    from conftest import REPO

    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_labels_may_be_class_names(tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("file,label\na.png,Trouser\n")
    classes = ("T-shirt/top", "Trouser", "Pullover")
    assert folders.read_labelled_folder(tmp_path, classes)[0].label == 1


def test_every_image_unreadable_is_one_line(tiny_exported_dir, tmp_path):
    folder = tmp_path / "junk"
    (folder / "3").mkdir(parents=True)
    (folder / "3" / "a.png").write_bytes(b"not an image")
    assert "none of the 1 images" in _bad(tmp_path, tiny_exported_dir, folder)
    result = run_module("keras_digits.evaluate", str(folder), "--model", "all", "--export-dir",
                        str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 2 and "no exported models in" in last_error_line(result.stderr)


def test_thumbnails_are_read_in_the_tone_the_model_reads_as_a_digit(exported_dir, tmp_path,
                                                                      monkeypatch):
    """Semeion's digits as 8x8 grids, light ink on dark: where the border leaves the paper's
    tone open, the reader asks the model, and reads more of them right than counting pieces
    alone; `evaluate` chooses the same way."""
    masks, labels = folders.load_semeion()
    rows = ["file,label"]
    for i, mask in enumerate(masks[:500]):
        grid = mask.astype(np.float32).reshape(8, 2, 8, 2).mean(axis=(1, 3))
        Image.fromarray((grid * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{labels[i]}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    paths = [tmp_path / f"{i}.png" for i in range(500)]
    reader = DigitReader(exported_dir / "cnn.onnx")

    def accuracy() -> float:
        return 100 * float(np.mean([r.label for r in reader.read_many(paths)] == labels[:500]))

    chosen = accuracy()
    summaries = evaluate.evaluate_folder(tmp_path, {"cnn": exported_dir / "cnn.onnx"})[0]
    monkeypatch.setitem(THUMBNAIL_POLARITY, "BELOW", 0)
    pieces = accuracy()
    assert chosen >= pieces + 3, (chosen, pieces)
    assert summaries[0]["accuracy"] == pytest.approx(chosen, abs=0.01)
