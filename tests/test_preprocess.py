"""Preprocessing of real images: tight crops, phone photos with EXIF orientation, strokes that
span the image, ruled paper. No model needed: each test compares 28x28 inputs."""

from __future__ import annotations

import numpy as np
import pytest
from drawings import FONT_DIR, available_fonts, in_a_box, make_set, on_a_desk
from PIL import Image, ImageFilter

from keras_digits.data import folders
from keras_digits.imaging import find_ink, normalize, page, raster, strokes
from keras_digits.imaging.decode import read_gray


@pytest.fixture(scope="module")
def drawings(tmp_path_factory):
    if not available_fonts():
        pytest.skip("DejaVu fonts are not installed")
    items = make_set(tmp_path_factory.mktemp("drawings"), fonts=available_fonts()[:1],
                     variants=("plain", "jpeg", "tight", "exif", "lined"))
    return {(variant, digit): path for path, digit, variant in items}


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 3), (28, 28), (90, 200)])
def test_min_and_max_filters_give_pillows_values(shape):
    """The preprocessing's minimum and maximum filters equal Pillow's MinFilter and MaxFilter
    to the bit, edges included, on float and 8-bit images."""
    rng = np.random.default_rng(len(shape) * shape[0] + shape[1])
    values = rng.random(shape).astype(np.float32) * (rng.random(shape) > 0.4)
    for image in (Image.fromarray(values, "F"), Image.fromarray((values * 255).astype(np.uint8))):
        array = np.asarray(image)
        for size in (3, 5, 13):
            assert np.array_equal(raster.min_filter(array, size),
                                  np.asarray(image.filter(ImageFilter.MinFilter(size))))
            assert np.array_equal(raster.max_filter(array, size),
                                  np.asarray(image.filter(ImageFilter.MaxFilter(size))))


def difference(a, b) -> float:
    return float(np.abs(normalize.load_digit(a) - normalize.load_digit(b)).mean())


@pytest.mark.parametrize("variant", ["tight", "lined"])
def test_tight_crops_and_ruled_pages_read_like_the_plain_drawing(drawings, variant):
    for digit in range(10):
        assert difference(drawings[(variant, digit)], drawings[("plain", digit)]) < 12, digit


def test_a_bold_digit_cropped_tightly_keeps_its_strokes(tmp_path):
    """A bold font cropped to its ink: its strokes, a third of the digit wide, were wider than
    the background filter and were erased as background (six of ten digits misread)."""
    bold = FONT_DIR / "DejaVuSans-Bold.ttf"
    if not bold.is_file():
        pytest.skip("DejaVu fonts are not installed")
    items = make_set(tmp_path, variants=("plain", "tight"), fonts=[bold])
    paths = {(variant, digit): path for path, digit, variant in items}
    for digit in range(10):
        assert difference(paths[("tight", digit)], paths[("plain", digit)]) < 12, digit


@pytest.mark.parametrize("sheet_box, tilted", [((140, 60, 500, 420), False),
                                               ((120, 80, 700, 560), False),
                                               ((30, 25, 615, 460), False),
                                               ((0, 0, 0, 0), True)])
def test_a_sheet_photographed_on_a_dark_desk_reads_like_the_sheet_alone(sheet_box, tilted):
    """The dark desk around the sheet passed for the paper and the sheet for the ink: a note
    inside the frame read as a 0, a sheet with desk along two edges as a 1."""
    if not (FONT_DIR / "DejaVuSans.ttf").is_file():
        pytest.skip("DejaVu fonts are not installed")
    for digit in (2, 4, 7, 9):
        photo = on_a_desk(digit, sheet_box, tilted)
        assert difference(photo, on_a_desk(digit, sheet_box, tilted, desk=235)) < 3, digit


def enlarged(image: np.ndarray, times: int, method=Image.Resampling.NEAREST) -> np.ndarray:
    """A small grey image at photo size: the desk and strip rules skip anything under 128 px."""
    height, width = image.shape
    return np.asarray(Image.fromarray(image.astype(np.float32), "F").resize(
        (width * times, height * times), method))


@pytest.mark.not_unit  # every Semeion scan or thousands of digits: seconds
def test_digits_and_scans_are_never_taken_for_a_sheet_on_a_desk(mnist):
    """White-on-black MNIST digits (bold 0s enclose dark holes in a light shape) and Semeion's
    tight crops (paper cut into pieces by strokes), enlarged to photo size, keep every pixel."""
    masks, _ = folders.load_semeion()
    images = [enlarged(d / 255, 10, Image.Resampling.BILINEAR)
              for d in mnist.test_images[:500, ..., 0]]
    images += [enlarged(1.0 - m, 10) for m in masks]
    assert all(np.array_equal(page.without_desk(g), g) for g in images)


@pytest.mark.parametrize("sheet_box", [(8, -20, 700, 520), (-20, 5, 700, 520),
                                       (-20, -20, 630, 520), (-20, -20, 700, 472)],
                         ids=["left", "top", "right", "bottom"])
def test_a_thin_strip_of_desk_along_the_frame_is_not_ink(sheet_box):
    """A strip of desk 1-1.5% of the photo wide, too thin for the desk rule, was the strongest
    ink in the photo: the digit was cropped with it and misread (86-97% of MNIST digits)."""
    if not (FONT_DIR / "DejaVuSans.ttf").is_file():
        pytest.skip("DejaVu fonts are not installed")
    for digit in (2, 4, 7, 9):
        photo = on_a_desk(digit, sheet_box)
        assert difference(photo, on_a_desk(digit, sheet_box, desk=235)) < 3, digit


@pytest.mark.not_unit  # every Semeion scan or thousands of digits: seconds
def test_tight_crops_are_never_taken_for_a_strip_along_the_frame(mnist, monkeypatch):
    """In a tight crop at photo size the ink lines the frame: a 5's bar written apart from its
    body (three of Semeion's 5s) runs along the top edge like a strip, but the body reaches the
    other edges, so nothing is cleared."""
    masks, labels = folders.load_semeion()
    images = [enlarged(1.0 - m, 10) for m in masks[labels == 5]]
    for digit in mnist.test_images[:200, ..., 0]:
        rows, cols = np.flatnonzero(digit.max(axis=1)), np.flatnonzero(digit.max(axis=0))
        images.append(enlarged(1.0 - digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] / 255,
                               8, Image.Resampling.BILINEAR))
    cleared = []
    find = page.frame_strips
    monkeypatch.setattr(page, "frame_strips",
                        lambda ink, low: cleared.append(find(ink, low).sum()) or find(ink, low))
    for image in images:
        find_ink.ink_map(image)
    assert len(cleared) == len(images) and not any(cleared)


LARGE = pytest.mark.not_unit  # a 200-pixel box: several seconds each


@pytest.mark.parametrize("side, line, outside", [
    (40, 1, 0), (64, 2, 0), pytest.param(200, 4, 0, marks=LARGE), (40, 1, 2),
    pytest.param(200, 4, 20, marks=LARGE)])
def test_a_box_drawn_around_the_digit_is_not_taken_for_ink(mnist, side, line, outside,
                                                           monkeypatch):
    """A form's field, cropped at its lines (the box is the whole border) or with paper around
    it (its lines too short or too thick for page rules). Its 28x28 is the digit's without the
    box, dark on white and inverted; without the step 9-44% of such digits were read."""
    digits = mnist.test_images[:40, ..., 0]

    def gaps() -> np.ndarray:
        return np.array([np.abs(normalize.load_digit(tone(in_a_box(d, side, line, outside))) -
                                normalize.load_digit(tone(in_a_box(d, side, 0)))).mean()
                         for d in digits for tone in (lambda g: g, lambda g: 1.0 - g)])

    assert gaps().max() < 2, gaps().max()  # 0-255 units: the same digit
    monkeypatch.setattr(page, "without_frame_box", lambda gray: gray)
    assert np.median(gaps()) > 40


def test_digits_scans_and_drawings_never_take_their_strokes_for_a_box(mnist, drawings):
    """Nothing but a box along all four sides is painted over: MNIST's digits cropped to their
    ink and Semeion's scans, enlarged past the step's 24 pixels, either way round, and the
    generated drawings are left as they are."""
    masks, _ = folders.load_semeion()
    grays = [np.kron(1.0 - m.astype(np.float32), np.ones((2, 2), np.float32)) for m in masks]
    for digit in mnist.test_images[:500, ..., 0].astype(np.float32) / 255:
        rows, cols = np.flatnonzero(digit.max(1) > 0.1), np.flatnonzero(digit.max(0) > 0.1)
        grays.append(np.kron(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1],
                             np.ones((2, 2), np.float32)))
    grays += [1.0 - g for g in grays] + [read_gray(path) for path in drawings.values()]
    changed = [i for i, g in enumerate(grays) if page.without_frame_box(g) is not g]
    assert changed == [], changed


def test_a_small_scan_reads_the_same_with_its_pixels_doubled():
    """A 16x16 binary scan and the same scan enlarged by pixel doubling hold the same digit;
    shrunk straight from 32 pixels, the doubled pixels' staircase edges stayed in the 28x28
    (a mean difference of about 10 against the 16-pixel scan's; 3 now)."""
    masks, _ = folders.load_semeion()
    differences = []
    for mask in masks[:100]:
        scan = 1.0 - mask.astype(np.float32)
        doubled = np.asarray(Image.fromarray(scan, "F").resize((32, 32), Image.Resampling.NEAREST))
        differences.append(np.abs(normalize.load_digit(scan) - normalize.load_digit(doubled))
                           .mean())
    assert np.mean(differences) < 5, np.mean(differences)


def thumbnail(digit: np.ndarray, side: int = 8) -> np.ndarray:
    """An MNIST digit as a side-pixel grey thumbnail of its ink, dark on light: each pixel the
    ink averaged over its block, as low-resolution scans such as the UCI optical digits store
    them."""
    rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
    ink = Image.fromarray(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32))
    factor = side / max(ink.size)
    size = (max(1, round(ink.width * factor)), max(1, round(ink.height * factor)))
    return 1.0 - np.asarray(ink.resize(size, Image.Resampling.BOX)) / 255.0


def test_an_8_pixel_thumbnail_is_enlarged_closer_to_the_digit_it_shows(mnist, monkeypatch):
    """Below SMALL_CROP pixels a crop is enlarged with the cubic filter: the 28x28 it gives is
    nearer the 28x28 of the full digit than linear enlargement's for most digits."""
    def gaps() -> np.ndarray:
        return np.array([np.abs(normalize.load_digit(thumbnail(d)) -
                                normalize.load_digit(255.0 - d.astype(np.float32))).mean()
                         for d in mnist.test_images[:100, ..., 0]])

    cubic = gaps()
    monkeypatch.setattr(normalize, "SMALL_CROP", 0)
    linear = gaps()
    assert cubic.mean() < linear.mean() and (cubic < linear).mean() > 0.75, (
        cubic.mean(), linear.mean(), (cubic < linear).mean())


def test_exif_orientation_is_applied(drawings):
    """A photo stored sideways with an orientation tag is read upright, like the plain JPEG."""
    for digit in range(10):
        upright = difference(drawings[("exif", digit)], drawings[("jpeg", digit)])
        with Image.open(drawings[("exif", digit)]) as image:
            sideways = Image.fromarray(np.asarray(image.convert("L")))  # tag dropped
        other = drawings[("exif", digit)].with_name(f"untagged-{digit}.png")
        sideways.save(other)
        assert upright < 12 < difference(other, drawings[("jpeg", digit)]) or digit in (0, 8), \
            digit


def test_a_bar_filling_a_tight_crop_is_ink_not_background(tmp_path):
    """A 1 cropped to its stroke: ink touches the top and bottom edge and is wider than the
    background filter; it must come out as a vertical bar, not as "no ink"."""
    page = np.full((60, 20), 255, dtype=np.uint8)
    page[:, 4:16] = 0
    Image.fromarray(page).save(tmp_path / "bar.png")
    pixels = normalize.load_digit(tmp_path / "bar.png")[..., 0]
    rows, cols = np.flatnonzero(pixels.max(1) > 128), np.flatnonzero(pixels.max(0) > 128)
    assert len(rows) >= 18 and len(cols) <= 8, (len(rows), len(cols))


def test_a_stroke_along_the_whole_frame_is_kept():
    """The top of a 7 drawn edge to edge is part of the digit, not a ruled line."""
    seven = np.zeros((16, 16), dtype=np.float32)
    seven[0:2, :] = 1.0  # the bar, touching both sides
    for row in range(2, 16):
        seven[row, 14 - row * 13 // 15: 16 - row * 13 // 15] = 1.0
    ink = find_ink.ink_map(1.0 - seven)  # dark ink on white paper
    pixels = normalize.mnist_style(ink)
    top = np.flatnonzero(pixels.max(1) > 0.5)[0]
    assert (pixels[top:top + 2] > 0.5).any(axis=0).sum() >= 14  # the bar spans the box


def ink_where_the_strokes_are(gray: np.ndarray, strokes: np.ndarray) -> bool:
    """Whether `ink_map` puts more ink on the stroke pixels than on the paper (right polarity)."""
    ink = find_ink.ink_map(gray)
    margin = find_ink.paper_margin(gray.shape)
    inner = ink[margin:margin + gray.shape[0], margin:margin + gray.shape[1]]
    return inner[strokes].mean() > inner[~strokes].mean()


@pytest.mark.not_unit  # every Semeion scan or thousands of digits: seconds
def test_bold_scanned_digits_whose_strokes_line_the_frame_keep_their_polarity():
    """Semeion stretches each digit to fill its 16x16 box, so the strokes of a bold 8 or 0 can
    cover more of the border than the paper does. Taking the border's majority for paper read
    36 of its 3,186 digits (each as scanned and inverted) the wrong way round."""
    masks, _ = folders.load_semeion()
    inverted = [(i, dark_ink) for i, mask in enumerate(masks) for dark_ink in (True, False)
                if not ink_where_the_strokes_are(
                    1.0 - mask.astype(np.float32) if dark_ink else mask.astype(np.float32),
                    mask == 1)]
    assert len(inverted) <= 4, inverted


def stretched_into_a_box(digit: np.ndarray, side: int = 16) -> np.ndarray:
    """A digit (ink in [0, 1]) as some scanners keep it: cropped, stretched to fill a square box
    and thresholded; MNIST's bold strokes then often cover more of the box than its paper."""
    rows, cols = np.flatnonzero(digit.max(1) > 0.25), np.flatnonzero(digit.max(0) > 0.25)
    crop = Image.fromarray(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], "F")
    return (np.asarray(crop.resize((side, side), Image.Resampling.BILINEAR)) > 0.35).astype(
        np.float32)


@pytest.mark.parametrize("rendering", ["cropped to the ink", "stretched into a box"])
def test_tight_mnist_digits_keep_their_polarity_at_least_as_often_as_before(mnist, rendering):
    """MNIST test digits cropped to their ink (a 1 is nearly all ink), or stretched to fill a
    16x16 box: the rule must read them, white on black and black on white, at least as well as
    the border's majority alone. Telling ink by thinner strokes failed this: bold stretched
    digits have thicker ink than paper."""
    digits = mnist.test_images[:500, ..., 0].astype(np.float32) / 255
    majority_wrong = rule_wrong = 0
    for digit in digits:
        if rendering == "stretched into a box":
            ink = stretched_into_a_box(digit)
        else:
            rows, cols = np.flatnonzero(digit.max(1) > 0.1), np.flatnonzero(digit.max(0) > 0.1)
            ink = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        for gray, paper_light in ((ink, False), (1.0 - ink, True)):
            light = float(find_ink.border_tones(gray)[1].mean())
            majority_wrong += (light > 0.5) != paper_light
            rule_wrong += find_ink._paper_is_light(gray, light) != paper_light
    assert rule_wrong <= majority_wrong, (rule_wrong, majority_wrong)


def semeion_grids(count: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Semeion's first digits as 8x8 grids of grey levels (2x2 block means), light ink on
    dark, as an 8x8 dataset saved the way MNIST stores its digits would look."""
    masks, labels = folders.load_semeion()
    return ([m.astype(np.float32).reshape(8, 2, 8, 2).mean(axis=(1, 3)) for m in masks[:count]],
            labels[:count])


def test_a_thumbnail_whose_border_leaves_its_paper_open_offers_both_tones():
    """An 8x8 grid's strokes are a pixel wide and grey, and counting pieces took the paper for
    ink in many of them. Where the border leaves the tone open, the reader gets both ink maps,
    the image's own verdict first; a 16-pixel scan of the same digit gets one."""
    grids, _ = semeion_grids(300)
    offered = own_wrong = 0
    for grid in grids:
        inks = find_ink.candidate_inks(grid, "grid")
        assert len(inks) == (2 if find_ink.polarity_open(grid) else 1)
        np.testing.assert_array_equal(inks[0], find_ink.ink_map(grid))
        if len(inks) == 2:
            truth = find_ink.ink_map(grid, paper_light=False)
            assert any(np.array_equal(ink, truth) for ink in inks)
            offered += 1
            own_wrong += not np.array_equal(inks[0], truth)
        assert len(find_ink.candidate_inks(np.kron(grid, np.ones((2, 2))), "scan")) == 1
    assert offered >= 30 and own_wrong >= 10, (offered, own_wrong)


def test_page_rules_are_removed_but_a_single_full_width_bar_is_not():
    flat_cover = np.zeros(300)
    flat_cover[[50, 51, 120, 190]] = 0.95  # three thin rules
    flat_cover[250:262] = 0.95  # a thick bar: not a rule
    rules = page.rule_lines(flat_cover, 0.02 * 300)
    assert rules[[50, 51, 120, 190]].all() and not rules[250:262].any()
    alone = np.zeros(300)
    alone[100:102] = 0.95
    assert not page.rule_lines(alone, 6).any()


def test_strokes_that_cross_page_rules_stay_whole(drawings):
    """Removing a rule cut every stroke that crossed it: a digit on ruled or squared paper came
    out in pieces, read right but marked unsure as "5 separate marks, not one digit"."""
    for digit in range(10):
        plain = find_ink.ink_map(read_gray(drawings[("plain", digit)]))
        page = np.asarray(Image.open(drawings[("plain", digit)]).convert("L"), dtype=np.uint8)
        squared = page.copy()
        squared[5::page.shape[0] // 7, :] = 170  # squared paper: rules across and down
        squared[:, 5::page.shape[1] // 7] = 170
        squared = np.minimum(squared, page)
        for ruled in (read_gray(drawings[("lined", digit)]), squared / 255.0):
            ink = find_ink.ink_map(ruled)
            assert len(strokes.marks(ink > 0.5)[1]) == len(strokes.marks(plain > 0.5)[1]), digit


def test_mnist_stroke_width_constant_is_measured(mnist):
    """MNIST_STROKE_AT_80 is the median stroke width of MNIST digits scaled to an 80-pixel box."""
    widths = []
    for image in mnist.train_images[:2000, ..., 0]:
        ink = image.astype(np.float32) / 255
        widths.append(normalize.stroke_width(
            normalize._fit_box(normalize._crop_to_ink(ink), normalize.STROKE_BOX)))
    assert np.median(widths) == pytest.approx(normalize.MNIST_STROKE_AT_80, abs=0.3)


def test_semeion_is_verified_and_written_as_a_labelled_folder(tmp_path):
    images, labels = folders.load_semeion()
    assert images.shape == (1593, 16, 16) and set(np.unique(images)) == {0, 1}
    assert np.bincount(labels).tolist() == [161, 162, 159, 159, 161, 159, 161, 158, 155, 158]
    folder = folders.write_semeion_folder(tmp_path / "semeion")
    samples = folders.read_labelled_folder(folder, tuple(str(d) for d in range(10)))
    assert [s.label for s in samples] == labels.tolist()
    with Image.open(samples[0].path) as first:
        assert np.array_equal(np.asarray(first) == 0, images[0] == 1)  # ink is black
