"""scripts/results_tables.py: docs/RESULTS.md's tables come from the artifacts, not by hand."""

from __future__ import annotations

import importlib.util
import json

from conftest import REPO

spec = importlib.util.spec_from_file_location("results_tables",
                                              REPO / "scripts" / "results_tables.py")
results_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results_tables)


def _write(path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def test_the_tables_show_what_train_export_and_evaluate_wrote(tmp_path, capsys):
    models, export, evaluate = tmp_path / "saved_models", tmp_path / "export", tmp_path / "ev"
    folder = models / "mnist" / "cnn"
    _write(folder / "metrics.json", {"model": "cnn", "dataset": "mnist", "parameters": 82586,
                                     "epochs_run": 12, "best_epoch": 11,
                                     "train_seconds": 449.4, "test_accuracy": 0.9962})
    (folder / "model.keras").write_bytes(b"")
    after = {"ece": 0.0017}
    _write(folder / "calibration.json", {"temperature": 1.171,
                                         "test": {"before": {"ece": 0.0015}, "after": after}})
    result = {"agreement": 1.0, "accuracy": 0.9962}
    _write(export / "mnist" / "parity.json", {"models": {"cnn": {
        key: result for key, _ in results_tables.FORMATS}}})
    _write(evaluate / "semeion" / "results.json", {"models": [{
        "model": "cnn", "accuracy": 93.22, "ece": 3.19, "unsure_of_wrong": 40.7,
        "unsure_of_right": 2.6, "recall": {str(d): 90.0 for d in range(10)},
        "confusions": [{"true": "9", "predicted": "3", "count": 20}]}]})
    code = results_tables.main(["--models-dir", str(models), "--export-dir", str(export),
                                "--evaluate-dir", str(evaluate)])
    printed = capsys.readouterr().out
    assert code == 0
    row = next(line for line in printed.splitlines() if line.startswith("| cnn | 82,586 |"))
    assert "**99.62%**" in row and "98.60%" in row and "1.171" in row
    assert "0.15% → 0.17%" in row and row.count("100.00% (99.62%)") == 5
    assert "| cnn | **93.22%** | 3.19% | 40.7% / 2.6% | 90 / 90 / 90 / 90 | 9→3 (20) |" in printed


def test_without_trained_models_it_says_what_to_run(tmp_path, capsys):
    assert results_tables.main(["--models-dir", str(tmp_path)]) == 2
    assert "train all" in capsys.readouterr().err
