"""Predict stage: real-looking drawings are read correctly, without TensorFlow, and bad files
get one line each."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_module
from drawings import VARIANTS, available_fonts, make_set
from PIL import Image

from keras_digits.core.cli import UserError
from keras_digits.imaging import normalize
from keras_digits.reading.reader import OnnxClassifier

pytestmark = pytest.mark.skipif(not available_fonts(), reason="DejaVu fonts are not installed")


@pytest.fixture(scope="module")
def drawings(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("drawings"), fonts=available_fonts()[:2])


def test_preprocessing_matches_mnist_geometry(drawings):
    for path, _, _ in drawings[::7]:
        pixels = normalize.load_digit(path)[..., 0]
        assert pixels.shape == (28, 28) and pixels.max() == pytest.approx(255, abs=1)
        rows, cols = np.flatnonzero(pixels.max(1) > 25), np.flatnonzero(pixels.max(0) > 25)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21  # the 20-pixel box
        mass = pixels / pixels.sum()
        com = ((mass.sum(1) * np.arange(28)).sum(), (mass.sum(0) * np.arange(28)).sum())
        assert np.allclose(com, 13.5, atol=1.0), (path, com)


@pytest.mark.not_unit  # every style of every font: seconds
def test_variants_of_one_drawing_look_alike(drawings):
    """Inverted, transparent, JPEG and photographed versions give the same 28x28 as the plain."""
    by_key = {(p.stem.rsplit("-", 2)[0], v, d): p for p, d, v in drawings}
    for (font, variant, digit), path in by_key.items():
        if variant in ("inverted", "rgba", "jpeg"):
            plain = normalize.load_digit(by_key[(font, "plain", digit)])
            other = normalize.load_digit(path)
            assert np.abs(plain - other).mean() < 12, (path, np.abs(plain - other).mean())


def test_mnist_style_reads_drawings_far_better_than_naive_resize(drawings, exported_dir):
    classifier = OnnxClassifier(exported_dir / "cnn.onnx")
    right, naive_right, per_variant = 0, 0, Counter()
    for path, label, variant in drawings:
        guess = classifier(normalize.load_digit(path)[None])[0].argmax()
        right += guess == label
        per_variant[variant] += guess == label
        naive_right += classifier(normalize.naive_resize(path)[None])[0].argmax() == label
    accuracy, naive = right / len(drawings), naive_right / len(drawings)
    assert accuracy >= 0.85, (accuracy, per_variant)
    assert accuracy >= naive + 0.3, (accuracy, naive)
    assert all(per_variant[v] >= 10 for v in VARIANTS), per_variant  # of 20 per variant


def test_mnist_test_images_survive_preprocessing(exported_dir, mnist, tmp_path):
    """A real MNIST digit saved as PNG is read nearly as well as the raw array is."""
    classifier = OnnxClassifier(exported_dir / "cnn.onnx")
    raw_right = through_files = 0
    for i in range(200):
        image = mnist.test_images[i, ..., 0]
        path = tmp_path / f"{i}.png"
        Image.fromarray(255 - image).save(path)  # as a person would draw it: dark on light
        raw_right += classifier(image[None, ..., None].astype(np.float32))[0].argmax() == \
            mnist.test_labels[i]
        through_files += classifier(normalize.load_digit(path)[None])[0].argmax() == \
            mnist.test_labels[i]
    assert through_files >= raw_right - 6, (through_files, raw_right)


def test_predict_cli_json_top_k_and_preview(drawings, tiny_exported_dir, tmp_path):
    files = [str(p) for p, d, v in drawings if v == "plain"][:3]
    model = str(tiny_exported_dir / "cnn.onnx")
    result = run_module("keras_digits.predict", *files, "--model", model,
                        "--top-k", "2", "--json", "--save-preview", str(tmp_path / "prev"))
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [a["file"] for a in answers] == files
    for answer in answers:
        assert len(answer["top"]) == 2
        assert answer["top"][0]["probability"] >= answer["top"][1]["probability"]
        assert sum(answer["probabilities"]) == pytest.approx(1.0, abs=1e-4)
        with Image.open(answer["preview"]) as preview:
            assert preview.size[0] > 224 and len(preview.getcolors(1 << 16)) > 5


def test_predict_never_imports_tensorflow(drawings, tiny_exported_dir):
    code = (
        "import sys\n"
        "from keras_digits.predict import main\n"
        f"code = main([{str(drawings[0][0])!r}, '--model', "
        f"{str(tiny_exported_dir / 'cnn.onnx')!r}])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _bad_inputs(folder: Path, good_png: Path) -> dict[str, tuple[Path, str]]:
    """Files a user might pass by mistake, with the words their error line must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[Path, str]] = {}
    cases["missing"] = (folder / "nope.png", "does not exist")
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    cases["empty"] = (empty, "empty file")
    text = folder / "notes.png"
    text.write_text("this is text, not pixels")
    cases["not an image"] = (text, "not an image")
    truncated = folder / "truncated.png"
    truncated.write_bytes(good_png.read_bytes()[:300])
    cases["truncated png"] = (truncated, "truncated or damaged")
    jpeg = folder / "whole.jpg"
    Image.open(good_png).convert("RGB").save(jpeg, quality=90)
    cut_jpeg = folder / "truncated.jpg"
    cut_jpeg.write_bytes(jpeg.read_bytes()[:400])
    cases["truncated jpeg"] = (cut_jpeg, "truncated or damaged")
    bomb = folder / "bomb.png"
    bomb.write_bytes(_png_header_only(30000, 30000))
    cases["decompression bomb"] = (bomb, "too large")
    animated = folder / "animated.gif"
    frames = [Image.new("L", (32, 32), v) for v in (0, 255)]
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    cases["animated gif"] = (animated, "animation")
    blank = folder / "blank.png"
    Image.new("L", (200, 200), 240).save(blank)
    cases["blank page"] = (blank, "no ink")
    cases["directory"] = (folder, "is a directory")
    return cases


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file claiming a huge size: decoding it naively would need gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_bad_images_each_get_one_line_and_the_rest_are_answered(drawings, tiny_exported_dir,
                                                                 tmp_path):
    good = next(p for p, d, v in drawings if v == "plain")
    cases = _bad_inputs(tmp_path / "bad", good)
    args = [str(good)] + [str(path) for path, _ in cases.values()]
    result = run_module("keras_digits.predict", *args, "--model",
                        str(tiny_exported_dir / "cnn.onnx"), timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(cases), result.stderr
    for (name, (path, words)), line in zip(cases.items(), errors, strict=True):
        assert line.startswith(f"error: {path}") and words in line, (name, line)
    assert result.stdout.startswith(f"{good}: ")


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "P", "1", "LA"])
def test_unusual_modes_are_read(drawings, mode, tmp_path):
    """CMYK JPEGs, 16-bit PNGs, palette and 1-bit images are converted, not refused."""
    plain = next(p for p, d, v in drawings if v == "plain" and d == 3)
    reference = normalize.load_digit(plain)
    image = Image.open(plain).convert("L")
    if mode == "CMYK":
        path = tmp_path / "cmyk.jpg"
        image.convert("CMYK").save(path, quality=95)
    elif mode == "I;16":
        path = tmp_path / "deep.png"
        Image.fromarray(np.asarray(image).astype(np.uint16) * 257).save(path)
    else:
        path = tmp_path / f"{mode.replace(';', '')}.png"
        image.convert(mode).save(path)
    assert np.abs(normalize.load_digit(path) - reference).mean() < 12


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a model at all", "is not a loadable ONNX model"), (None, "does not exist")],
)
def test_bad_model_files(drawings, tmp_path, content, message):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        OnnxClassifier(path)


def test_model_of_the_wrong_shape(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 32, 32, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 32, 32, 3])])
    path = tmp_path / "wrong.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UserError, match="not \\(N, 28, 28, 1\\) pixels"):
        OnnxClassifier(path)


def test_path_with_spaces_and_non_ascii(drawings, tiny_exported_dir, tmp_path):
    source = next(p for p, d, v in drawings if v == "plain" and d == 7)
    odd = tmp_path / "mes chiffres é" / "siete 7 ✓.png"
    odd.parent.mkdir()
    odd.write_bytes(source.read_bytes())
    result = run_module("keras_digits.predict", str(odd), "--model",
                        str(tiny_exported_dir / "cnn.onnx"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["file"] == str(odd)


def test_gz_is_not_an_image(tmp_path):
    path = tmp_path / "digits.gz"
    path.write_bytes(gzip.compress(b"\x00" * 100))
    with pytest.raises(UserError, match="not an image"):
        normalize.load_digit(path)


def test_the_python_api_raises_one_documented_error(tiny_exported_dir):
    """A library user catches `keras_digits.UserError`, which is also a ValueError, for every
    bad input, with the same one-line message the commands print."""
    import keras_digits
    from keras_digits import DigitReader

    assert keras_digits.UserError is UserError and issubclass(UserError, ValueError)
    reader = DigitReader(tiny_exported_dir / "cnn.onnx")
    blank = np.full((64, 64), 255, np.uint8)
    for read in (reader.read, reader.read_number):
        with pytest.raises(keras_digits.UserError, match="shows no ink"):
            read(blank)
    with pytest.raises(ValueError, match="does not exist"):
        DigitReader(tiny_exported_dir / "missing.onnx")
