"""`POST /api/predict`: the serve command's prediction endpoint for other programs.

The body is an image file (any `image/*` or `application/octet-stream` content type) or a
`multipart/form-data` form whose first file field is the image. The query may name the model
(`?model=cnn`, one of the models the page lists; default the page's default), ask for one digit
(`&single=1`), a top-k (`&top_k=3`) and whether a second model joins the unsure flag
(`&check=auto`, the default as in predict, or `&check=none`: the one-model rule, and faster).
The answer is the JSON object `predict --json` prints for one image, read by the same
`DigitReader`.

Every client mistake is a 4xx with `{"error": "..."}`: no body or no length (400/411), too
large (413), not an image (415 for the content type, 422 for the content), an unknown model
(404). Inference runs in at most `WORKERS` requests at once; a request that waits longer than
`QUEUE_SECONDS` for its turn gets 503, so a burst of clients slows answers down instead of
piling up threads on two cores.
"""

from __future__ import annotations

import os
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http import HTTPStatus
from pathlib import Path

from keras_digits.core.cli import UserError
from keras_digits.core.names import class_names
from keras_digits.reading.predict import describe
from keras_digits.reading.reader import DigitReader, NumberReading

MAX_BYTES = 10 * 2**20  # the largest upload; a 12-megapixel JPEG is about 5 MB
REQUEST_SECONDS = 10.0  # each read of a request may wait this long: slow clients are cut off
QUEUE_SECONDS = 10.0  # the longest wait for a free worker before 503
WORKERS = os.cpu_count() or 1
IMAGE_TYPES = ("image/", "application/octet-stream")
TRUE = ("1", "true", "yes")


class Predictor:
    """The models a server lists, each loaded on its first request and then shared by every
    thread (an onnxruntime session may run from several threads at once)."""

    def __init__(self, model_paths: dict[str, Path], default: str,
                 checks: dict[str, str | None] | None = None) -> None:
        """`model_paths` and `checks` are keyed by file name; `checks` names each model's check
        file (`server.pair_up_checks`, the page's pairing), None for the one-model rule."""
        self.model_paths = {name.removesuffix(".onnx"): path
                            for name, path in model_paths.items()}
        self.checks = {name.removesuffix(".onnx"): model_paths[check]
                       for name, check in (checks or {}).items() if check}
        self.default = default.removesuffix(".onnx")
        self.readers: dict[tuple[str, bool], DigitReader] = {}
        self.loading = threading.Lock()
        self.turns = threading.BoundedSemaphore(WORKERS)

    def reader(self, name: str, checked: bool) -> DigitReader:
        with self.loading:
            if (name, checked) not in self.readers:
                check = self.checks.get(name) if checked else None
                self.readers[name, checked] = DigitReader(self.model_paths[name], check=check)
            return self.readers[name, checked]

    def answer(self, query: dict[str, list[str]], body: bytes,
               content_type: str) -> tuple[HTTPStatus, dict]:
        """The status and JSON answer for one request, whatever its content."""
        name = query.get("model", [self.default])[-1].removesuffix(".onnx")
        if name not in self.model_paths:
            return HTTPStatus.NOT_FOUND, {
                "error": f"no model {name!r} here; choose one of {', '.join(self.model_paths)}"}
        try:
            top_k = int(query.get("top_k", ["3"])[-1])
        except ValueError:
            top_k = 0
        if top_k < 1:
            return HTTPStatus.BAD_REQUEST, {"error": "top_k must be a whole number, 1 or more"}
        check = query.get("check", ["auto"])[-1]
        if check not in ("auto", "none"):
            return HTTPStatus.BAD_REQUEST, {"error": "check must be auto or none"}
        image, status, error = extract_image(body, content_type)
        if error:
            return status, {"error": error}
        if not self.turns.acquire(timeout=QUEUE_SECONDS):
            return HTTPStatus.SERVICE_UNAVAILABLE, {
                "error": "the server is busy; try again in a few seconds"}
        try:
            reader = self.reader(name, check == "auto")
            classes = reader.classes
            single = (query.get("single", ["0"])[-1].lower() in TRUE
                      or classes != class_names("mnist"))
            number = NumberReading([reader.read(image)]) if single else reader.read_number(image)
        except UserError as exc:  # not decodable, no ink, too many marks: the image's fault
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)}
        finally:
            self.turns.release()
        return HTTPStatus.OK, describe("upload", number, classes, min(top_k, len(classes)))


def extract_image(body: bytes, content_type: str) -> tuple[bytes, HTTPStatus, str | None]:
    """The image bytes of a raw or multipart body, or the status and error to answer with."""
    if not body:
        return b"", HTTPStatus.BAD_REQUEST, "the request has no body; send an image file"
    kind = content_type.split(";")[0].strip().lower()
    if kind.startswith(IMAGE_TYPES) or not kind:
        return body, HTTPStatus.OK, None
    if kind != "multipart/form-data":
        return b"", HTTPStatus.UNSUPPORTED_MEDIA_TYPE, (
            f"content type {kind} is not an image; send the file as image/png, image/jpeg, "
            "application/octet-stream or a multipart/form-data form")
    form = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    for part in form.iter_parts() if form.is_multipart() else ():
        if part.get_filename() is not None or part.get_param("name", header="content-disposition") \
                in ("image", "file"):
            return part.get_payload(decode=True) or b"", HTTPStatus.OK, None
    return b"", HTTPStatus.BAD_REQUEST, ("the form has no file field; send the image as a "
                                         "field named 'image' or 'file'")
