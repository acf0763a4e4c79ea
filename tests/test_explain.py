"""Explain: evidence maps by occlusion from the exported files, checked for faithfulness (a
deletion test and the model-randomisation check), linear templates, and the command's page."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import last_error_line, run_module
from PIL import Image

from keras_digits.reading import explain
from keras_digits.reading.reader import DigitReader
from studies.explain_study import spearman


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _halves(pixels: np.ndarray) -> np.ndarray:
    """A stand-in model of three classes: 0 counts ink on the left, 1 on the right, 2 none."""
    left = pixels[:, :, :14, 0].sum(axis=(1, 2)) / 2000
    right = pixels[:, :, 14:, 0].sum(axis=(1, 2)) / 2000
    return _softmax(np.stack([left, right, np.zeros_like(left)], axis=1))


def test_evidence_points_at_the_ink_that_made_the_answer():
    pixels = np.zeros((28, 28, 1), np.float32)
    pixels[4:24, 3:7] = 255.0  # much ink on the left
    pixels[10:14, 20:23] = 255.0  # a little on the right
    found = explain.evidence(_halves, pixels)
    assert (found.answer, found.rival) == (0, 1)
    assert found.map[4:24, 3:7].min() > 0  # the left ink argued for the answer
    assert found.map[10:14, 20:23].max() < 0  # the right ink for the runner-up
    assert np.all(found.map[pixels[..., 0] == 0] == 0)  # paper carries no evidence
    blank = explain.evidence(_halves, np.zeros((28, 28, 1), np.float32))
    assert not blank.map.any()  # nothing to cover, nothing to say


def test_templates_recover_a_linear_models_weights():
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(784, 10)), rng.normal(size=10)

    def linear(pixels):
        return _softmax(pixels.reshape(len(pixels), -1) / 255.0 @ weights / 1.3 + bias)

    found = explain.templates(linear)
    expected = (weights - weights.mean(axis=1, keepdims=True)) / 1.3
    assert found.shape == (10, 28, 28)
    np.testing.assert_allclose(found.reshape(10, -1).T, expected, atol=1e-6)


def test_deleting_the_top_ranked_ink_is_measured():
    pixels = np.zeros((28, 28, 1), np.float32)
    pixels[4:24, 3:7] = 255.0
    ranking = np.zeros((28, 28))
    ranking[4:6, 3:7] = 1.0  # the top 8 of 80 ink pixels: exactly 10%
    fall = explain.deletion_drop(_halves, pixels, ranking, answer=0)
    deleted = pixels.copy()
    deleted[4:6, 3:7] = 0.0
    assert fall == pytest.approx(float(_halves(pixels[None])[0, 0] - _halves(deleted[None])[0, 0]))
    assert fall > 0


def test_spearman_is_the_rank_correlation():
    a = np.array([1.0, 5.0, 2.0, 9.0])
    assert spearman(a, a * 3 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)


def test_the_cnns_evidence_is_faithful_by_the_deletion_test(tiny_exported_dir, mnist):
    """On 100 MNIST test digits, deleting the 10% of ink the map ranks highest lowers the
    answer's probability at least twice as much as deleting 10% at random."""
    cnn = DigitReader(tiny_exported_dir / "cnn.onnx").classifier
    rng = np.random.default_rng(0)
    ranked, random = [], []
    for pixels in mnist.test_images[:100].astype(np.float32):
        found = explain.evidence(cnn, pixels)
        ranked.append(explain.deletion_drop(cnn, pixels, found.map, found.answer))
        random.append(explain.deletion_drop(cnn, pixels, rng.random((28, 28)), found.answer))
    assert np.mean(ranked) >= 2 * np.mean(random), (np.mean(ranked), np.mean(random))


def test_the_evidence_is_not_a_picture_of_the_input(tiny_exported_dir, mnist):
    """The model-randomisation check: the map of the same CNN with re-initialised weights
    ranks the ink unlike the trained model's map (median rank correlation under 0.3)."""
    import keras

    from keras_digits.models import registry

    keras.utils.set_random_seed(0)
    untrained = registry.create_model("cnn", inference=True)
    cnn = DigitReader(tiny_exported_dir / "cnn.onnx").classifier
    correlations = []
    for pixels in mnist.test_images[:20].astype(np.float32):
        ink = pixels[..., 0] > 0
        trained_map = explain.evidence(cnn, pixels).map
        random_map = explain.evidence(
            lambda x: np.asarray(untrained(x, training=False)), pixels).map
        correlations.append(spearman(trained_map[ink], random_map[ink]))
    assert np.median(correlations) < 0.3, correlations


def _digit_files(mnist, folder, count=2):
    paths = []
    for i in range(count):
        path = folder / f"digit{i}.png"
        Image.fromarray(255 - mnist.test_images[i, ..., 0]).save(path)
        paths.append(str(path))
    return paths


def test_explain_writes_a_page_for_every_model_and_refuses_bad_files(tiny_exported_dir, mnist,
                                                                      tmp_path):
    paths = _digit_files(mnist, tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "page"
    result = run_module("keras_digits.explain", *paths, str(tmp_path / "broken.png"),
                        "--export-dir", str(tiny_exported_dir.parent), "--out-dir", str(out))
    assert result.returncode == 1  # one file failed, the others were explained
    assert "broken.png" in last_error_line(result.stderr)
    for i, label in enumerate(mnist.test_labels[:2]):
        line = next(x for x in result.stdout.splitlines() if x.startswith(paths[i]))
        assert f"cnn {label} (" in line and "linear " in line  # every exported model
    page = (out / "index.html").read_text()
    assert "0.cnn.png" in page and "1.linear.png" in page and "template.9.png" in page
    # Inside the cnn: each convolutional layer's most active feature maps, from its inside file.
    assert "Inside the models" in page and "block3_2_relu" in page
    assert len(list(out.glob("0.cnn.block1_relu.*.png"))) == explain.CHANNELS
    assert all((out / f"template.{c}.png").is_file() for c in range(10))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".page")]  # no staging left


def test_explain_names_the_command_that_makes_a_missing_export(tiny_exported_dir, mnist,
                                                              tmp_path):
    paths = _digit_files(mnist, tmp_path, 1)
    missing = run_module("keras_digits.explain", *paths, "--model", "alexnet",
                         "--export-dir", str(tiny_exported_dir.parent),
                         "--out-dir", str(tmp_path / "page"))
    assert missing.returncode == 2
    assert "keras_digits.export" in last_error_line(missing.stderr)
    empty = run_module("keras_digits.explain", *paths, "--export-dir", str(tmp_path / "none"),
                       "--out-dir", str(tmp_path / "page"))
    assert empty.returncode == 2 and "keras_digits.export" in last_error_line(empty.stderr)
    assert not (tmp_path / "page").exists()
    linear_only = run_module("keras_digits.explain", *paths, "--model", "linear",
                             "--export-dir", str(tiny_exported_dir.parent),
                             "--out-dir", str(tmp_path / "page"))
    assert linear_only.returncode == 0, linear_only.stderr  # no convolutions: what applies
    assert (tmp_path / "page" / "0.linear.png").is_file()
    assert "Inside the models" not in (tmp_path / "page" / "index.html").read_text()


def _tiny_mlp_onnx(path, hidden1, hidden2, rng):
    """An MLP as tf2onnx names its tensors: pixels -> 16 ReLU units -> 8 ReLU units -> softmax."""
    import onnx
    from onnx import TensorProto, helper

    from keras_digits.core.contract import INPUT_NAME, OUTPUT_NAME

    logits = rng.normal(size=(8, 10)).astype(np.float32)
    weights = {"w1": hidden1, "b1": np.zeros(16, np.float32), "w2": hidden2,
               "b2": np.zeros(8, np.float32), "w3": logits,
               "shape": np.array([-1, 784], np.int64)}
    nodes = [helper.make_node("Reshape", [INPUT_NAME, "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w1"], ["m1"]),
             helper.make_node("Add", ["m1", "b1"], ["mlp_1/hidden1_1/BiasAdd:0"]),
             helper.make_node("Relu", ["mlp_1/hidden1_1/BiasAdd:0"], ["mlp_1/hidden1_1/Relu:0"]),
             helper.make_node("MatMul", ["mlp_1/hidden1_1/Relu:0", "w2"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["mlp_1/hidden2_1/BiasAdd:0"]),
             helper.make_node("Relu", ["mlp_1/hidden2_1/BiasAdd:0"], ["mlp_1/hidden2_1/Relu:0"]),
             helper.make_node("MatMul", ["mlp_1/hidden2_1/Relu:0", "w3"], ["logits"]),
             helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=-1)]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                                     [None, 28, 28, 1])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None, 10])],
        [onnx.numpy_helper.from_array(v, k) for k, v in weights.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_the_inside_file_shows_an_mlps_units_and_their_weights(tmp_path):
    """deploy/inside.py adds the hidden layers as outputs (dense ones before their ReLU), and
    explain probes the first layer's weights back through the file."""
    import onnxruntime as ort

    from keras_digits.deploy import inside

    rng = np.random.default_rng(0)
    hidden1 = rng.normal(size=(784, 16)).astype(np.float32) / 100
    hidden2 = rng.normal(size=(16, 8)).astype(np.float32)
    model = _tiny_mlp_onnx(tmp_path / "mlp.onnx", hidden1, hidden2, rng)
    path = inside.write_inside(model)
    assert path == tmp_path / "inside" / "mlp.onnx"
    found = explain.Inside(path)
    assert [(x["layer"], x["kind"]) for x in found.layers] == [("hidden1", "dense"),
                                                               ("hidden2", "dense")]
    templates = found.first_dense_templates()
    assert np.allclose(templates, hidden1.T.reshape(16, 28, 28), atol=1e-5)
    pixels = rng.uniform(0, 255, (28, 28, 1)).astype(np.float32)
    first, second = found(pixels)
    assert np.allclose(first.values, np.maximum(pixels.reshape(-1) @ hidden1, 0), atol=1e-3)
    assert second.templates is None and second.values.shape == (8,)
    assert explain.strongest(first, 3).tolist() == np.argsort(-first.values)[:3].tolist()
    # The same probabilities as the file it was made from.
    plain, within = (ort.InferenceSession(str(p)) for p in (model, path))
    batch = pixels[None]
    assert np.allclose(plain.run(None, {"pixels": batch})[0],
                       within.run(None, {"pixels": batch})[0])


def test_a_damaged_inside_file_is_named_and_left_out(tmp_path, capsys):
    from keras_digits.deploy import inside

    rng = np.random.default_rng(1)
    model = _tiny_mlp_onnx(tmp_path / "mlp.onnx", rng.normal(size=(784, 16)).astype(np.float32),
                           rng.normal(size=(16, 8)).astype(np.float32), rng)
    inside.write_inside(model)
    assert list(explain.insides([str(model)], "mnist", "export")) == ["mlp"]
    (tmp_path / "inside" / "mlp.onnx").write_bytes(b"damaged")
    assert explain.insides([str(model)], "mnist", "export") == {}
    warning = capsys.readouterr().err.strip()
    assert "\n" not in warning and "keras_digits.export" in warning
