"""How often predict takes the paper for ink: tight crops whose strokes line the frame.

    .venv/bin/python -m studies.polarity_study [--count 3000]

`find_ink.ink_map` must first decide which tone is paper. The border is mostly paper, unless
the image is cropped tightly to the ink: Semeion's scanner stretched each digit to fill its
16x16 box, so the strokes of a bold 0 or 8 can cover more of the border than the paper does.
This counts the images whose polarity comes out wrong, for the rule predict uses
(`find_ink._paper_is_light`) and for the border's majority alone (more than half of it
light: the median rule before commit b9f6e7c, exactly so on black-and-white images), on every
Semeion digit, on MNIST test digits cropped to their ink (a threshold of 0.1) and on the same
digits in Semeion's format (studies/format_study.py: 16x16, stretched to fill the box,
thresholded), each as dark ink on light paper and as light ink on dark. No model needed.
"""

from __future__ import annotations

import argparse

import numpy as np

from keras_digits.data import datasets, folders
from keras_digits.imaging import (
    find_ink,
)
from studies.format_study import scanned


def wrong_polarity(inks: list[np.ndarray]) -> dict[str, tuple[int, int]]:
    """For images of ink in [0, 1] (1 = full stroke): how many the border's majority and
    predict's rule read inverted, drawn dark on light and light on dark."""
    counts = {}
    for drawn, paper_light in (("dark on light", True), ("light on dark", False)):
        majority = rule = 0
        for ink in inks:
            gray = 1.0 - ink if paper_light else ink
            share = float(find_ink.border_tones(gray)[1].mean())
            majority += (share > 0.5) != paper_light
            rule += find_ink._paper_is_light(gray, share) != paper_light
        counts[drawn] = (majority, rule)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="MNIST test digits to crop")
    args = parser.parse_args()
    masks, _ = folders.load_semeion()
    mnist = datasets.load_arrays("mnist").test_images[:args.count, ..., 0].astype(np.float32) / 255
    crops = []
    for image in mnist:
        rows, cols = np.flatnonzero(image.max(1) > 0.1), np.flatnonzero(image.max(0) > 0.1)
        crops.append(image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    boxed = [1.0 - scanned((image * 255).astype(np.uint8), stretch=True) / 255.0
             for image in mnist]
    sets = {f"Semeion ({len(masks)})": [m.astype(np.float32) for m in masks],
            f"MNIST test cropped to the ink ({len(crops)})": crops,
            f"MNIST test stretched into 16x16 ({len(boxed)})": boxed}
    print("| images | drawn | border majority | predict's rule |\n|---|---|---:|---:|")
    for name, inks in sets.items():
        for drawn, (majority, rule) in wrong_polarity(inks).items():
            print(f"| {name} | {drawn} | {majority} | {rule} |")


if __name__ == "__main__":
    main()
