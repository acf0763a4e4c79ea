"""`POST /api/predict`: answers equal predict's, every bad request gets a 4xx JSON error and the
server keeps answering, and a load of 200 requests from 8 clients loses none."""

from __future__ import annotations

import importlib.util
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from PIL import Image
from test_serve import running_server

from keras_digits.core.contract import THUMBNAIL_POLARITY
from keras_digits.reading.reader import DigitReader, surest
from keras_digits.serving import server

spec = importlib.util.spec_from_file_location("http_load", REPO / "scripts" / "http_load.py")
http_load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(http_load)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def post(url: str, body: bytes, content_type: str = "image/png", query: str = ""):
    """Status and JSON of one request; an HTTP error status is an answer too."""
    request = urllib.request.Request(url + "/api/predict" + query, data=body,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def raw_exchange(url: str, head: bytes, body: bytes = b"", wait: float = 30) -> tuple[int, dict]:
    """Send bytes as they are (a lying or stalling client) and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        connection.sendall(head + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, json.loads(answer.split(b"\r\n\r\n", 1)[1])


@pytest.fixture(scope="module")
def digits(mnist) -> list[bytes]:
    return [png(255 - image[:, :, 0]) for image in mnist.test_images[:40]]


@pytest.fixture(scope="module")
def endpoint(tiny_exported_dir):
    with running_server("--model", str(tiny_exported_dir / "cnn.onnx"), "--timeout", "2") as url:
        yield url


def test_the_answer_is_predicts_json(endpoint, digits, tiny_exported_dir):
    reader = DigitReader(tiny_exported_dir / "cnn.onnx")
    status, answer = post(endpoint, digits[0], query="?single=1&top_k=2")
    assert status == 200
    expected = reader.read(digits[0])
    assert answer["number"] == expected.name and len(answer["top"]) == 2
    np.testing.assert_allclose(answer["probabilities"], expected.probabilities, atol=1e-6)
    form = (b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"d.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + digits[0] + b"\r\n--XyZ--\r\n")
    status, by_form = post(endpoint, form, "multipart/form-data; boundary=XyZ", "?single=1")
    assert status == 200 and by_form["probabilities"] == answer["probabilities"]
    status, linear = post(endpoint, digits[0], query="?model=linear&single=1")
    assert status == 200 and linear["probabilities"] != answer["probabilities"]


BAD_REQUESTS = [  # (what, body, content type, query, status, words in the error)
    ("empty body", b"", "image/png", "", 400, "no body"),
    ("not an image", b"hello, this is text" * 10, "image/png", "", 422, "not an image"),
    ("a text content type", b"hello", "text/plain", "", 415, "not an image"),
    ("a truncated PNG", None, "image/png", "", 422, "truncated"),
    ("a model that does not exist", None, "image/png", "?model=resnet", 404, "no model"),
    ("a bad top_k", None, "image/png", "?top_k=zero", 400, "top_k"),
    ("a form without a file", b"--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n"
     b"--B--\r\n", "multipart/form-data; boundary=B", "", 400, "no file field"),
    ("a blank page", None, "image/png", "?blank", 422, "no ink"),
]


@pytest.mark.parametrize("what,body,kind,query,status,words", BAD_REQUESTS,
                         ids=[row[0] for row in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_json_error(endpoint, digits, what, body, kind, query, status,
                                           words):
    if what == "a truncated PNG":
        body = digits[1][: len(digits[1]) // 2]
    elif what == "a blank page":
        body, query = png(np.full((28, 28), 255, np.uint8)), ""
    elif body is None:
        body = digits[1]
    got, answer = post(endpoint, body, kind, query)
    assert (got, words in answer["error"]) == (status, True), answer
    assert post(endpoint, digits[2])[0] == 200  # and the server answers the next one


def test_oversized_missing_length_and_stalled_uploads(endpoint, digits):
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
    status, answer = raw_exchange(endpoint, head + b"Content-Length: 52428800\r\n\r\n",
                                  b"\x89PNG" + b"\0" * 65536)
    assert status == 413 and "limit" in answer["error"]
    status, answer = raw_exchange(endpoint, head + b"\r\n", b"abc")
    assert status == 411 and "Content-Length" in answer["error"]
    started = time.monotonic()  # a client that promises 1,000 bytes and sends 10
    status, answer = raw_exchange(endpoint, head + b"Content-Length: 1000\r\n\r\n", b"x" * 10)
    assert status == 408 and "stalled" in answer["error"]
    assert time.monotonic() - started < 10  # the server's --timeout 2, not forever
    assert post(endpoint, digits[3])[0] == 200


def test_load_of_200_requests_from_8_clients_loses_none(endpoint, digits, tiny_exported_dir):
    reader = DigitReader(tiny_exported_dir / "cnn.onnx")
    expected = [reader.read_number(body).text for body in digits]
    row = http_load.load(endpoint, digits, expected, requests=200, clients=8)
    assert (row["answered"], row["failed"], row["wrong"]) == (200, 0, 0), row


def test_100_concurrent_requests_are_all_answered(endpoint, digits):
    with ThreadPoolExecutor(100) as pool:
        statuses = list(pool.map(lambda i: post(endpoint, digits[i % len(digits)])[0],
                                 range(100)))
    assert statuses.count(200) == 100, statuses
    assert post(endpoint, digits[0])[0] == 200


def test_without_onnxruntime_web_the_page_is_off_and_the_api_answers(
        tiny_exported_dir, digits, tmp_path, monkeypatch):
    monkeypatch.setattr(server, "ORT_PACKAGE", tmp_path / "node_modules" / "onnxruntime-web")
    monkeypatch.chdir(tmp_path)  # nor in the current folder
    httpd = server.make_server(Path(tiny_exported_dir / "cnn.onnx"), "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as page:
            urllib.request.urlopen(url + "/", timeout=30)
        assert page.value.code == 503 and "npm ci" in json.loads(page.value.read())["error"]
        assert post(url, digits[0])[0] == 200
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("gap", [0.05, 0.3])
def test_the_other_tone_is_read_only_where_the_model_is_clearly_surer_of_it(gap):
    """`surest` keeps a thumbnail's own verdict on its paper (the first candidate) unless the
    model is surer of the other by more than the margin; an item without a choice keeps it."""
    def classifier(pixels: np.ndarray) -> np.ndarray:  # surer of bright inputs by `gap`
        top = 0.5 + gap * (pixels.reshape(len(pixels), -1).mean(axis=1) > 0)
        return np.stack([top, 1 - top], axis=1)

    own, other = np.zeros((28, 28, 1), np.float32), np.ones((28, 28, 1), np.float32)
    expected = int(gap > THUMBNAIL_POLARITY["MARGIN"])
    assert surest(classifier, [[own, other], [other]]) == [expected, 0]
    assert surest(classifier, []) == []
