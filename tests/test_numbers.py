"""Numbers: the ink of a written number is split into its digits left to right (strokes, broken
strokes, specks, touching pairs), predict prints the number, and odd images get a clear answer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque

import numpy as np
import pytest
from conftest import REPO, last_error_line, run_module
from PIL import Image, ImageDraw, ImageFilter

from keras_digits.data.compose import compose
from keras_digits.imaging import decode, find_ink, normalize, raster, segment, strokes
from keras_digits.reading.reader import DigitReader


def _narrow_digits(mnist, count: int, seed: int) -> list[int]:
    """Test digits narrower than a possible touching pair, so no cut is ever tried."""
    rng = np.random.default_rng(seed)
    chosen = []
    while len(chosen) < count:
        i = int(rng.integers(len(mnist.test_images)))
        cols = np.flatnonzero(mnist.test_images[i, ..., 0].max(axis=0) > 0)
        rows = np.flatnonzero(mnist.test_images[i, ..., 0].max(axis=1) > 0)
        if cols[-1] - cols[0] < 0.75 * (rows[-1] - rows[0]):
            chosen.append(i)
    return chosen


def _ink(image: np.ndarray) -> np.ndarray:
    return find_ink.ink_map(decode.read_gray(image))


def _flood_fill_count(mask: np.ndarray) -> int:
    seen, count = np.zeros_like(mask), 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        count += 1
        queue = deque([start])
        seen[start] = True
        while queue:
            y, x = queue.popleft()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    v, u = y + dy, x + dx
                    if 0 <= v < mask.shape[0] and 0 <= u < mask.shape[1] and mask[v, u] \
                            and not seen[v, u]:
                        seen[v, u] = True
                        queue.append((v, u))
    return count


def test_stroke_labels_match_a_flood_fill():
    rng = np.random.default_rng(0)
    for density in (0.2, 0.45, 0.6):
        mask = rng.random((30, 41)) < density
        labels, count = raster.label_components(mask)
        assert count == _flood_fill_count(mask)
        assert ((labels > 0) == mask).all()
        for label in range(1, count + 1):  # each label is one connected piece
            assert _flood_fill_count(labels == label) == 1


@pytest.mark.parametrize("layout", ["separated", "broken"])
def test_digits_are_found_left_to_right(mnist, layout):
    rng = np.random.default_rng(3)
    for trial in range(6):
        chosen = _narrow_digits(mnist, 4, seed=trial)
        image = compose([mnist.test_images[i, ..., 0] for i in chosen], layout, rng)
        pieces = segment.split_number(_ink(image))
        assert len(pieces) == 4, (layout, trial, [p.box for p in pieces])
        lefts = [p.box[0] for p in pieces]
        assert lefts == sorted(lefts)


def test_specks_are_not_digits(mnist):
    chosen = _narrow_digits(mnist, 3, seed=7)
    image = compose([mnist.test_images[i, ..., 0] for i in chosen], "separated",
                    np.random.default_rng(0))
    for y, x in ((3, 3), (image.shape[0] - 4, image.shape[1] // 2), (4, image.shape[1] - 5)):
        image[y, x] = 0.0  # single dark dots: dust on the paper
    assert len(segment.split_number(_ink(image))) == 3


def _touching_pair(mnist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 0 and a 4 pushed together until they touch, and which ink belongs to which."""
    zero = mnist.test_images[np.flatnonzero(mnist.test_labels == 0)[0], ..., 0]
    four = mnist.test_images[np.flatnonzero(mnist.test_labels == 4)[0], ..., 0]
    canvas = np.zeros((44, 80), np.float32)
    canvas[8:36, 8:36] = zero
    shift = 36
    while shift > 9:  # slide the 4 left until its strokes meet the 0's
        trial = np.zeros_like(canvas)
        trial[8:36, shift:shift + 28] = four
        grown = np.asarray(Image.fromarray((canvas > 128).astype(np.uint8) * 255).filter(
            ImageFilter.MaxFilter(3))) > 0
        if (grown & (trial > 128)).any():
            break
        shift -= 1
    right = np.zeros_like(canvas)
    right[8:36, shift:shift + 28] = four
    return 255.0 - np.maximum(canvas, right), canvas > 64, right > 64


def test_a_touching_pair_is_cut_where_the_reader_is_surer(mnist):
    image, left_truth, right_truth = _touching_pair(mnist)
    ink = _ink(image)
    margin = find_ink.paper_margin(image.shape)
    truth = [np.pad(t, margin) for t in (left_truth, right_truth)]

    def reader(inks):  # a stand-in, sure only of pieces no wider than one digit
        boxes = [(np.flatnonzero((p > 0.5).any(0)), np.flatnonzero((p > 0.5).any(1)))
                 for p in inks]
        return [0.99 if cols[-1] - cols[0] < 0.9 * (rows[-1] - rows[0]) else 0.3
                for cols, rows in boxes]

    pieces = segment.split_number(ink, reader)
    assert len(pieces) == 2
    for piece, t in zip(pieces, truth, strict=True):
        left, top = (max(0, v - segment.RIM) for v in piece.box[:2])
        mask = np.zeros_like(t)
        mask[top:top + piece.ink.shape[0], left:left + piece.ink.shape[1]] = piece.ink > 0.5
        assert (mask & t).sum() > 0.9 * mask.sum()  # each piece is (mostly) one of the digits
    # A reader sure of the whole never cuts it.
    assert len(segment.split_number(ink, lambda inks: [0.99] * len(inks))) == 1


def _narrow_scores(inks):
    """A stand-in score: 0.99 for a piece narrower than half its height, 0.95 otherwise."""
    scores = []
    for ink in inks:
        rows, cols = np.flatnonzero((ink > 0.5).any(1)), np.flatnonzero((ink > 0.5).any(0))
        scores.append(0.99 if cols[-1] - cols[0] < 0.5 * (rows[-1] - rows[0]) else 0.95)
    return scores


def test_a_verified_reader_cuts_a_narrow_pair_that_the_confidence_rule_keeps():
    """Two bars joined by a thin bridge (a "11" written close): too narrow for the plain rule
    to try a cut, and read surely as one piece; with the verifier's score it is cut in two."""
    image = np.full((60, 48), 255.0, np.float32)
    image[10:50, 10:20] = 0.0
    image[10:50, 28:38] = 0.0
    image[29:31, 20:28] = 0.0  # the bridge
    ink = _ink(image)
    assert len(segment.split_number(ink, _narrow_scores)) == 1
    pieces = segment.split_number(ink, _narrow_scores, verified=True)
    assert len(pieces) == 2
    assert pieces[0].box[2] <= pieces[1].box[0] + 1  # left bar, then right bar
    # The whole scored 0.95 against the parts' 0.99 x 0.99: a close call, and both parts say so.
    assert [p.cut_doubt for p in pieces] == pytest.approx([0.95 / 0.99**2] * 2)
    # A score as sure of the whole as of any part keeps it whole, verified or not.
    assert len(segment.split_number(ink, lambda inks: [0.99] * len(inks), verified=True)) == 1


def test_a_clear_cut_is_not_doubted_and_whole_pieces_never_are(mnist):
    image = np.full((60, 48), 255.0, np.float32)
    image[10:50, 10:20] = image[10:50, 28:38] = image[29:31, 20:28] = 0.0  # "11", bridged

    def doubtful_whole(inks):  # the bridged whole reads unsurely, each bar surely
        return [0.05 if score == 0.95 else score for score in _narrow_scores(inks)]

    cut = segment.split_number(_ink(image), doubtful_whole, verified=True)
    assert len(cut) == 2 and [p.cut_doubt for p in cut] == pytest.approx([0.05 / 0.99**2] * 2)
    assert cut[0].cut_doubt < segment.CLOSE_CUT
    assert [p.cut_height for p in cut] == [1.0, 1.0]  # each bar as tall as the mark
    digits = [mnist.test_images[i, ..., 0] for i in _narrow_digits(mnist, 3, seed=5)]
    sure = segment.split_number(_ink(_side_by_side(digits, [6, 6])),
                                lambda inks: [0.99] * len(inks), verified=True)
    assert len(sure) == 3 and all(p.cut_doubt == 0.0 for p in sure)


def a_bar_bridged_to_a_short_ring() -> np.ndarray:
    """A tall bar joined by a bridge to a ring 0.6 of its height: cut (verified), the ring is
    much shorter than the mark it came from, as a loop cut off a slanted 8 is."""
    image = np.full((60, 56), 255.0, np.float32)
    image[10:50, 10:20] = image[26:50, 30:42] = image[40:42, 20:30] = 0.0
    image[30:46, 34:38] = 255.0
    return image


def test_a_piece_cut_from_a_mark_much_taller_than_itself_makes_the_number_unsure():
    def whole_unlikely(inks):  # the verifier all but rules out the whole; each part is sure
        return [0.05 if (ink > 0.5).any(axis=0).sum() >= 28 else 0.99 for ink in inks]

    pieces = segment.split_number(_ink(a_bar_bridged_to_a_short_ring()), whole_unlikely,
                                  verified=True)
    assert [p.cut_height for p in pieces] == pytest.approx([1.0, 0.6])
    assert pieces[1].cut_doubt < segment.CLOSE_CUT  # a clear cut by the scores alone
    assert DigitReader._piece_doubts(pieces) == [
        None, "cut from a mark much taller than itself: it may be part of one digit"]


def test_a_piece_that_may_not_be_one_digit_makes_the_number_unsure():
    """The reader's doubts about a piece of a number (reader._piece_doubts): a close-call cut,
    a piece much shorter than the mark it was cut from, or a wide piece the verifier all but
    rules out as one digit; none without cause."""
    ink = np.ones((4, 4), np.float32)
    square, narrow = (0, 0, 40, 40), (0, 0, 20, 40)
    pieces = [segment.Piece(square, ink), segment.Piece(square, ink, segment.CLOSE_CUT / 2),
              segment.Piece(square, ink, segment.CLOSE_CUT), segment.Piece(square, ink),
              segment.Piece(narrow, ink)]
    unlikely = segment.TWO_BELOW / 2
    doubts = DigitReader._piece_doubts(pieces, np.array([0.9, 0.9, 0.9, unlikely, unlikely]))
    assert doubts[0] is None and doubts[1] is None and doubts[4] is None  # narrow: one digit
    assert doubts[2] == "cut from one mark that reads nearly as well whole: it may be one digit"
    assert doubts[3] == "wide and not like one whole digit: it may be two"
    assert DigitReader._piece_doubts(pieces)[3] is None  # no verifier, no such doubt
    short = [segment.Piece(square, ink, 0.0, segment.SHORT_CUT / 2),
             segment.Piece(square, ink, 0.0, segment.SHORT_CUT)]
    assert DigitReader._piece_doubts(short) == [
        "cut from a mark much taller than itself: it may be part of one digit", None]


def faint_one_beside_a_zero() -> np.ndarray:
    """A thick 0, and a 1 so faint that its ink map is a column of speck-sized fragments."""
    image = np.full((60, 80), 255.0, np.float32)
    image[12:48, 10:34] = 0.0
    image[18:41, 16:29] = 255.0  # off-centre: an exactly symmetric 0 centres on a rounding tie
    for top in range(12, 48, 7):
        image[top:top + 5, 50:52] = 0.0  # fragments 2 px apart
    image[5, 70] = image[55, 5] = 0.0  # and two specks
    return image


def test_a_faint_stroke_broken_into_specks_is_still_a_digit():
    ink = _ink(faint_one_beside_a_zero())
    assert len(strokes.marks(ink > 0.5)[1]) == 2  # the 0, and the fragments as one mark
    pieces = segment.split_number(ink)
    assert len(pieces) == 2
    assert pieces[1].box[3] - pieces[1].box[1] > 0.9 * (pieces[0].box[3] - pieces[0].box[1])


def thin_seven_beside_a_bold_zero() -> np.ndarray:
    """A bold 0, and a thin 7 whose bar the ink map keeps apart from its stem: the bar has less
    ink than the speck floor that the 0 sets for the whole number."""
    image = np.full((60, 90), 255.0, np.float32)
    image[10:50, 8:40] = 0.0
    image[16:44, 16:32] = 255.0
    image[12:14, 52:68] = 0.0  # the bar
    image[16:50, 64:66] = 0.0  # the stem, two rows of paper below it
    return image


def test_a_stroke_broken_off_a_digit_stays_with_it_beside_a_bold_digit():
    ink = _ink(thin_seven_beside_a_bold_zero())
    labels, kept = strokes.marks(ink > 0.5)
    areas = np.bincount(labels.ravel())
    assert labels.max() == 3 and areas[2] == 0  # the bar's label now belongs to the stem
    zero, seven = segment.split_number(ink)
    assert seven.box[2] - seven.box[0] > 4 * (zero.box[2] - zero.box[0]) / 16  # the bar's width


def open_four_and_a_one() -> np.ndarray:
    """A 4 written as two strokes that do not overlap (an L and its upright, each too tall to be
    a fragment), then two close 1s."""
    image = np.full((60, 64), 255.0, np.float32)
    image[10:37, 4:7] = image[34:37, 4:26] = 0.0  # the L: wider than 0.75 of its height
    image[10:50, 28:31] = 0.0  # the upright, two columns of paper after the L
    image[10:50, 44:47] = image[10:50, 50:53] = 0.0  # 1 and 1, three columns apart
    return image


def stand_in_scores(inks: list[np.ndarray]) -> list[float]:
    """A reader's score as tests/segment_runner.mjs fakes it too, by a piece's width for its
    height: unsure (0.4) from 0.75, sure (0.95) of a stroke under 0.3, surest (0.99) between."""
    scores = []
    for ink in inks:
        rows, cols = np.flatnonzero((ink > 0.5).any(1)), np.flatnonzero((ink > 0.5).any(0))
        aspect = (cols[-1] + 1 - cols[0]) / (rows[-1] + 1 - rows[0])
        scores.append(0.4 if aspect >= 0.75 else 0.95 if aspect < 0.3 else 0.99)
    return scores


def test_close_pieces_join_when_they_score_higher_together():
    ink = _ink(open_four_and_a_one())
    assert len(strokes.group_strokes(ink > 0.5)) == 4
    four, one, other = segment.split_number(ink, stand_in_scores, verified=True)
    assert four.box[2] - four.box[0] > 2 * (one.box[2] - one.box[0])  # the L and its upright
    assert other.box[0] > one.box[2]  # the two sure 1s stay apart, close as they are
    assert len(segment.split_number(ink, stand_in_scores)) == 4  # joins need the verifier
    # A score no surer of the whole than of its surer part joins nothing.
    assert len(segment.split_number(ink, lambda inks: [0.3] * len(inks), verified=True)) == 4


def test_predict_reads_a_number_with_boxes(mnist, tiny_exported_dir, tmp_path):
    chosen = _narrow_digits(mnist, 3, seed=11)
    image = compose([mnist.test_images[i, ..., 0] for i in chosen], "separated",
                    np.random.default_rng(1))
    path = tmp_path / "number.png"
    Image.fromarray(image.astype(np.uint8)).save(path)
    model = str(tiny_exported_dir / "cnn.onnx")
    result = run_module("keras_digits.predict", str(path), "--model", model, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    [answer] = json.loads(result.stdout)
    assert len(answer["digits"]) == 3 and len(answer["number"]) == 3
    boxes = [d["box"] for d in answer["digits"]]
    assert all(0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b in boxes)
    assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)
    assert all(isinstance(d["unsure"], bool) for d in answer["digits"])
    single = run_module("keras_digits.predict", str(path), "--model", model, "--json",
                        "--single")
    [whole] = json.loads(single.stdout)
    assert len(whole["digits"]) == 1 and len(whole["top"]) == 3
    text = run_module("keras_digits.predict", str(path), "--model", model)
    assert text.stdout.startswith(f"{path}: {answer['number']}   (")


def _specks(path):
    rng = np.random.default_rng(2)
    image = Image.new("L", (400, 300), 255)
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = int(rng.integers(10, 390)), int(rng.integers(10, 290))
        draw.ellipse([x, y, x + 4, y + 4], fill=0)
    image.save(path)


def _text_page(path):
    image = Image.new("L", (500, 260), 255)
    draw = ImageDraw.Draw(image)
    for line in range(8):
        draw.text((10, 10 + 30 * line), "The quick brown fox jumps over the lazy dog", fill=0)
    image.save(path)


def _long_number(path):
    image = Image.new("L", (900, 60), 255)
    draw = ImageDraw.Draw(image)
    for i in range(14):
        draw.line([(20 + 60 * i, 10), (20 + 60 * i, 50)], fill=0, width=4)  # fourteen 1s
    image.save(path)


@pytest.mark.parametrize("make, expected", [
    (_specks, "separate marks"),  # 40 dots, a few of them touching
    (_text_page, "separate marks"),
    (_long_number, "14 separate marks"),
])
def test_too_many_marks_get_one_line(make, expected, tiny_exported_dir, tmp_path):
    path = tmp_path / "odd.png"
    make(path)
    result = run_module("keras_digits.predict", str(path), "--model",
                        str(tiny_exported_dir / "cnn.onnx"))
    assert result.returncode == 1
    line = last_error_line(result.stderr)
    assert expected in line and "crop the image to the number" in line


def test_a_sliver_image_and_a_digit_on_the_edge_are_answered(tiny_exported_dir, tmp_path):
    sliver = tmp_path / "sliver.png"
    Image.new("L", (20_000, 20), 255).save(sliver)
    drawn = Image.new("L", (20_000, 20), 255)
    ImageDraw.Draw(drawn).line([(10_000, 0), (10_000, 19)], fill=0, width=3)
    drawn.save(tmp_path / "sliver_ink.png")
    edge = Image.new("L", (60, 80), 255)
    ImageDraw.Draw(edge).line([(30, 0), (30, 79)], fill=0, width=8)  # a 1 cropped to its ink
    edge.save(tmp_path / "edge.png")
    result = subprocess.run(
        [sys.executable, "-m", "keras_digits.predict", str(sliver),
         str(tmp_path / "sliver_ink.png"), str(tmp_path / "edge.png"),
         "--model", str(tiny_exported_dir / "cnn.onnx"), "--json"],
        capture_output=True, text=True, timeout=60, cwd=REPO)
    answers = {a["file"]: a for a in json.loads(result.stdout)}
    assert "no ink" in answers[str(sliver)]["error"]
    assert "digits" in answers[str(tmp_path / "edge.png")]
    assert "Traceback" not in result.stderr


def test_digit_reader_api_reads_files_and_arrays(mnist, tiny_exported_dir):
    reader = DigitReader(tiny_exported_dir / "cnn.onnx")
    one = reader.read(mnist.test_images[0])
    assert one.pixels.shape == (28, 28, 1) and 0 <= one.label <= 9
    assert one.probability == pytest.approx(float(one.probabilities.max()))
    many = reader.read_many([mnist.test_images[i] for i in range(5)])
    assert [r.label for r in many][0] == one.label
    chosen = _narrow_digits(mnist, 2, seed=4)
    number = reader.read_number(compose([mnist.test_images[i, ..., 0] for i in chosen],
                                        "separated", np.random.default_rng(0)))
    assert len(number.text) == 2 and all(d.box is not None for d in number.digits)


def test_scattered_marks_are_not_one_digit(tiny_exported_dir):
    page = np.full((80, 80), 255.0)
    for y, x in ((10, 10), (10, 60), (40, 35), (65, 12), (66, 62), (30, 70)):
        page[y:y + 6, x:x + 6] = 0.0
    reading = DigitReader(tiny_exported_dir / "cnn.onnx").read(page)
    assert reading.unsure and reading.reason == "6 separate marks, not one digit"


@pytest.mark.parametrize("length", [4])
def test_composed_numbers_are_read_whole(mnist, exported_dir, length):
    reader = DigitReader(exported_dir / "cnn.onnx")
    rng = np.random.default_rng(5)
    right = 0
    for _ in range(30):
        chosen = rng.choice(len(mnist.test_images), length, replace=False)
        image = compose([mnist.test_images[i, ..., 0] for i in chosen], "separated", rng)
        right += reader.read_number(image).text == "".join(str(mnist.test_labels[i])
                                                          for i in chosen)
    assert right >= 24, right  # 80%; the full models reach 96-98% (docs/RESULTS.md)


def test_the_readme_python_example_runs(mnist, tiny_exported_dir, tmp_path):
    readme = (REPO / "README.md").read_text()
    code = readme.split("## From Python", 1)[1].split("```python\n", 1)[1].split("```")[0]
    (tmp_path / "export" / "mnist").mkdir(parents=True)
    (tmp_path / "export" / "mnist" / "cnn.onnx").write_bytes(
        (tiny_exported_dir / "cnn.onnx").read_bytes())
    Image.fromarray(255 - mnist.test_images[0, ..., 0]).save(tmp_path / "digit.png")
    chosen = _narrow_digits(mnist, 2, seed=8)
    number = compose([mnist.test_images[i, ..., 0] for i in chosen], "separated",
                     np.random.default_rng(0))
    Image.fromarray(number.astype(np.uint8)).save(tmp_path / "number.png")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    label, probability, text, unsure = result.stdout.split()
    assert label.isdigit() and probability.endswith("%") and len(text) == 2
    assert unsure in ("True", "False")


def test_a_check_model_of_other_classes_is_refused(tiny_exported_dir, tmp_path):
    import onnx

    other = onnx.load(tiny_exported_dir / "linear.onnx")
    for prop in other.metadata_props:
        if prop.key == "keras_digits.classes":
            prop.value = "|".join(f"class{i}" for i in range(10))
    onnx.save(other, tmp_path / "clothes.onnx")
    Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
    result = run_module("keras_digits.predict", str(tmp_path / "blank.png"), "--model",
                        str(tiny_exported_dir / "cnn.onnx"), "--check",
                        str(tmp_path / "clothes.onnx"))
    assert result.returncode == 2
    assert "reads other classes than" in last_error_line(result.stderr)


@pytest.mark.slow  # trains a (tiny) model: about a minute
def test_the_verifier_is_made_and_number_mode_cuts_with_it(mnist, tiny_exported_dir, tmp_path):
    """`keras_digits.verifier` writes the one-digit model beside the exports; the reader, and so
    predict, then score pieces with it; a broken one is a one-line error."""
    import shutil

    folder = tmp_path / "export" / "mnist"
    folder.mkdir(parents=True)
    shutil.copy(tiny_exported_dir / "cnn.onnx", folder / "cnn.onnx")
    image = compose([mnist.test_images[i, ..., 0] for i in (0, 1, 2)], "touching",
                    np.random.default_rng(3))
    number = tmp_path / "number.png"
    Image.fromarray(image.astype(np.uint8)).save(number)

    assert DigitReader(folder / "cnn.onnx").verifier is None  # none yet: the older rule
    before = run_module("keras_digits.predict", str(number), "--model", str(folder / "cnn.onnx"))
    assert before.returncode == 0 and not before.stderr.strip()

    made = run_module("keras_digits.verifier", "--examples", "40", "--epochs", "1",
                      "--out-dir", str(tmp_path / "export"))
    assert made.returncode == 0, made.stderr
    info = json.loads((folder / "verifier" / "one_digit.json").read_text())
    assert info["examples"] > 80 and info["one_digit"] == 40 and 0 <= info["held_out_accuracy"] <= 1
    reader = DigitReader(folder / "cnn.onnx")
    assert reader.verifier is not None
    said = reader.verifier(np.stack([normalize.to_pixels(_ink(255.0 - d)) for d in
                                     mnist.test_images[:3, ..., 0]]))
    assert said.shape == (3,) and ((said >= 0) & (said <= 1)).all()
    after = run_module("keras_digits.predict", str(number), "--model", str(folder / "cnn.onnx"))
    assert after.returncode == 0 and not after.stderr.strip()

    (folder / "verifier" / "one_digit.onnx").write_bytes(b"not a model")
    broken = run_module("keras_digits.predict", str(number), "--model", str(folder / "cnn.onnx"))
    assert broken.returncode == 2
    assert "python -m keras_digits.verifier" in last_error_line(broken.stderr)
    single = run_module("keras_digits.predict", str(number), "--single", "--model",
                        str(folder / "cnn.onnx"))
    assert single.returncode == 0  # one digit never needs the verifier


def test_the_verifier_learns_from_numbers_at_the_sizes_photos_show(mnist):
    """Each example is enlarged 1-4 times before number mode's preprocessing: trained at
    MNIST's scale alone, the verifier doubted bold whole digits in enlarged numbers."""
    from keras_digits.deploy import verifier

    image = compose([mnist.test_images[0, ..., 0]], "separated", np.random.default_rng(0))
    plain = verifier._ink(image).shape[0]
    heights = [verifier._ink(image, np.random.default_rng(k)).shape[0] / plain
               for k in range(12)]
    assert min(heights) >= 0.99 and max(heights) > 2.5 and max(heights) < 4.2
    assert len({round(h, 2) for h in heights}) > 6  # drawn, not one fixed size


def test_the_verifier_refuses_too_few_examples(tmp_path):
    result = run_module("keras_digits.verifier", "--examples", "5", "--out-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--examples 5 is too few" in last_error_line(result.stderr)
    assert not (tmp_path / "mnist" / "verifier").exists()


def _side_by_side(digits: list[np.ndarray], gaps: list[int], scale: int = 4) -> np.ndarray:
    """White-on-black digits (0-255) cropped and laid side by side `gaps` pixels apart at
    MNIST's scale, as dark ink on white paper enlarged `scale` times, as a scan would show it."""
    pieces = [np.asarray(d, np.float32) for d in digits]
    pieces = [p[np.ix_(p.max(axis=1) > 0, p.max(axis=0) > 0)] for p in pieces]
    canvas = np.zeros((44, sum(p.shape[1] for p in pieces) + sum(gaps) + 16), np.float32)
    x = 8
    for piece, gap in zip(pieces, [*gaps, 0], strict=True):
        top = 8 + (28 - piece.shape[0]) // 2
        canvas[top:top + piece.shape[0], x:x + piece.shape[1]] = piece
        x += piece.shape[1] + gap
    paper = Image.fromarray(255 - canvas, "F")
    return np.array(paper.resize((paper.width * scale, paper.height * scale),
                                 Image.Resampling.BILINEAR))


def test_a_thin_digit_beside_bold_ones_keeps_its_strokes(mnist):
    """MNIST test digits 9655, 1875, 7984 and 3196 ("3741") at their own pen weights, 5 pixels
    apart, enlarged 4 times: the thin 1 broke into fragments that passed for specks, and the
    number was read "374". Each digit is now found, and the 1 is the 1 read alone."""
    digits = [mnist.test_images[i, ..., 0] for i in (9655, 1875, 7984, 3196)]
    ink = _ink(_side_by_side(digits, [5, 5, 5]))
    before = strokes.group_strokes(ink > 0.5)  # the map as the whole image's ink scales it
    assert len(before) == 3
    pieces = segment.split_number(ink)
    assert len(pieces) == 4
    alone = normalize.load_digit(_side_by_side(digits[3:], []))
    assert np.abs(normalize.to_pixels(pieces[3].ink) - alone).mean() < 12  # 0-255 units


def test_a_piece_keeps_the_faint_ink_that_reaches_it_but_not_a_neighbours_rim():
    """Ink under 0.5 joined to a piece's strokes (a light loop) is the piece's; faint ink by
    another stroke (its rim) is not, even where the two faint parts meet."""
    ink = np.zeros((30, 40), np.float32)
    ink[5:25, 10:13] = ink[22:25, 10:24] = 1.0  # the piece: a stem and a base
    ink[5:7, 13:25] = 0.3  # a light arc from the stem, running into the neighbour's rim
    ink[5:20, 26:29] = 1.0  # a neighbour's stroke inside the piece's window
    ink[5:20, 25] = 0.3  # and its rim
    mask = ink > 0.5
    mask[:, 26:] = False
    out = segment.piece_ink(ink, mask)
    top, left = 5 - segment.RIM, 10 - segment.RIM  # the crop's corner
    assert out[5 - top, 17 - left] == pytest.approx(0.3)  # 4 pixels from the stem: kept
    assert not out[:, 24 - left:].any()  # the rim, the arc beside it and the stroke: not


def test_a_light_loop_beside_bold_digits_stays_in_its_digit(mnist):
    """MNIST test digits 3791, 2702, 4369 and 8015 ("9698") at their own pen weights: the top of
    the 9's loop is under 0.5 in the number's ink map, and without it the 9 was read as a 4.
    The piece keeps it, so its 28x28 is close to the 9 read alone."""
    digits = [mnist.test_images[i, ..., 0] for i in (3791, 2702, 4369, 8015)]
    pieces = segment.split_number(_ink(_side_by_side(digits, [5, 5, 5])))
    assert len(pieces) == 4
    alone = normalize.load_digit(_side_by_side(digits[2:3], []))
    assert np.abs(normalize.to_pixels(pieces[2].ink) - alone).mean() < 10  # 13 without it


@pytest.mark.parametrize("weight", [0.6, 0.35])
def test_a_light_digit_beside_bold_ones_is_found_whole(mnist, weight):
    """A digit written with a third to a half of its neighbours' pressure: a mark the size of a
    digit is never a speck, and its ink is scaled as if it were read alone."""
    chosen = _narrow_digits(mnist, 4, seed=11)
    digits = [mnist.test_images[i, ..., 0].astype(np.float32) for i in chosen]
    for light in range(4):
        pale = [d * weight if i == light else d for i, d in enumerate(digits)]
        pieces = segment.split_number(_ink(_side_by_side(pale, [4, 6, 3])))
        assert len(pieces) == 4, (weight, light, [p.box for p in pieces])
        alone = normalize.load_digit(_side_by_side([digits[light]], []))
        seen = normalize.to_pixels(pieces[light].ink)
        assert np.abs(seen - alone).mean() < 15, (weight, light)


def test_ink_left_out_of_the_digits_is_measured(mnist):
    """A dropped mark half as tall as the digits (a hairline too thin to count as a stroke) is
    reported, so the reader can mark the number unsure; dust is not."""
    digits = [mnist.test_images[i, ..., 0] for i in _narrow_digits(mnist, 3, seed=5)]
    image = _side_by_side(digits, [6, 6])
    ink = _ink(image)
    pieces = segment.split_number(ink)
    assert len(pieces) == 3 and segment.left_out(ink, pieces) == 0.0
    dusty = image.copy()
    dusty[10:12, 10:12] = dusty[-12:-10, -12:-10] = 0.0
    assert segment.left_out(_ink(dusty), segment.split_number(_ink(dusty))) < 0.1
    left, top, right, bottom = pieces[-1].box
    struck = ink.copy()
    struck[top:top + (bottom - top) // 2, right + 12] = 0.8  # a hairline beside the number
    kept = segment.split_number(struck)
    assert [p.box for p in kept] == [p.box for p in pieces]
    assert segment.left_out(struck, kept) >= segment.LEFT_OUT_HEIGHT


def test_a_number_with_ink_left_out_is_marked_unsure_with_the_reason(mnist, tiny_exported_dir):
    digits = [mnist.test_images[i, ..., 0] for i in _narrow_digits(mnist, 3, seed=5)]
    image = _side_by_side(digits, [6, 6])
    reader = DigitReader(tiny_exported_dir / "cnn.onnx")
    assert reader.read_number(image).reason is None
    rows = np.flatnonzero(image.min(axis=1) < 128)
    cols = np.flatnonzero(image.min(axis=0) < 128)
    struck = image.copy()
    struck[rows[0]:rows[0] + len(rows) // 2, cols[-1] + 12] = 0.0  # a dark hairline
    number = reader.read_number(struck)
    assert len(number.digits) == 3 and number.unsure
    assert number.reason.startswith("ink left out of the digits")
    assert number.reasons[0] == number.reason
