"""Load test of `POST /api/predict`: REQUESTS requests from CLIENTS concurrent clients.

Starts `python -m keras_digits.serve --port 0 --model MODEL` itself, sends MNIST test digits
as PNG files (written as people write: dark ink on white), and checks every answer against
`DigitReader` run in this process on the same bytes. Prints one JSON line: answered, failed and
wrong counts, throughput, p50/p99 latency under load, and the p50 of one client sending one
request at a time (batch 1, nothing queued), with predict's default check model and with
`?check=none` (the model alone).

    .venv/bin/python scripts/http_load.py --requests 200 --clients 8 --model export/mnist/cnn.onnx
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keras_digits.data import datasets  # noqa: E402
from keras_digits.reading.reader import DigitReader  # noqa: E402


@contextmanager
def running_server(model: str):
    """The serve command in the background on a free port; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "keras_digits.serve", "--port", "0",
                                "--model", model], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    try:
        line = process.stdout.readline()
        if "http://" not in line:
            raise SystemExit(f"serve did not start: {line}{process.stderr.read()}")
        yield "http://" + line.split("http://", 1)[1].split()[0].rstrip("/")
    finally:
        process.terminate()
        process.wait(timeout=10)


def digit_pngs(count: int) -> list[bytes]:
    """`count` MNIST test digits as PNG files, dark ink on white."""
    images = datasets.load_arrays("mnist").test_images[:count, :, :, 0]
    files = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(255 - image).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    return files


def post(url: str, body: bytes, query: str = "", timeout: float = 60) -> tuple[int, dict, float]:
    """Status, JSON answer and seconds taken for one upload."""
    request = urllib.request.Request(url + "/api/predict" + query, data=body,
                                     headers={"Content-Type": "image/png"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, payload = error.code, json.loads(error.read() or b"{}")
    return status, payload, time.perf_counter() - start


def load(url: str, bodies: list[bytes], expected: list[str], requests: int,
         clients: int) -> dict:
    """Send `requests` uploads (cycling through `bodies`) from `clients` threads at once."""
    def one(i: int) -> tuple[bool, bool, float]:
        try:
            status, payload, seconds = post(url, bodies[i % len(bodies)])
        except OSError:  # refused, reset or timed out: a lost request
            return False, False, 0.0
        return status == 200, payload.get("number") == expected[i % len(bodies)], seconds

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    latencies = [seconds for answered, _, seconds in results if answered]
    return {"requests": requests, "clients": clients,
            "answered": sum(answered for answered, _, _ in results),
            "failed": sum(not answered for answered, _, _ in results),
            "wrong": sum(answered and not right for answered, right, _ in results),
            "requests_per_s": round(requests / wall, 1),
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 2) if latencies else None,
            "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 2) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--model", default="export/mnist/cnn.onnx")
    args = parser.parse_args()

    bodies = digit_pngs(100)
    reader = DigitReader(args.model)  # the endpoint's answers must equal the API's
    expected = [reader.read_number(body).text for body in bodies]
    with running_server(args.model) as url:
        post(url, bodies[0])  # the first request loads the model
        row = load(url, bodies, expected, args.requests, args.clients)
        for query in ("", "?check=none"):  # with predict's check model, and the model alone
            post(url, bodies[0], query)
            seconds = [post(url, body, query)[2] for body in bodies]
            row[f"sequential_p50_ms{query.replace('?', '_')}"] = round(
                1000 * float(np.median(seconds)), 2)
    row["model"] = args.model
    print(json.dumps(row))


if __name__ == "__main__":
    main()
