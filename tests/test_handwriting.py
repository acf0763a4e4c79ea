"""Handwriting fonts: the manifest and its licences, the rule that leaves out faces that do not
draw written digits, the held-out split, the pen's variation and the cache of written digits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from drawings import FONT_DIR, FONTS

from keras_digits.core import cache
from keras_digits.core.cli import UserError
from keras_digits.data import handwriting

REPO = Path(__file__).resolve().parent.parent
NPM = handwriting.NODE_MODULES / "@fontsource"


def _installed(family: str) -> Path:
    folder = NPM / family
    if not folder.is_dir():
        pytest.skip(f"@fontsource/{family} is not installed (npm ci)")
    return folder


def test_the_manifest_matches_package_json_and_each_packages_licence():
    fonts = handwriting.manifest()
    dependencies = json.loads((REPO / "package.json").read_text())["dependencies"]
    assert {f"@fontsource/{family}" for family in fonts["npm"]} == {
        name for name in dependencies if name.startswith("@fontsource/")}
    for family, licence in fonts["npm"].items():
        package = NPM / family / "package.json"
        if package.is_file():
            assert json.loads(package.read_text())["license"] == licence, family
    assert all(entry["licence"] and entry["files"] for entry in fonts["debian"].values())


def test_families_split_by_a_fixed_rule_and_the_test_drawings_fonts_stay_out():
    families = list(handwriting.manifest()["npm"]) + list(handwriting.manifest()["debian"])
    held = [f for f in families if handwriting.held_out(f)]
    assert 0.1 < len(held) / len(families) < 0.3
    assert held == [f for f in families if handwriting.held_out(f)]  # the same every time
    faces, _ = handwriting.find_faces()
    assert not {face.path.name for face in faces} & set(FONTS)  # tests/drawings.py's fonts


def test_holes_count_the_loops_of_a_glyph():
    bar = np.zeros((40, 40), bool)
    bar[5:35, 18:22] = True
    ring = np.zeros((40, 40), bool)
    ring[5:35, 10:30] = True
    ring[10:30, 15:25] = False  # an outline of a bar: what a hollow font draws for a 1
    assert handwriting._holes(bar) == 0 and handwriting._holes(ring) == 1


def test_the_rule_keeps_written_digits_and_leaves_out_missing_glyphs_and_broken_files(
        tmp_path):
    caveat = _installed("caveat")
    regular = caveat / "files" / "caveat-latin-400-normal.woff2"
    assert handwriting.not_digit_like(handwriting.Face("caveat", regular, "npm", "OFL")) is None
    # The latin-ext subset of the same font has no digits at all.
    ext = caveat / "files" / "caveat-latin-ext-400-normal.woff2"
    reason = handwriting.not_digit_like(handwriting.Face("caveat", ext, "npm", "OFL"))
    assert reason == "has no glyph for 0"
    broken = tmp_path / "broken.woff2"
    broken.write_bytes(b"not a font")
    assert handwriting.not_digit_like(
        handwriting.Face("x", broken, "npm", "OFL")).startswith("cannot be loaded")
    printed = FONT_DIR / "DejaVuSans.ttf"
    if printed.is_file():  # printed digits are digits too: the rule is about glyphs, not style
        assert handwriting.not_digit_like(handwriting.Face("d", printed, "-", "-")) is None


def test_missing_packages_and_bad_faces_are_named_and_the_rest_go_on(tmp_path, capsys):
    _installed("caveat")
    only = tmp_path / "node_modules" / "@fontsource"
    only.mkdir(parents=True)
    shutil.copytree(NPM / "caveat", only / "caveat")
    faces, missing = handwriting.find_faces(tmp_path / "node_modules")
    assert {face.family for face in faces if face.package.startswith("@")} == {"caveat"}
    assert "@fontsource/kalam" in missing
    broken = tmp_path / "broken.woff2"
    broken.write_bytes(b"not a font")
    kept = handwriting.usable_faces(
        "all", found=([*faces, handwriting.Face("bad", broken, "npm", "OFL")], missing))
    assert broken not in {face.path for face in kept} and kept
    notes = capsys.readouterr().out.strip().splitlines()
    assert len(notes) == 2 and "not installed" in notes[0] and "npm ci" in notes[0]
    assert "broken.woff2 cannot be loaded" in notes[1]
    with pytest.raises(UserError, match="npm ci"):
        handwriting.usable_faces("all", quiet=True, found=([], missing))


def test_written_digits_vary_are_read_by_predicts_path_and_cached(tmp_path, monkeypatch):
    caveat = _installed("caveat")
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    face = handwriting.Face("caveat", caveat / "files" / "caveat-latin-400-normal.woff2",
                            "npm", "OFL-1.1")
    scans = [handwriting.write(face, 9, np.random.default_rng(i)) for i in range(3)]
    assert all(s.shape == (handwriting.SCAN, handwriting.SCAN) and s.dtype == np.uint8
               for s in scans)
    assert scans[0].min() < 120 < np.median(scans[0])  # dark ink on light paper
    assert not np.array_equal(scans[0], scans[1])  # each writing its own pen
    images, labels = handwriting.written_digits(per_digit=2, workers=1, faces=[face])
    assert images.shape == (20, 28, 28, 1) and images.dtype == np.uint8
    assert sorted(labels.tolist()) == sorted(list(range(10)) * 2)
    assert images.reshape(20, -1).max(axis=1).min() > 200  # every digit found and inked
    [cached] = (tmp_path / "cache").glob("handwriting-*.npy")
    again, _ = handwriting.written_digits(per_digit=2, workers=1, faces=[face])
    assert np.array_equal(images, again)
    cached.write_bytes(b"damaged")  # a damaged cache is rebuilt, never half-read
    rebuilt, _ = handwriting.written_digits(per_digit=2, workers=1, faces=[face])
    assert np.array_equal(images, rebuilt) and np.load(cached).shape == images.shape


def test_the_held_out_fonts_become_a_labelled_folder_for_evaluate(tmp_path, monkeypatch):
    """`evaluate held-out-fonts` scores scans of the held-out families, one file per writing."""
    from keras_digits.analysis import evaluate
    from keras_digits.data import folders

    families = {face.family for face in handwriting.usable_faces("held_out", quiet=True)}
    write_folder = handwriting.write_folder
    monkeypatch.setattr(evaluate, "FONTS_CACHE", tmp_path / "fonts")
    monkeypatch.setattr(handwriting, "write_folder",
                        lambda destination: write_folder(destination, per_digit=1))
    folder, name = evaluate.resolve_folder("held-out-fonts")
    assert name == "held-out-fonts" and folder == tmp_path / "fonts"
    samples = folders.read_labelled_folder(folder, tuple(str(d) for d in range(10)))
    assert len(samples) == 10 * len(families)
    assert {s.path.name.rsplit("-", 2)[0] for s in samples} == families
    assert sorted(s.label for s in samples) == sorted(list(range(10)) * len(families))
