"""Serve stage: `python -m keras_digits.serve [--model export/mnist/cnn.onnx] [--port 8000]`.

A draw-a-digit page where onnxruntime-web runs the exported `.onnx` files in the browser: the
page preprocesses the drawing exactly as `predict` does (`web/preprocess.js` mirrors
`imaging/`) and shows the ten probabilities. For the page, Python only serves files — the
standard library's threading HTTP server, on loopback unless `--host` says otherwise — and
checks each model with onnxruntime before listing it. onnxruntime-web comes from the npm
registry (`npm ci`, run by setup.sh) and is served from node_modules, so the page needs no
internet. Other programs POST images to `/api/predict` (serving/api.py) and get
`predict --json`'s answer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import sys
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from keras_digits.core import artifacts
from keras_digits.core.cli import Parser, UserError, positive_float, run_cli
from keras_digits.core.contract import (
    DATASET_KEY,
    INSIDE_KEY,
    PREPROCESSING,
    SEGMENTATION,
    UNSURE,
)
from keras_digits.core.names import model_rank
from keras_digits.reading.predict import auto_check_partner
from keras_digits.serving import api

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = Path(__file__).resolve().parent / "web"
ORT_PACKAGE = REPO_ROOT / "node_modules" / "onnxruntime-web"
PAGE_FILES = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js",
              "/preprocess.js": "preprocess.js", "/segment.js": "segment.js",
              "/explain.js": "explain.js",
              "/style.css": "style.css"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                 ".json": "application/json"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EXPORT_HINT = "run `python -m keras_digits.export all` and reload the page"
VERIFIER_ROUTE = "/verifier/one_digit.onnx"  # the one-digit verifier, when it was made
INSIDE_ROUTE = "/inside"  # each model's inside copy, where export made one


@dataclass
class ModelInfo:
    """One `.onnx` file as the page's model picker lists it."""

    name: str  # file name without .onnx: "cnn", "cnn.int8"
    file: str
    dataset: str | None
    classes: list[str]
    test_accuracy: float | None
    error: str | None
    # The file whose opinion joins the unsure flag, as `predict --check auto` reads it (the page
    # and /api/predict ask it); None where that model is not here or reads other classes.
    check: str | None = None
    # Where the page fetches the model's "inside" copy (deploy/inside.py), when export made one,
    # and the hidden layers it outputs (contract.INSIDE_KEY).
    inside: str | None = None
    inside_layers: list[dict] | None = None


def find_ort(package: Path | None = None) -> tuple[Path, str]:
    """The onnxruntime-web dist folder and its version; a clear error when npm has not run.

    By default the checkout's node_modules, else the current folder's (an installed package).
    """
    if package is None:
        here = Path("node_modules") / "onnxruntime-web"
        package = ORT_PACKAGE if ORT_PACKAGE.is_dir() or not here.is_dir() else here
    manifest = package / "package.json"
    dist = package / "dist"
    if not manifest.is_file() or not (dist / "ort.wasm.min.mjs").is_file():
        raise UserError(f"onnxruntime-web is not installed in {package.parent}; run `npm ci` in "
                        f"{REPO_ROOT} (bash setup.sh does it)")
    return dist, json.loads(manifest.read_text())["version"]


def _accuracies(folder: Path) -> dict[str, float]:
    """Test accuracy per exported file, from export's parity.json when it is there and sane."""
    found = {}
    for model, entry in artifacts.read_parity(folder)["models"].items():
        for kind, name in (("onnx", model), ("int8", f"{model}.int8")):
            # An odd entry: the picker just shows no accuracy for it.
            with contextlib.suppress(KeyError, TypeError, ValueError):
                found[name] = float(entry[kind]["accuracy"])
    return found


def describe(path: Path, accuracy: float | None = None) -> ModelInfo:
    """Load `path` with onnxruntime to check it fits the page; the error says what to do."""
    from keras_digits.reading.reader import OnnxClassifier

    name = path.name.removesuffix(".onnx")
    try:
        classifier = OnnxClassifier(path)
    except UserError as exc:
        return ModelInfo(name, path.name, None, [], None, str(exc))
    metadata = classifier.session.get_modelmeta().custom_metadata_map
    return ModelInfo(name, path.name, metadata.get(DATASET_KEY),
                     list(classifier.classes), accuracy, None)


def catalogue(default: Path) -> list[ModelInfo]:
    """The default model first, then every other `.onnx` beside it, simplest model first;
    each int8 file right after its float model."""
    default_base = default.name.removesuffix(".onnx").partition(".")[0]

    def key(path: Path) -> tuple:
        base, _, variant = path.name.removesuffix(".onnx").partition(".")
        return (path != default and base != default_base, model_rank(base), base,
                path != default, variant)

    accuracies = _accuracies(default.parent)
    files = sorted({default, *default.parent.glob("*.onnx")}, key=key)
    models = [describe(f, accuracies.get(f.name.removesuffix(".onnx"))) for f in files]
    for info, path in zip(models, files, strict=True):
        inside = artifacts.inside_path(path)
        if not info.error and inside.is_file():
            info.inside_layers = inside_layers(inside)
            info.inside = f"{INSIDE_ROUTE}/{info.file}" if info.inside_layers is not None else None
    return models


def inside_layers(path: Path) -> list[dict] | None:
    """The hidden layers an inside file outputs; None (with a warning) if it cannot be read."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return json.loads(session.get_modelmeta().custom_metadata_map[INSIDE_KEY])
    except Exception as exc:  # noqa: BLE001 (any damage: the page goes on without it)
        print(f"warning: {path} is not a usable inside file ({exc}); run `python -m "
              "keras_digits.export` again to see feature maps on the page", file=sys.stderr)
        return None


def pair_up_checks(models: list[ModelInfo]) -> None:
    """Give each usable model the check model predict would ask (`auto_check_partner`), when
    that one is listed, usable and reads the same classes."""
    usable = {m.file: m for m in models if not m.error}
    for info in usable.values():
        partner = usable.get(f"{auto_check_partner(info.name)}.onnx")
        if partner is not None and partner.classes == info.classes:
            info.check = partner.file


class PageHandler(BaseHTTPRequestHandler):
    """Serves the page, onnxruntime-web's files and the listed models; nothing else."""

    server_version = "keras-digits"
    timeout = api.REQUEST_SECONDS  # on the socket: a client that stalls is cut off
    ort_dir: Path | None  # None: onnxruntime-web is missing, only the API answers
    config: dict
    model_paths: dict[str, Path]
    verifier_path: Path | None  # the one-digit verifier number mode cuts with, if made
    predictor: api.Predictor
    quiet = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._respond(send_body=True)

    def do_POST(self) -> None:  # noqa: N802
        url = urlsplit(self.path)
        if url.path != "/api/predict":
            return self._send_json(HTTPStatus.NOT_FOUND, {
                "error": f"nothing to POST to at {url.path}; use /api/predict"}, True)
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True  # the body's end is unknown: no reuse
            return self._send_json(HTTPStatus.LENGTH_REQUIRED, {
                "error": "send the image with a Content-Length header"}, True)
        size = int(length)
        if size > api.MAX_BYTES:
            self.close_connection = True  # the body is left unread
            return self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {
                "error": f"the upload is {size:,} bytes; the limit is "
                         f"{api.MAX_BYTES:,}: scale the image down"}, True)
        try:
            body = self.rfile.read(size)
        except TimeoutError:
            self.close_connection = True
            return self._send_json(HTTPStatus.REQUEST_TIMEOUT, {
                "error": f"the upload stalled for {self.timeout:g} s; send it again"},
                True)
        if len(body) < size:
            self.close_connection = True
            return self._send_json(HTTPStatus.BAD_REQUEST, {
                "error": "the body ended before Content-Length bytes; send it again"}, True)
        status, payload = self.predictor.answer(parse_qs(url.query), body,
                                                self.headers.get("Content-Type", ""))
        self._send_json(status, payload, True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._respond(send_body=False)

    def _respond(self, send_body: bool) -> None:
        route = unquote(urlsplit(self.path).path)
        if route in PAGE_FILES and self.ort_dir is None:
            return self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {
                "error": f"the page is off: {self.config['page_off']}"}, send_body)
        if route in PAGE_FILES:
            return self._send_file(WEB_DIR / PAGE_FILES[route], send_body)
        if route == "/api/config":
            return self._send_json(HTTPStatus.OK, self.config, send_body)
        folder, _, name = route.lstrip("/").partition("/")
        if (folder == "ort" and self.ort_dir and SAFE_NAME.match(name)
                and (self.ort_dir / name).is_file()):
            return self._send_file(self.ort_dir / name, send_body)
        if route == VERIFIER_ROUTE and self.verifier_path is not None:
            return self._send_file(self.verifier_path, send_body)
        if folder == INSIDE_ROUTE.lstrip("/") and name in self.model_paths:
            inside = artifacts.inside_path(self.model_paths[name])
            if inside.is_file():
                return self._send_file(inside, send_body)
        if folder == "models" and name in self.model_paths:
            path = self.model_paths[name]
            if not path.is_file():
                return self._send_json(HTTPStatus.NOT_FOUND, {
                    "error": f"model file {path} is missing; {EXPORT_HINT}"}, send_body)
            return self._send_file(path, send_body)
        self._send_json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {route}"}, send_body)

    def _headers(self, status: HTTPStatus, content_type: str, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")  # a re-export must show on reload
        self.end_headers()

    def _send_json(self, status: HTTPStatus, payload: dict, send_body: bool) -> None:
        body = json.dumps(payload).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client left
            self._headers(status, CONTENT_TYPES[".json"], len(body))
            if send_body:
                self.wfile.write(body)

    def _send_file(self, path: Path, send_body: bool) -> None:
        try:
            handle = path.open("rb")
        except OSError:
            return self._send_json(HTTPStatus.NOT_FOUND, {
                "error": f"{path.name} could not be read; {EXPORT_HINT}"}, send_body)
        with handle:
            size = os.fstat(handle.fileno()).st_size
            self._headers(HTTPStatus.OK, CONTENT_TYPES.get(path.suffix,
                                                           "application/octet-stream"), size)
            if send_body:
                # The browser may navigate away mid-download; that is not an error.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    shutil.copyfileobj(handle, self.wfile)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        if not self.quiet:
            super().log_message(format, *args)


class Server(ThreadingHTTPServer):
    """A thread per connection, and a listen queue that holds a burst of clients (the
    standard library's 5 resets the rest of 100 clients arriving at once)."""

    request_queue_size = 128


def make_server(model: Path, host: str, port: int, verbose: bool = False,
                timeout: float = api.REQUEST_SECONDS) -> ThreadingHTTPServer:
    """Check everything the page needs, then bind; every failure is one actionable line."""
    try:
        ort_dir, ort_version, page_off = *find_ort(), None
    except UserError as exc:  # an installed package without npm: the API still works
        ort_dir, ort_version, page_off = None, None, str(exc)
        print(f"warning: {exc}; until then only POST /api/predict answers", file=sys.stderr)
    models = catalogue(model)
    if models[0].error:  # missing, corrupt or wrong shape: OnnxClassifier's message says which
        raise UserError(models[0].error)
    for info in models[1:]:
        if info.error:
            print(f"warning: {info.file} is listed as unusable: {info.error}", file=sys.stderr)
    usable = {m.file: model.parent / m.file for m in models if not m.error}
    pair_up_checks(models)
    verifier = artifacts.verifier_path(model.parent)
    verifier = verifier if verifier.is_file() else None
    handler = type("Handler", (PageHandler,), {
        "ort_dir": ort_dir, "quiet": not verbose, "timeout": timeout,
        "verifier_path": verifier,
        "model_paths": {m.file: model.parent / m.file for m in models},
        "predictor": api.Predictor(usable, models[0].file,
                                   {m.file: m.check for m in models if not m.error}),
        "config": {"default": models[0].file, "onnxruntime_web": ort_version,
                   "models": [asdict(m) for m in models], "preprocessing": PREPROCESSING,
                   "segmentation": SEGMENTATION, "unsure": UNSURE, "page_off": page_off,
                   "verifier": VERIFIER_ROUTE if verifier else None},
    })
    try:
        return Server((host, port), handler)
    except socket.gaierror:
        raise UserError(f"--host {host} is not an address of this machine; "
                        "pass --host 127.0.0.1") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use; stop the other server or pass "
                            "--port N (0 picks a free one)") from None
        if exc.errno == errno.EACCES:
            raise UserError(f"no permission to listen on port {port}; pass a port above 1023")\
                from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            raise UserError(f"cannot listen on {host} ({exc.strerror}); pass --host 127.0.0.1")\
                from None
        raise


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.serve",
                    description="Serve the draw-a-digit page (onnxruntime-web in the browser) "
                                "and POST /api/predict for other programs.")
    parser.add_argument("--model", default="export/mnist/cnn.onnx",
                        help="the model shown first; every .onnx beside it is in the picker")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--timeout", type=positive_float, default=api.REQUEST_SECONDS,
                        metavar="SECONDS",
                        help="how long one read of a request may stall before the client is "
                             f"cut off (default {api.REQUEST_SECONDS:g})")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a port number; use 1-65535 or 0")
    server = make_server(Path(args.model), args.host, args.port, args.verbose, args.timeout)
    host, port = server.server_address[:2]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: other machines can load the page and "
              "POST to /api/predict", file=sys.stderr)
    where = f"http://{'localhost' if host == '127.0.0.1' else host}:{port}"
    print(f"serving the draw-a-digit page at {where}/ and predictions at POST {where}/api/predict"
          "  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
