"""The contract between an exported model and whoever runs it: `export` writes it, `predict`,
`evaluate` and `serve` check and rely on it, and serve hands the preprocessing constants to the
page so that the browser never repeats them.

An exported model takes `pixels`, float32 (N, 28, 28, 1) in 0-255 with white ink on black, as
`imaging.normalize` makes them, and returns `probabilities`, float32 (N, classes).
"""

from __future__ import annotations

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
INPUT_SHAPE = (28, 28, 1)
INPUT_DESCRIPTION = "pixels: float32 (N, 28, 28, 1), 0-255, white ink on black"

# ONNX metadata_props keys.
MODEL_KEY = "keras_digits.model"
DATASET_KEY = "keras_digits.dataset"
CLASSES_KEY = "keras_digits.classes"  # class names joined by "|"
INPUT_KEY = "keras_digits.input"
# In a model's "inside" file: JSON list of its hidden layers' extra outputs (deploy/inside.py).
INSIDE_KEY = "keras_digits.inside"

# MNIST's geometry and the preprocessing thresholds, shared by preprocess.py and the page.
PREPROCESSING = {
    "FRAME": 28,  # the model's input side
    "BOX": 20,  # MNIST fits the longer side of each digit into this box
    "STROKE_BOX": 80,  # the size at which stroke width is measured and mended
    # A crop shorter than this on its longer side (an 8x8 grid, a thumbnail) is enlarged with a
    # cubic filter: linear enlargement leaves its few pixels as blurred plateaus. MNIST test in
    # the UCI optical digits' 8x8 format then reads 0.2-0.5 pp better (studies/format_study.py,
    # studies/README.md); a limit of 17 took in Semeion's 16-pixel scans too and read them worse.
    "SMALL_CROP": 12,
    # Median stroke width of MNIST digits after cropping and scaling to the 80-pixel STROKE_BOX,
    # measured with `normalize.stroke_width` on 2,000 training images (a test re-measures it).
    "MNIST_STROKE_AT_80": 7.8,
    "MIN_CONTRAST": 0.08,  # below this ink-to-paper difference the image counts as blank
    "PAPER_MARGIN": 2,  # paper added on each side before the analysis: half the longer side
    "RULE_THICKNESS": 0.02,  # a page rule is at most this share of the page thick
    "POLARITY_SIDE": 32,  # a tight crop's paper is told from its ink at this size
    # The background is a grey opening (min then max filter) this wide, at this longer side.
    # A tight crop fills half of it (the paper margin doubles the image) and a bold digit's
    # stroke is up to a third of its width: wider than 9 pixels, which kept such strokes as
    # background and erased them (bold fonts cropped tightly: 36 of 40 read before, 40 now).
    "BACKGROUND_SIDE": 64,
    "BACKGROUND_FILTER": 13,
    # A sheet photographed on a darker desk, looked for in images of twice BACKGROUND_SIDE and
    # more: the largest light piece (at BACKGROUND_SIDE pixels) with the dark marks it encloses
    # is a sheet when the rest, all dark and far darker than the paper, is at least DESK of
    # the image, the marks at most SHEET_INK of the sheet, and the sheet at least SHEET_CONVEX
    # of its convex hull (paper is straight-edged; paper cut by strokes is not, and bold white
    # 0s on black, whose holes are 12-19% of the filled 0 in MNIST, fail SHEET_INK). The desk
    # then takes the paper's tone.
    "DESK": 0.05,
    "SHEET_INK": 0.1,
    "SHEET_CONVEX": 0.93,
    # A thinner strip of desk, shadow or scanner edge along the frame, in images of twice
    # BACKGROUND_SIDE and more: ink touching the frame that stays within FRAME_STRIP_DEPTH of
    # the shorter side from it and runs along at least FRAME_STRIP_SPAN of a side, while the
    # rest of the ink keeps away from that side (FRAME_STRIP_GAP of the shorter side, and the
    # strip's own depth, beyond it), is no writing: the digit is inside, the strip is not.
    "FRAME_STRIP_DEPTH": 0.1,
    "FRAME_STRIP_SPAN": 0.5,
    "FRAME_STRIP_GAP": 0.05,
    # A box drawn around the writing (a form's field, a dark rim all round a scan), in images
    # of FRAME_BOX_MIN pixels and more: on all four sides, within FRAME_BOX_REACH of the edge,
    # lines at most FRAME_BOX_DEPTH of the shorter side deep, each nine tenths one tone along
    # the box, with the other tone inside them. Cropped at its lines, the box is the whole
    # border and passes for the paper; with paper around it, its lines are too short for rules.
    "FRAME_BOX_MIN": 24,
    "FRAME_BOX_DEPTH": 0.06,
    "FRAME_BOX_REACH": 0.25,
}

# Thumbnails whose paper tone the border leaves open (less than two thirds of it in either tone).
# Under BELOW pixels on its longer side, a tight crop's strokes are a pixel or two wide and
# grey, and counting the pieces of each tone tells paper from ink badly: MNIST test digits
# cropped and shrunk to 8-12 pixels lost 1.5-9 pp that way, and Semeion's scans at 8 pixels
# with light ink on dark 11. The reader then reads both tones and takes the other one where
# the model is surer of it by more than MARGIN (studies/thumbnail_study.py, studies/README.md,
# "Thumbnails whose paper the border leaves open"). Not ported to the page: it reads its own
# canvas, never a thumbnail.
THUMBNAIL_POLARITY = {"BELOW": 13, "MARGIN": 0.1}

# How `segment` splits a written number into digits, shared with the page's port. Shares are of
# the tallest piece's height unless said otherwise; the cut thresholds were chosen on composed
# MNIST-test pairs and lone MNIST and Semeion digits (studies/number_study.py measures them).
SEGMENTATION = {
    "MAX_DIGITS": 12,  # more digits than this is not a number someone photographed,
    "MAX_MARKS": 24,  # nor are more separate marks than this (text, specks, noise)
    # A mark the size of a digit (FRAGMENT_HEIGHT of the tallest) whose own strength (the 90th
    # percentile of its ink) is under FAINT_MARK of full ink, but at least FAINT_FLOOR (fainter
    # is paper grain, not writing), is scaled up to full ink before the marks are found: a light
    # or thin digit beside bold ones keeps its strokes whole, as when it is read alone
    # (studies/number_study.py --scale 4).
    "FAINT_MARK": 0.9,
    "FAINT_FLOOR": 0.1,
    "SPECK_SHARE": 0.06,  # a mark with less ink than this share of the largest one is a speck
    "SPECK_CHAIN_GAP": 2,  # ... unless small marks stacked at most this many pixels apart
    "SPECK_CHAINS": 96,  # (looked for among up to this many) have that much ink together
    "SPECK_REACH": 3,  # a speck this close to a mark is part of its stroke, not a speck
    "OVERLAP_SHARE": 0.4,  # marks whose columns overlap by this share of the narrower join
    "FRAGMENT_HEIGHT": 0.6,  # a piece shorter than this is part of the digit beside it
    "FRAGMENT_GAP": 0.25,  # ... when at most this far from it; with the verifier, any two
    "JOIN_BELOW": 0.5,  # pieces this close, one scored under this, join if surer together
    "WIDE": 0.9,  # a piece at least this wide for its own height may be touching digits,
    "CUT_BELOW": 0.9,  # if read as one digit with less confidence than this,
    "SURELY_TWO": 1.2,  # or if wider than this (however it is read);
    "PART_SURE": 0.9,  # each part of a cut must be read at least this surely
    "MIN_DIGIT_WIDTH": 0.3,  # and be at least this wide for the piece's height
    # Ink left out of every digit read, in a mark at least this share of the digits' median
    # height, marks the number unsure: a digit may be missing from the answer.
    "LEFT_OUT_HEIGHT": 0.4,
    "CENTRE_PULL": 0.05,  # cut candidates: ink-column cost added per half-width from the centre
    "DRIFT": 0.02,  # cut paths: cost per column away from where the path started
    # With the one-digit verifier (`deploy/verifier.py`) a piece's score is the answer's probability
    # times the verifier's, so a cut no longer needs the gates above; it is tried on
    "VERIFIED_WIDE": 0.5,  # pieces at least this wide for their height,
    "VERIFIED_CANDIDATES": 5,  # at this many columns,
    "VERIFIED_CROSSINGS": 2,  # along paths through at most this many strokes.
    # A piece cut from a mark that scored whole at least this share of what its parts scored
    # together (a close call) marks the number unsure: it may be one digit cut in two
    # (studies/number_study.py --scale 4; flagged no number read right that was not already).
    "CLOSE_CUT": 0.1,
    # With the verifier, a piece at least TWO_WIDE wide for its height that the verifier gives
    # under TWO_BELOW of being one whole digit marks the number unsure: it may be two touching
    # digits read as one (in 1,000 numbers with a touching pair, silent miscounts 16 -> 10, and
    # 25 more of the 942 read right marked unsure; studies/number_study.py --layouts touching,
    # against --set TWO_BELOW=0).
    "TWO_WIDE": 0.8,
    "TWO_BELOW": 0.02,
    # A piece cut from a mark and under this share of the mark's height marks the number
    # unsure: it may be part of one digit, such as a loop of a slanted 8 read as a 0 (in 1,000
    # separated numbers enlarged 4x, silent miscounts 3 -> 1, none read right newly unsure; with
    # a touching pair, 13 more of 935 read right marked unsure; 0.6 caught one of the two;
    # studies/number_study.py against --set SHORT_CUT=0).
    "SHORT_CUT": 0.7,
    # A piece keeps the faint ink (under 0.5) that reaches its strokes, but none that comes
    # within REACH_HALO // 2 pixels of another stroke: the light loop of a 9 beside bold digits
    # stays the 9's, the rim of a touching neighbour stays the neighbour's (segment.piece_ink;
    # studies/number_study.py: separated numbers enlarged 4x read 98.1% whole, 97.5% without
    # the faint ink, with the touching and broken layouts not lower).
    "REACH_HALO": 5,
}

# When an answer is marked unsure (predict, the API and the page); studies/README.md has the
# measurements they were chosen from (`studies/unsure_study.py`).
UNSURE = {
    "BELOW": 0.85,  # calibrated probability of the answer under this (with a check model: the
    # mean of both models' probabilities for it)
    "MAX_MARKS": 4,  # an image read as one digit with more separate marks than this
    # (1-3 in 99.5% of MNIST test and Semeion digits)
}
