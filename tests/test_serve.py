"""Serve stage: the page's JavaScript preprocessing equals predict's, the server answers bad input
with one line, and in a real headless Chromium a digit drawn with the mouse is read by
onnxruntime-web the way `predict` reads the same drawing."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, last_error_line, run_module
from drawings import VARIANTS, available_fonts, in_a_box, make_set, on_a_desk

from keras_digits.core import contract
from keras_digits.data import folders
from keras_digits.imaging import decode, find_ink, normalize
from keras_digits.reading.reader import DigitReader, OnnxClassifier
from keras_digits.serving import server
from studies import page_latency

# CI sets this so a missing browser or Node.js fails the run instead of skipping these tests.
REQUIRED = os.environ.get("KERAS_DIGITS_REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def need(condition: bool, what: str) -> None:
    if not condition:
        if REQUIRED:
            pytest.fail(f"{what} is required here (KERAS_DIGITS_REQUIRE_BROWSER=1)")
        pytest.skip(f"{what} is not installed")


@contextmanager
def running_server(*args: str):
    """`python -m keras_digits.serve --port 0 ...` in the background; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "keras_digits.serve", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=REPO, env=env)
    try:
        line = process.stdout.readline()
        assert "http://" in line, line + process.stderr.read()
        yield "http://" + line.split("http://", 1)[1].split()[0].rstrip("/")
    finally:
        process.terminate()
        process.wait(timeout=10)


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


# ---- the JavaScript preprocessing ---------------------------------------------------------------

def test_page_preprocessing_equals_predict_preprocessing(tmp_path, mnist):
    """preprocess.js, run by Node.js, gives the 28x28 predict gives on every kind of drawing
    (two digits of every style: the slow tier's browser tests add hand-drawn strokes)."""
    need(shutil.which("node") is not None, "Node.js")
    need(bool(available_fonts()), "DejaVu fonts")
    step = 5
    everything = make_set(tmp_path / "drawings", fonts=available_fonts()[:1])
    grays = []
    for path, _, _ in everything[::step]:
        with decode.open_image(path) as image:
            grays.append(decode.to_gray(image, path))
    # Digits across the rules of ruled and squared paper: their strokes mended over each rule.
    for path, digit, variant in everything:
        if variant in ("lined", "plain") and digit in (4, 8):
            gray = decode.read_gray(path)
            if variant == "plain":
                gray[5::gray.shape[0] // 7, :] = np.minimum(gray[5::gray.shape[0] // 7, :], 0.67)
                gray[:, 5::gray.shape[1] // 7] = np.minimum(gray[:, 5::gray.shape[1] // 7], 0.67)
            grays.append(gray)
    # Tight crops whose polarity the border cannot settle: bold scanned digits whose strokes
    # cover most of the border (judged by which tone is in fewer pieces), and a 1 cropped to
    # its ink.
    masks, _ = folders.load_semeion()
    lined = [m for m in masks if np.concatenate([m[0], m[-1], m[:, 0], m[:, -1]]).mean() > 0.5]
    grays += [1.0 - m.astype(np.float32) for m in lined[:4]]
    grays.append(np.kron(grays[-1], np.ones((2, 2), np.float32)))  # a small scan, pixels doubled
    sliver = np.zeros((20, 5), np.float32)  # a slanted 1, white on black
    for row in range(20):
        left = 2 - row * 3 // 20
        sliver[row, left:left + 3] = 1.0
    grays.append(sliver)
    # Thumbnails under SMALL_CROP pixels, enlarged with the cubic filter: 8x8 block averages.
    grays += [m.astype(np.float32).reshape(8, 2, 8, 2).mean(axis=(1, 3)) for m in masks[:2]]
    # A sheet photographed on a dark desk, the desk painted in the paper's tone.
    grays += [on_a_desk(7, (120, 80, 700, 560)), on_a_desk(4, (0, 0, 0, 0), tilted=True)]
    # Thin strips of desk along one edge, too thin for the desk rule: cleared as no ink.
    grays += [on_a_desk(2, (8, -20, 700, 520)), on_a_desk(9, (-20, -20, 700, 472))]
    # A form's box cropped at its lines (dark on white, light on black) and with paper around
    # it: painted as paper.
    grays += [in_a_box(mnist.test_images[0, ..., 0], 64, 2),
              1.0 - in_a_box(mnist.test_images[1, ..., 0], 40, 1),
              in_a_box(mnist.test_images[2, ..., 0], 200, 4, outside=20)]
    payload = bytearray(struct.pack("<i", len(grays)))
    expected = []
    for gray in grays:
        payload += struct.pack("<ii", gray.shape[1], gray.shape[0]) + gray.astype("<f4").tobytes()
        expected.append(normalize.mnist_style(find_ink.ink_map(gray)) * 255)
    (tmp_path / "in.bin").write_bytes(payload)
    subprocess.run(["node", str(REPO / "tests" / "preprocess_runner.mjs"),
                    str(server.WEB_DIR / "preprocess.js"), str(tmp_path / "in.bin"),
                    str(tmp_path / "out.bin"), json.dumps(contract.PREPROCESSING)],
                   check=True, timeout=120, cwd=REPO)
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), "<f4").reshape(-1, 28, 28)
    assert len(got) == len(grays) == 10 * len(VARIANTS) // step + 19
    worst = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    assert worst < 0.01, worst  # in 0-255 units: the same image up to float rounding


@pytest.mark.parametrize("verified", [False, True])
def test_page_number_splitting_equals_predict(mnist, tmp_path, verified):
    """segment.js, run by Node.js, cuts composed numbers (separated, touching, broken) into the
    same pieces with the same 28x28 inputs as segment.py, too many marks included, with the
    confidence rule and with the verifier's (which also joins)."""
    need(shutil.which("node") is not None, "Node.js")
    from test_numbers import (
        _side_by_side,
        a_bar_bridged_to_a_short_ring,
        faint_one_beside_a_zero,
        open_four_and_a_one,
        stand_in_scores,
        thin_seven_beside_a_bold_zero,
    )

    from keras_digits.data.compose import compose
    from keras_digits.imaging import segment

    rng = np.random.default_rng(0)
    images = []
    for layout in ("separated", "touching", "broken"):
        for length in (2, 3):
            chosen = rng.choice(len(mnist.test_images), length, replace=False)
            images.append(compose([mnist.test_images[i, ..., 0] for i in chosen], layout, rng))
    bars = np.full((60, 54), 255.0, np.float32)  # "11" joined by a bridge: only cut verified
    bars[10:50, 10:20] = bars[10:50, 34:44] = bars[29:31, 20:34] = 0.0
    images.append(bars)
    images.append(a_bar_bridged_to_a_short_ring())  # cut verified: a piece 0.6 of the mark's height
    images.append(faint_one_beside_a_zero())
    images.append(thin_seven_beside_a_bold_zero())
    images.append(open_four_and_a_one())
    # A thin digit beside bold ones, a light one, and a hairline left out of the digits.
    thin = [mnist.test_images[i, ..., 0] for i in (9655, 1875, 7984, 3196)]
    images.append(_side_by_side(thin, [5, 5, 5]))
    images.append(_side_by_side([d * (0.4 if i == 1 else 1.0) for i, d in enumerate(thin)],
                                [4, 6, 3]))
    struck = _side_by_side(thin[:3], [6, 6])
    struck[64:100, -16] = 0.0  # under FRAGMENT_HEIGHT of the digits, over LEFT_OUT_HEIGHT
    images.append(struck)
    nines = [mnist.test_images[i, ..., 0] for i in (3791, 2702, 4369, 8015)]
    images.append(_side_by_side(nines, [5, 5, 5]))  # a 9 whose loop is under 0.5
    specks = np.full((120, 300), 255.0, np.float32)
    for y, x in rng.integers(5, 110, size=(30, 2)) * [1, 2.5]:
        specks[int(y):int(y) + 3, int(x):int(x) + 3] = 0.0
    images.append(specks)
    payload = bytearray(struct.pack("<i", len(images)))
    expected, left_out = [], []
    for image in images:
        gray = decode.read_gray(image)
        payload += struct.pack("<ii", gray.shape[1], gray.shape[0]) + gray.astype("<f4").tobytes()
        try:
            ink = find_ink.ink_map(gray)
            pieces = segment.split_number(ink, stand_in_scores, verified)
            expected.append([(list(p.box), normalize.mnist_style(p.ink) * 255, p.cut_doubt,
                              p.cut_height) for p in pieces])
            left_out.append(segment.left_out(ink, pieces))
        except ValueError as exc:
            expected.append(str(exc))
    (tmp_path / "in.bin").write_bytes(payload)
    config = {"preprocessing": contract.PREPROCESSING, "segmentation": contract.SEGMENTATION,
              "verified": verified}
    subprocess.run(["node", str(REPO / "tests" / "segment_runner.mjs"), str(server.WEB_DIR),
                    str(tmp_path / "in.bin"), str(tmp_path / "out.json"), json.dumps(config)],
                   check=True, timeout=120, cwd=REPO)
    got = json.loads((tmp_path / "out.json").read_text())
    assert isinstance(expected[-1], str) and got[-1] == {"error": expected[-1]}
    assert sum(len(e) for e in expected[:-1]) > len(expected[:-1]) * 2  # cuts were made
    assert max(left_out) >= segment.LEFT_OUT_HEIGHT  # the hairline is measured on both sides
    for mine, theirs, missed in zip(expected[:-1], got[:-1], left_out, strict=True):
        assert [box for box, _, _, _ in mine] == theirs["boxes"]
        assert theirs["leftOut"] == pytest.approx(missed, abs=1e-9)
        assert theirs["cutDoubts"] == pytest.approx([doubt for _, _, doubt, _ in mine], abs=1e-6)
        assert theirs["cutHeights"] == pytest.approx([h for _, _, _, h in mine], abs=1e-9)
        for (_, pixels, _, _), js in zip(mine, theirs["pixels"], strict=True):
            assert np.abs(pixels - np.array(js).reshape(28, 28)).max() < 0.01
    # the verified rule cuts the bridged "11" in a close call, and both sides say so
    assert verified == any(doubt > 0 for pieces in expected[:-1] for _, _, doubt, _ in pieces)
    assert verified == any(h < segment.SHORT_CUT for pieces in expected[:-1] for *_, h in pieces)


# ---- the server on the command line ----------------------------------------------------------

def test_serve_refuses_a_missing_model(tmp_path):
    result = run_module("keras_digits.serve", "--model", str(tmp_path / "nope.onnx"), "--port",
                        "0", timeout=60)
    assert result.returncode == 2
    assert "does not exist" in last_error_line(result.stderr)
    assert "keras_digits.export" in result.stderr


def test_serve_refuses_a_corrupt_model_and_lists_a_corrupt_sibling(tiny_exported_dir, tmp_path):
    (tmp_path / "cnn.onnx").write_bytes(b"not a model")
    result = run_module("keras_digits.serve", "--model", str(tmp_path / "cnn.onnx"), "--port",
                        "0", timeout=60)
    assert result.returncode == 2
    assert "not a loadable ONNX model" in last_error_line(result.stderr)

    shutil.copy(tiny_exported_dir / "cnn.onnx", tmp_path / "cnn.onnx")
    (tmp_path / "mlp.onnx").write_bytes(b"\x08\x07garbage")
    models = {m.file: m for m in server.catalogue(tmp_path / "cnn.onnx")}
    assert models["cnn.onnx"].error is None and models["cnn.onnx"].classes[7] == "7"
    assert "not a loadable ONNX model" in models["mlp.onnx"].error


def test_serve_reports_a_port_in_use(tiny_exported_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_module("keras_digits.serve", "--model", str(tiny_exported_dir / "cnn.onnx"),
                            "--port", str(port), timeout=60)
    assert result.returncode == 2
    line = last_error_line(result.stderr)
    assert f"port {port}" in line and "in use" in line and "--port" in line


def test_serve_without_onnxruntime_web_says_to_run_npm(tmp_path):
    with pytest.raises(server.UserError, match="npm ci"):
        server.find_ort(tmp_path / "node_modules" / "onnxruntime-web")


def test_server_serves_only_the_page_runtime_and_models(tiny_exported_dir):
    need(server.ORT_PACKAGE.is_dir(), "onnxruntime-web (npm ci)")
    with running_server("--model", str(tiny_exported_dir / "cnn.onnx")) as url:
        status, kind, body = fetch(url + "/")
        assert status == 200 and kind.startswith("text/html") and b"app.js" in body
        config = json.loads(fetch(url + "/api/config")[2])
        assert config["default"] == "cnn.onnx"
        files = [m["file"] for m in config["models"]]
        assert files == ["cnn.onnx", "cnn.int8.onnx", "linear.onnx", "linear.int8.onnx"]
        assert config["verifier"] is None  # none made: the page cuts on confidence alone
        assert [m["check"] for m in config["models"]] == [None] * 4  # no alexnet to ask
        assert fetch(url + server.VERIFIER_ROUTE)[0] == 404
        status, kind, body = fetch(url + "/models/cnn.onnx")
        assert status == 200 and body == (tiny_exported_dir / "cnn.onnx").read_bytes()
        assert fetch(url + "/ort/ort-wasm-simd-threaded.wasm")[1] == "application/wasm"
        for probe in ("/ort/../../../setup.sh", "/models/../parity.json", "/models/parity.json",
                      "/ort/%2e%2e/package.json", "/setup.sh"):
            status, _, body = fetch(url + probe)
            assert status == 404 and b"#!" not in body and b"limits" not in body, probe


def test_each_model_on_the_page_is_checked_by_the_model_predict_would_ask():
    digits = [str(d) for d in range(10)]

    def listed(file: str, classes=digits, error: str | None = None) -> server.ModelInfo:
        return server.ModelInfo(file.removesuffix(".onnx"), file, "mnist", classes, None, error)

    models = [listed(f"{name}.onnx") for name in
              ("cnn", "cnn.int8", "linear", "alexnet", "alexnet.int8")]
    server.pair_up_checks(models)
    assert [m.check for m in models] == ["alexnet.onnx", "alexnet.onnx", "alexnet.onnx",
                                         "cnn.onnx", "cnn.onnx"]
    # A partner that is unusable or reads other classes is no check: the one-model rule.
    for partner in (listed("alexnet.onnx", error="corrupt"),
                    listed("alexnet.onnx", classes=[f"class {d}" for d in digits])):
        alone = [listed("cnn.onnx"), partner]
        server.pair_up_checks(alone)
        assert alone[0].check is None


def test_server_serves_the_one_digit_verifier_when_it_was_made(tiny_exported_dir, tmp_path):
    need(server.ORT_PACKAGE.is_dir(), "onnxruntime-web (npm ci)")
    shutil.copy(tiny_exported_dir / "cnn.onnx", tmp_path / "cnn.onnx")
    verifier = tmp_path / "verifier" / "one_digit.onnx"
    verifier.parent.mkdir()
    verifier.write_bytes(b"the verifier's bytes")
    with running_server("--model", str(tmp_path / "cnn.onnx")) as url:
        config = json.loads(fetch(url + "/api/config")[2])
        assert config["verifier"] == server.VERIFIER_ROUTE
        assert [m["file"] for m in config["models"]] == ["cnn.onnx"]  # not in the picker
        status, _, body = fetch(url + config["verifier"])
        assert status == 200 and body == verifier.read_bytes()


# ---- the page in a real browser --------------------------------------------------------------

SEVEN = [[(70, 60), (210, 60)], [(210, 60), (120, 230)]]
ONE = [[(150, 40), (140, 240)]]
ZERO = [[(140 + 60 * np.sin(a), 140 - 90 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 40)]]


@pytest.fixture(scope="module")
def browser():
    need(Path(CHROMIUM).is_file(), "Chromium")
    need(server.ORT_PACKAGE.is_dir(), "onnxruntime-web (npm ci)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page_on(browser):
    """Open the page of a server serving `model` and wait until it has settled."""
    pages = []

    def open_page(url: str):
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.goto(url + "/")
        page.wait_for_function("document.body.dataset.status !== 'loading'", timeout=60_000)
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()


def draw(page, strokes) -> dict | None:
    """Draw strokes with the mouse (pad coordinates), then return the page's settled answer."""
    page_latency.draw(page, strokes)
    page.evaluate("window.digitApp.whenIdle()")
    return page.evaluate("window.digitApp.result")


def test_drawn_digits_are_read_in_the_browser_as_predict_reads_them(exported_dir, page_on,
                                                                    tmp_path):
    classifier = OnnxClassifier(exported_dir / "cnn.onnx")
    with running_server("--model", str(exported_dir / "cnn.onnx")) as url:
        page = page_on(url)
        assert page.evaluate("document.body.dataset.status") == "ready"
        for digit, strokes in ((7, SEVEN), (1, ONE), (0, ZERO)):
            page.click("#clear")
            result = draw(page, strokes)
            assert result["top"] == digit and result["label"] == str(digit)
            assert sum(result["probabilities"]) == pytest.approx(1.0, abs=1e-4)
            assert f"reads {digit}" in page.inner_text("#message")
            bars = page.locator("#bars li")
            assert bars.count() == 10 and "top" in bars.nth(digit).get_attribute("class")
            # The same drawing through the predict command's code path.
            png = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
            path = tmp_path / f"drawn-{digit}.png"
            path.write_bytes(base64.b64decode(png.split(",", 1)[1]))
            pixels = normalize.load_digit(path)
            page_pixels = np.array(result["pixels"], dtype=np.float32).reshape(28, 28)
            assert np.abs(page_pixels - pixels[..., 0]).max() < 0.01
            expected = classifier(pixels[None])[0]
            assert np.allclose(result["probabilities"], expected, atol=1e-4)


def test_undo_clear_empty_canvas_and_model_switch(exported_dir, page_on):
    with running_server("--model", str(exported_dir / "cnn.onnx")) as url:
        page = page_on(url)
        assert draw(page, []) is None  # nothing drawn yet
        assert "Draw a digit" in page.inner_text("#message")
        bar_only = draw(page, SEVEN[:1])
        assert draw(page, SEVEN[1:])["top"] == 7
        page.click("#undo")
        page.evaluate("window.digitApp.whenIdle()")
        assert page.evaluate("window.digitApp.result") == bar_only  # back to the bar alone
        page.click("#clear")
        page.evaluate("window.digitApp.whenIdle()")
        assert page.evaluate("window.digitApp.result") is None
        assert "Draw a digit" in page.inner_text("#message")
        assert page.locator("#bars li.top").count() == 0

        page.select_option("#model-picker", "cnn.int8.onnx")
        page.wait_for_function("document.body.dataset.status === 'ready'", timeout=60_000)
        result = draw(page, SEVEN)
        assert result["model"] == "cnn.int8.onnx" and result["top"] == 7


def test_the_page_explains_each_stroke_as_explain_does(exported_dir, page_on):
    """After a stroke: the evidence map equals `explain`'s for the same 28x28, every exported
    model answers side by side as onnxruntime does, and the cnn's inside file shows each conv
    layer's most active feature maps."""
    from keras_digits.core import artifacts
    from keras_digits.reading import explain

    with running_server("--model", str(exported_dir / "cnn.onnx")) as url:
        page = page_on(url)
        draw(page, SEVEN)
        page.wait_for_function("window.digitApp.explanation && "
                               "window.digitApp.explanation.full !== null", timeout=60_000)
        result = page.evaluate("window.digitApp.result")
        shown = page.evaluate("window.digitApp.explanation")
        timing = page.evaluate("window.digitApp.timing")
        # A stroke's end with no new ink explains what was read; it does not read it again.
        reads = page.evaluate("window.digitApp.reads")
        page.dispatch_event("#pad", "pointerup")
        page.evaluate("window.digitApp.whenIdle()")
        assert page.evaluate("window.digitApp.reads") == reads
        assert page.evaluate("window.digitApp.explanation.full") == shown["full"]
    pixels = np.array(result["pixels"], np.float32).reshape(28, 28, 1)
    cnn = OnnxClassifier(exported_dir / "cnn.onnx")
    expected = explain.evidence(cnn, pixels)
    assert np.allclose(shown["full"], expected.map.ravel(), atol=1e-3 * np.abs(expected.map).max())
    assert np.count_nonzero(shown["coarse"]) > 0
    answers = {a["model"]: a for a in shown["models"]}
    assert set(answers) == {"linear", "mlp", "cnn"}  # the int8 copies are not repeated
    for name, answer in answers.items():
        probabilities = OnnxClassifier(exported_dir / f"{name}.onnx")(pixels[None])[0]
        assert answer["answer"] == str(probabilities.argmax())
        assert answer["probability"] == pytest.approx(probabilities.max(), abs=1e-4)
    inside = explain.Inside(artifacts.inside_path(exported_dir / "cnn.onnx"))
    layers = inside(pixels)
    assert [x["layer"] for x in shown["inside"]] == [x.name for x in layers]
    for layer, seen in zip(layers, shown["inside"], strict=True):
        assert seen["channels"] == explain.strongest(layer, explain.CHANNELS).tolist()
    assert set(timing) == {"answer", "evidence", "inside", "models", "full"}


def _moved(strokes, scale: float, dx: float, dy: float):
    return [[(x * scale + dx, y * scale + dy) for x, y in points] for points in strokes]


def _stand_in_verifier(path: Path) -> None:
    """A valid one-digit verifier file, not a trained one: sigmoid of the mean pixel / 255.
    The page and predict must load and use it alike."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[1, 2, 3], keepdims=1),
         helper.make_node("Div", ["mean", "scale"], ["scaled"]),
         helper.make_node("Reshape", ["scaled", "shape"], ["logit"]),
         helper.make_node("Sigmoid", ["logit"], ["one_digit"])],
        "stand_in_verifier",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 28, 28, 1])],
        [helper.make_tensor_value_info("one_digit", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [255.0]),
         helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1])])
    path.parent.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what onnxruntime-web reads (tf2onnx writes 8 too)
    onnx.save(model, str(path))


@pytest.mark.parametrize("verified", [False, True])
def test_a_number_is_read_in_the_browser_as_predict_reads_it(exported_dir, page_on, tmp_path,
                                                             verified):
    model = exported_dir / "cnn.onnx"
    if verified:  # the page loads the verifier and cuts as predict does with it
        model = tmp_path / "models" / "cnn.onnx"
        model.parent.mkdir()
        shutil.copy(exported_dir / "cnn.onnx", model)
        _stand_in_verifier(model.parent / "verifier" / "one_digit.onnx")
    with running_server("--model", str(model)) as url:
        page = page_on(url)
        page.check("#number-mode")
        page.wait_for_function("document.getElementById('pad').width === 500")
        result = draw(page, _moved(SEVEN, 0.7, 20, 10) + _moved(ONE, 0.7, 200, 15)
                      + _moved(ZERO, 0.7, 270, 5))
        assert result["number"] == "710" and len(result["digits"]) == 3
        assert result["verified"] is verified
        assert "reads 710" in page.inner_text("#message")
        assert page.locator("#digits figure").count() == 3
        # The same canvas through predict's number path gives the same pieces and answers.
        png = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
        path = tmp_path / "drawn-number.png"
        path.write_bytes(base64.b64decode(png.split(",", 1)[1]))
        reader = DigitReader(model)
        assert (reader.verifier is not None) is verified
        number = reader.read_number(path)
        assert number.text == "710"
        for mine, theirs in zip(number.digits, result["digits"], strict=True):
            shown = np.array(theirs["pixels"], dtype=np.float32).reshape(28, 28)
            assert np.abs(shown - mine.pixels[..., 0]).max() < 0.01
            assert theirs["probability"] == pytest.approx(mine.probability, abs=1e-4)
            assert theirs["unsure"] == mine.unsure
        assert result["reason"] == number.reason and result["unsure"] == number.unsure
        page.click("#clear")
        many = [[(15 + 35 * i, 40), (15 + 35 * i, 160)] for i in range(14)]
        assert draw(page, many) is None
        assert "14 separate marks" in page.inner_text("#message")


def test_the_page_flags_unsure_answers_with_the_check_model_as_predict_does(exported_dir,
                                                                           page_on, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(exported_dir / "cnn.onnx", folder / "cnn.onnx")
    # A stand-in check model that reads unlike the cnn: the mlp under alexnet's name.
    shutil.copy(exported_dir / "mlp.onnx", folder / "alexnet.onnx")
    checker = OnnxClassifier(folder / "alexnet.onnx")
    reader = DigitReader(folder / "cnn.onnx", check=folder / "alexnet.onnx")

    def saved(page, name: str) -> Path:
        png = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
        path = tmp_path / name
        path.write_bytes(base64.b64decode(png.split(",", 1)[1]))
        return path

    def assert_checked(theirs: dict, mine) -> None:
        pixels = np.array(theirs["pixels"], dtype=np.float32).reshape(1, 28, 28, 1)
        best = theirs["top"]
        mean = (theirs["probabilities"][best] + checker(pixels)[0, best]) / 2
        assert theirs["support"] == pytest.approx(mean, abs=1e-4)
        assert (theirs["unsure"], theirs["reason"]) == (mine.unsure, mine.reason)

    with running_server("--model", str(folder / "cnn.onnx")) as url:
        page = page_on(url)
        flagged = 0
        for i, strokes in enumerate((SEVEN, ONE, SEVEN[:1], ZERO[:1] + ONE)):
            page.click("#clear")
            result = draw(page, strokes)
            assert result["check"] == "alexnet.onnx"
            assert_checked(result, reader.read(saved(page, f"drawn-{i}.png")))
            flagged += result["unsure"]
        print(f"{flagged} of 4 drawings flagged unsure")
        page.check("#number-mode")
        page.wait_for_function("document.getElementById('pad').width === 500")
        result = draw(page, _moved(SEVEN, 0.7, 20, 10) + _moved(ONE, 0.7, 200, 15))
        assert result["check"] == "alexnet.onnx"
        number = reader.read_number(saved(page, "drawn-number.png"))
        assert result["number"] == number.text
        for mine, theirs in zip(number.digits, result["digits"], strict=True):
            assert_checked(theirs, mine)


def test_page_says_what_to_do_when_the_model_file_is_gone(exported_dir, page_on, tmp_path):
    for name in ("cnn.onnx", "linear.onnx"):
        shutil.copy(exported_dir / name, tmp_path / name)
    with running_server("--model", str(tmp_path / "cnn.onnx")) as url:
        page = page_on(url)
        (tmp_path / "linear.onnx").unlink()  # deleted while the server runs
        page.select_option("#model-picker", "linear.onnx")
        page.wait_for_function("document.body.dataset.status === 'error'", timeout=30_000)
        text = page.inner_text("#message")
        assert "linear.onnx" in text and "missing" in text and "keras_digits.export" in text
        assert page.evaluate("window.digitApp.result") is None


def test_serve_never_imports_tensorflow(tiny_exported_dir):
    """The server only checks and serves files: no TensorFlow, like predict."""
    code = ("import sys\nfrom pathlib import Path\nfrom keras_digits.serving import server\n"
            f"models = server.catalogue(Path({str(tiny_exported_dir / 'cnn.onnx')!r}))\n"
            "assert all(m.error is None for m in models), models\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert result.returncode == 0, result.stderr
