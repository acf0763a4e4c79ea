"""How soon after a stroke ends does the draw-a-digit page show its explanation?

Serves the exported models (`keras_digits.serve`), opens the page in headless Chromium, draws
digits with the mouse and reads `window.digitApp.timing`: milliseconds from the end of the last
stroke until the answer, the first evidence map (large squares), the feature maps of the
model's inside file, every model's answer, and the full evidence map (3x3 squares, as `explain`
draws it) were on the page. Prints one JSON line per model with the median and the largest of each.
`--screenshot FILE` also saves the page as it shows the first model's 7 (the README's picture).

    .venv/bin/python -m studies.page_latency [--model cnn alexnet] [--repeats 5]
        [--screenshot docs/draw-a-digit.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DRAWINGS = {  # pad coordinates, strokes of points
    "7": [[(70, 60), (210, 60)], [(210, 60), (120, 230)]],
    "1": [[(150, 40), (140, 240)]],
    "0": [[(140 + 60 * np.sin(a), 140 - 90 * np.cos(a)) for a in np.linspace(0, 2 * np.pi, 40)]],
}
PARTS = ("answer", "evidence", "inside", "models", "full")


def draw(page, strokes) -> None:
    """Draw strokes with the mouse, each a list of points in the pad's coordinates."""
    box = page.locator("#pad").bounding_box()
    for points in strokes:
        page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=3)
        page.mouse.up()


def measure(url: str, model: str, repeats: int, browser, screenshot: str | None = None) -> dict:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(url + "/")
    page.wait_for_function("document.body.dataset.status !== 'loading'", timeout=120_000)
    page.select_option("#model-picker", f"{model}.onnx")
    page.wait_for_function("document.body.dataset.status === 'ready'", timeout=120_000)
    times: dict[str, list[float]] = {part: [] for part in PARTS}
    for k in range(repeats + 1):  # the first round loads the other models: not counted
        for strokes in DRAWINGS.values():
            page.click("#clear")
            page.evaluate("window.digitApp.whenIdle()")
            draw(page, strokes)
            page.wait_for_function("window.digitApp.explanation && "
                                   "window.digitApp.explanation.full !== null", timeout=120_000)
            timing = page.evaluate("window.digitApp.timing")
            if k:
                for part in PARTS:
                    times[part].append(timing[part])
    if screenshot:
        page.click("#clear")
        page.evaluate("window.digitApp.whenIdle()")
        draw(page, DRAWINGS["7"])
        page.wait_for_function("window.digitApp.explanation && "
                               "window.digitApp.explanation.full !== null", timeout=120_000)
        page.screenshot(path=screenshot, full_page=True)
    page.close()
    return {"model": model, "drawings": repeats * len(DRAWINGS),
            **{f"{part}_ms_median": round(statistics.median(v), 1) for part, v in times.items()},
            **{f"{part}_ms_max": round(max(v), 1) for part, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["cnn", "alexnet", "mlp"])
    parser.add_argument("--export-dir", default="export/mnist")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--screenshot", help="save the page showing the first model's 7 here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen([sys.executable, "-m", "keras_digits.serve", "--port", "0",
                               "--model", str(Path(args.export_dir) / f"{args.model[0]}.onnx")],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        url = "http://" + line.split("http://", 1)[1].split()[0].rstrip("/")
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=CHROMIUM_ARGS)
            for i, model in enumerate(args.model):
                row = measure(url, model, args.repeats, browser,
                              args.screenshot if i == 0 else None)
                row |= {"commit": commit, "measured_at": time.strftime("%Y-%m-%d")}
                print(json.dumps(row), flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
