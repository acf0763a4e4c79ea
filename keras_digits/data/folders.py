"""Labelled image folders, the input of `evaluate`, and the Semeion handwriting set as one.

A labelled folder is either a `labels.csv` with `file,label` rows (paths relative to the
folder) or one sub-folder per class named by the class (`3/`, or `Trouser/` for Fashion-MNIST).
Semeion (1,593 digits from about 80 writers, scanned at 16x16 and thresholded; vendored in
`data/semeion/`) is written out as such a folder of PNGs, so it reaches the models through exactly
the path a user's own scans take. numpy and Pillow only, like predict.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_digits.core import atomic
from keras_digits.core.cli import UserError

SEMEION_FILE = Path(__file__).resolve().parents[2] / "data" / "semeion" / "semeion.data.gz"
# An installed package has no data/ beside it: it reads the one in the current folder.
SEMEION_HERE = Path("data") / "semeion" / "semeion.data.gz"
SEMEION_SHA256 = "7c74222dd9beb6a5b30c7b41104e7486cabc274e013689db1cd62b1ca56d0dd4"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Sample:
    """One labelled image: its path and the index of its class."""

    path: Path
    label: int


def load_semeion(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Semeion as (N, 16, 16) uint8 ink masks (1 = ink) and (N,) int64 labels, checksum verified."""
    if path is None:
        path = SEMEION_HERE if SEMEION_HERE.is_file() and not SEMEION_FILE.is_file() else (
            SEMEION_FILE)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {path} ({exc}); restore it with "
                        "`git checkout -- data/semeion`") from None
    if hashlib.sha256(raw).hexdigest() != SEMEION_SHA256:
        raise UserError(f"{path} is not the published Semeion file (checksum mismatch); restore "
                        "it with `git checkout -- data/semeion`")
    rows = np.array([line.split() for line in raw.decode("ascii").splitlines() if line.strip()],
                    dtype=np.float32)
    images = rows[:, :256].reshape(-1, 16, 16).round().astype(np.uint8)
    labels = rows[:, 256:266].argmax(axis=1).astype(np.int64)
    return images, labels


def semeion_digits() -> tuple[np.ndarray, np.ndarray]:
    """The Semeion digits as the predict path prepares them, (N, 28, 28, 1), and their labels."""
    from keras_digits.imaging import normalize

    masks, labels = load_semeion()
    return np.stack([normalize.load_digit((1.0 - m.astype(np.float32)) * 255.0)
                     for m in masks]), labels


def write_semeion_folder(destination: Path) -> Path:
    """Semeion as a labelled folder of 16x16 PNGs, black ink on white as scanned (once)."""
    from PIL import Image

    if (destination / "labels.csv").is_file():
        return destination
    images, labels = load_semeion()
    atomic.require_writable(destination.parent)
    with atomic.atomic_path(destination) as staging:  # whole or absent
        staging.mkdir()
        rows = []
        for index, (mask, label) in enumerate(zip(images, labels, strict=True)):
            name = f"{index:04d}.png"
            Image.fromarray(((1 - mask) * 255).astype(np.uint8), "L").save(staging / name)
            rows.append((name, int(label)))
        with (staging / "labels.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([("file", "label"), *rows])
    return destination


def _label_index(text: str, classes: tuple[str, ...], where: str) -> int:
    text = text.strip()
    if text in classes:
        return classes.index(text)
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    raise UserError(f"{where}: label {text!r} is not one of the classes "
                    f"({', '.join(classes)}); fix the label")


def read_labelled_folder(folder: Path, classes: tuple[str, ...]) -> list[Sample]:
    """The images of a labelled folder with their class indices, in a stable order.

    Raises UserError for a folder that is missing or holds no labelled image, a labels.csv
    without `file,label` columns, a row naming a missing file or an unknown label.
    """
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass a folder with labels.csv or one "
                        "sub-folder per class")
    labels_csv = folder / "labels.csv"
    samples: list[Sample] = []
    if labels_csv.is_file():
        with labels_csv.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
                raise UserError(f"{labels_csv} needs a header row `file,label`; add it")
            for line, row in enumerate(reader, start=2):
                where = f"{labels_csv} line {line}"
                name = (row["file"] or "").strip()
                path = folder / name
                if not name or not path.is_file():
                    raise UserError(f"{where}: {name!r} is not a file in {folder}; "
                                    "fix the name or remove the row")
                samples.append(Sample(path, _label_index(row["label"] or "", classes, where)))
    else:
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if sub.name not in classes:
                continue
            samples += [Sample(p, classes.index(sub.name)) for p in sorted(sub.iterdir())
                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not samples:
        raise UserError(f"{folder} holds no labelled images: add a labels.csv (`file,label`) "
                        f"or sub-folders named by class ({', '.join(classes[:3])}, ...)")
    return samples
