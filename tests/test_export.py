"""Export stage: every format is written, valid, float32, and equal to Keras on test images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import last_error_line, run_module

from keras_digits.deploy import export
from keras_digits.models import saved


@pytest.mark.parametrize("name", ["linear", "mlp", "cnn"])
def test_every_format_exists_and_is_valid(exported_dir, name):
    proto = onnx.load(str(exported_dir / f"{name}.onnx"))
    onnx.checker.check_model(proto)
    (graph_input,) = proto.graph.input
    (graph_output,) = proto.graph.output
    assert graph_input.name == "pixels" and graph_output.name == "probabilities"
    dims = graph_input.type.tensor_type.shape.dim
    assert not dims[0].dim_value and [d.dim_value for d in dims[1:]] == [28, 28, 1]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {17}
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert metadata["keras_digits.model"] == name
    assert metadata["keras_digits.classes"].split("|") == [str(d) for d in range(10)]
    onnx.checker.check_model(onnx.load(str(exported_dir / f"{name}.int8.onnx")))
    assert (exported_dir / "saved_model" / name / "saved_model.pb").is_file()


def test_tiny_export_passes_parity_in_every_format(tiny_exported_dir):
    parity = json.loads((tiny_exported_dir / "parity.json").read_text())
    assert set(parity["models"]) == {"linear", "cnn"}
    for name, entry in parity["models"].items():
        assert entry["passed"] and entry["test_images"] == 200, name
        assert set(export.FORMATS) <= set(entry), name
        assert all(entry[key]["passed"] for key in export.FORMATS), name
        onnx.checker.check_model(onnx.load(str(tiny_exported_dir / f"{name}.int8.onnx")))
        assert (tiny_exported_dir / "saved_model" / name / "saved_model.pb").is_file()


def test_litert_files_keep_the_contract_and_int8_is_integer(tiny_exported_dir):
    import tensorflow as tf

    for name in ("linear", "cnn"):
        float32 = tf.lite.Interpreter(model_path=str(tiny_exported_dir / f"{name}.tflite"))
        int8 = tf.lite.Interpreter(model_path=str(tiny_exported_dir / f"{name}.int8.tflite"))
        for interpreter in (float32, int8):  # same float pixels in, float probabilities out
            (source,), (target,) = (interpreter.get_input_details(),
                                    interpreter.get_output_details())
            assert list(source["shape_signature"]) == [-1, 28, 28, 1]
            assert source["dtype"] == np.float32 and target["dtype"] == np.float32
        weights = {d["dtype"] for d in int8.get_tensor_details() if len(d["shape"]) == 2}
        assert np.int8 in weights, (name, weights)  # full-integer: the dense kernels are int8
        assert ((tiny_exported_dir / f"{name}.int8.tflite").stat().st_size
                < (tiny_exported_dir / f"{name}.tflite").stat().st_size)


def test_parity_report(exported_dir):
    parity = json.loads((exported_dir / "parity.json").read_text())
    assert set(parity["models"]) == {"linear", "mlp", "cnn"}
    for entry in parity["models"].values():
        assert entry["test_images"] == 2000 and entry["passed"]
        assert entry["onnx"]["agreement"] >= 0.9999
        assert entry["onnx"]["max_abs_prob_diff"] <= 1e-4
        assert entry["saved_model"]["max_abs_prob_diff"] <= 1e-4
        drop = entry["keras_accuracy"] - entry["int8"]["accuracy"]
        assert drop * 100 <= 0.3
        assert entry["int8"]["bytes"] < entry["onnx"]["bytes"]
        assert entry["litert"]["agreement"] >= 0.9999
        assert entry["litert"]["max_abs_prob_diff"] <= 1e-4
        assert (entry["keras_accuracy"] - entry["litert_int8"]["accuracy"]) * 100 <= 0.3
        # The inside copy computes the same probabilities, beside its hidden layers.
        assert entry["inside"]["max_abs_prob_diff"] <= 1e-4 and entry["inside"]["passed"]
        assert Path(entry["inside"]["path"]).parent.name == "inside"


def test_litert_batch_is_dynamic_and_matches_keras(exported_dir, trained_dir, mnist):
    from keras_digits.deploy import litert

    model = saved.load_trained(trained_dir / "mnist" / "cnn" / "model.keras", "cnn")
    predict = litert.runner(exported_dir / "cnn.tflite")
    for batch in (1, 7, 1):  # a new size re-plans the tensors, a repeated one reuses them
        images = mnist.test_images[:batch].astype(np.float32)
        np.testing.assert_allclose(predict(images), model.predict(images, verbose=0), atol=1e-5)


def test_onnx_batch_is_dynamic_and_matches_keras(exported_dir, trained_dir, mnist):
    model = saved.load_trained(trained_dir / "mnist" / "cnn" / "model.keras", "cnn")
    for batch in (1, 7):
        images = mnist.test_images[:batch].astype(np.float32)
        onnx_probs = export.run_onnx(exported_dir / "cnn.onnx", images)
        np.testing.assert_allclose(onnx_probs, model.predict(images, verbose=0), atol=1e-5)


def test_parity_failure_is_detected():
    reference = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    broken = reference.copy()
    broken[0] = np.roll(broken[0], 1)
    result = export.compare(reference, broken, np.array([0, 1, 2, 3]))
    assert result["agreement"] == 0.75 and not export.fp32_passes(result)
    assert export.fp32_passes(export.compare(reference, reference, np.array([0, 1, 2, 3])))


def test_int8_may_lose_0_3_pp_or_one_image_of_a_small_subset():
    def result(images: int, lost: int) -> dict:
        labels = np.zeros(images, dtype=int)
        reference = np.eye(10, dtype=np.float32)[labels]
        candidate = reference.copy()
        candidate[:lost] = np.eye(10, dtype=np.float32)[1]
        return export.compare(reference, candidate, labels)

    assert export.int8_passes(result(10_000, 30)) and not export.int8_passes(result(10_000, 31))
    assert export.int8_passes(result(200, 1)) and not export.int8_passes(result(200, 2))


def test_export_without_training_says_what_to_do(tmp_path):
    result = run_module("keras_digits.export", "cnn", "--models-dir", str(tmp_path / "none"),
                        "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "run `python -m keras_digits.train cnn` first" in last_error_line(result.stderr)


@pytest.mark.slow
def test_export_rejects_a_keras_file_that_is_not_a_model(tmp_path):
    folder = tmp_path / "models" / "mnist" / "mlp"
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"PK\x03\x04 definitely not a zip archive")
    result = run_module("keras_digits.export", "mlp", "--models-dir", str(tmp_path / "models"),
                        "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "is not a readable Keras model" in last_error_line(result.stderr)
    assert not list((tmp_path / "out" / "mnist").glob("*.onnx"))


def test_export_rejects_the_wrong_architecture(trained_dir, tmp_path):
    folder = tmp_path / "models" / "mnist" / "cnn"
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(
        (trained_dir / "mnist" / "linear" / "model.keras").read_bytes())
    result = run_module("keras_digits.export", "cnn", "--models-dir", str(tmp_path / "models"),
                        "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "does not hold a cnn model" in last_error_line(result.stderr)
