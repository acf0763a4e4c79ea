"""The Python API: `DigitReader("cnn").read("photo.jpg")`, onnxruntime only (no TensorFlow).

    from keras_digits import DigitReader
    reader = DigitReader("cnn")                   # export/mnist/cnn.onnx, or a path to any export
    reading = reader.read("digit.png")            # one digit: label, probability, unsure, pixels
    number = reader.read_number("house.jpg")      # a written number: number.text == "2026"

`predict`, `evaluate` and `serve` are built on it, so the command line, the report and the API
read an image the same way. Probabilities are calibrated (the exports carry the temperature that
`calibrate` fitted); an answer is `unsure` when its probability is below `UNSURE["BELOW"]` (with
a second, check model: the two models' mean probability for it), or when an image read as one
digit holds more separate marks than a digit has (contract.UNSURE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from keras_digits.core import artifacts
from keras_digits.core.cli import UserError
from keras_digits.core.contract import CLASSES_KEY, INPUT_SHAPE, THUMBNAIL_POLARITY, UNSURE
from keras_digits.core.names import class_names
from keras_digits.imaging import decode, find_ink, normalize, segment, strokes

Source = str | Path | np.ndarray | bytes  # a file, an encoded file's bytes, or pixels


def _session(path: Path, failure: str, hint: str):
    """An onnxruntime CPU session of `path`; a file it cannot load is one UserError line."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception classes
        raise UserError(f"{failure} ({type(exc).__name__}); {hint}") from None


class OnnxClassifier:
    """An exported model checked for the shape contract: (N, 28, 28, 1) pixels -> (N, C)."""

    def __init__(self, path: Path, dataset: str | None = None) -> None:
        if not path.is_file():
            raise UserError(f"model file {path} does not exist; run "
                            "`python -m keras_digits.export all` first or pass --model PATH")
        self.session = _session(path, f"{path} is not a loadable ONNX model",
                                "pass a .onnx file written by `keras_digits.export`")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape) if len(inputs) == 1 else None
        if shape is None or len(shape) != 4 or shape[1:] != list(INPUT_SHAPE):
            raise UserError(f"{path} expects input {shape}, not (N, 28, 28, 1) pixels; "
                            "pass a model exported by `keras_digits.export`")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        metadata = self.session.get_modelmeta().custom_metadata_map
        if CLASSES_KEY in metadata:
            self.classes = tuple(metadata[CLASSES_KEY].split("|"))
        else:
            self.classes = class_names(dataset or "mnist")
        out_shape = outputs[0].shape
        if len(out_shape) != 2 or out_shape[1] != len(self.classes):
            raise UserError(f"{path} outputs {out_shape}, not one probability per class; "
                            "pass a model exported by `keras_digits.export`")

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: pixels})[0]


class OnnxVerifier:
    """The one-digit verifier (`keras_digits.verifier`): (N, 28, 28, 1) pixels -> (N,) the
    probability that each piece is one whole digit."""

    def __init__(self, path: Path) -> None:
        hint = "run `python -m keras_digits.verifier` to make it again"
        self.session = _session(
            path, f"the one-digit verifier {path} is not a loadable ONNX model", hint)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if (len(inputs) != 1 or list(inputs[0].shape)[1:] != list(INPUT_SHAPE)
                or list(outputs[0].shape)[1:] != [1]):
            raise UserError(f"{path} is not a one-digit verifier (input {inputs[0].shape}, "
                            f"output {outputs[0].shape}); {hint}")
        self.input_name, self.output_name = inputs[0].name, outputs[0].name

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: pixels})[0][:, 0]


def surest(classifier, candidates: list[list[np.ndarray]]) -> list[int]:
    """For each item, which candidate input (28x28 pixels) to read: the first, the image's own
    verdict on its paper tone (`find_ink.candidate_inks`), unless the classifier is surer of
    another by more than THUMBNAIL_POLARITY["MARGIN"]. One model call for all items."""
    if not candidates:
        return []
    confidence = classifier(np.stack([p for options in candidates for p in options])).max(axis=1)
    picks, start = [], 0
    for options in candidates:
        scores = confidence[start:start + len(options)]
        best = int(scores.argmax())
        picks.append(best if scores[best] > scores[0] + THUMBNAIL_POLARITY["MARGIN"] else 0)
        start += len(options)
    return picks


def resolve_model_path(model: str | Path, dataset: str, export_dir: str | Path = "export") -> Path:
    """A path as given, or a model name looked up in the export folder."""
    if str(model).endswith(".onnx") or Path(model).exists():
        return Path(model)
    return artifacts.onnx_path(export_dir, dataset, str(model))


@dataclass(frozen=True)
class Reading:
    """One digit read: the answer, its (calibrated) probabilities and what the model saw."""

    label: int
    name: str
    probability: float
    probabilities: np.ndarray
    pixels: np.ndarray  # the (28, 28, 1) input the model saw
    unsure: bool
    reason: str | None = None  # why it is unsure
    # In a number: (left, top, right, bottom) as fractions of the image's width and height.
    box: tuple[float, float, float, float] | None = None

    def top(self, k: int, classes: tuple[str, ...]) -> list[dict]:
        order = np.argsort(-self.probabilities)[:k]
        return [{"label": int(i), "class": classes[i], "probability": float(self.probabilities[i])}
                for i in order]


@dataclass(frozen=True)
class NumberReading:
    """A written number read digit by digit, left to right; `reason` says why the number as a
    whole is not to be trusted (ink left out of its digits), beside each digit's own."""

    digits: list[Reading] = field(default_factory=list)
    reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(d.name for d in self.digits)

    @property
    def unsure(self) -> bool:
        return self.reason is not None or any(d.unsure for d in self.digits)

    @property
    def reasons(self) -> list[str]:
        """Every reason for doubt, the number's first, each once."""
        found = [self.reason] if self.reason else []
        return found + sorted({d.reason for d in self.digits if d.reason} - set(found))


class DigitReader:
    """Reads digits and numbers from image files or numpy arrays with one exported model, and
    optionally a second model (`check`) whose opinion goes into the unsure flag."""

    def __init__(self, model: str | Path = "cnn", dataset: str = "mnist",
                 export_dir: str | Path = "export", check: str | Path | None = None,
                 unsure_below: float = UNSURE["BELOW"]) -> None:
        self.path = resolve_model_path(model, dataset, export_dir)
        self.classifier = OnnxClassifier(self.path, dataset)
        self.classes = self.classifier.classes
        self.checker = None
        if check is not None:
            self.checker = OnnxClassifier(resolve_model_path(check, dataset, export_dir), dataset)
            if self.checker.classes != self.classes:
                raise UserError(f"the check model {check} reads other classes than {model}; "
                                "pass a model of the same dataset")
        self.unsure_below = unsure_below

    @cached_property
    def verifier(self) -> OnnxVerifier | None:
        """The one-digit verifier beside the model (as `keras_digits.verifier` writes it), or
        None: number mode then cuts as before. Loaded on first use, so reading single digits
        never depends on it."""
        path = artifacts.verifier_path(self.path.parent)
        return OnnxVerifier(path) if path.is_file() else None

    def _readings(self, pixels: np.ndarray, boxes: list | None = None,
                  marks: list[int] | None = None,
                  doubts: list[str | None] | None = None) -> list[Reading]:
        """Readings of a batch of (28, 28, 1) inputs; unsure when the answer's probability (the
        mean of both models' with a check model) is below `unsure_below`, when the image held
        more separate marks than one digit has, or for a reason given in `doubts`."""
        probabilities = self.classifier(pixels)
        support = probabilities
        if self.checker is not None:
            support = (probabilities + self.checker(pixels)) / 2
        readings = []
        for i, (image, p) in enumerate(zip(pixels, probabilities, strict=True)):
            best = int(p.argmax())
            reason = None
            if marks and marks[i] > UNSURE["MAX_MARKS"]:
                reason = f"{marks[i]} separate marks, not one digit"
            elif doubts and doubts[i]:
                reason = doubts[i]
            elif support[i, best] < self.unsure_below:
                reason = (f"{'the two models agree' if self.checker else 'confidence'} below "
                          f"{100 * self.unsure_below:.0f}%")
            readings.append(Reading(
                label=best, name=self.classes[best], probability=float(p[best]),
                probabilities=p, pixels=image, unsure=reason is not None, reason=reason,
                box=boxes[i] if boxes else None))
        return readings

    def read(self, image: Source) -> Reading:
        """One digit: the image is taken whole, whatever marks it holds."""
        return self.read_many([image])[0]

    def read_many(self, images: list[Source]) -> list[Reading]:
        """Many single digits in one model call (an error names the image that caused it)."""
        pixels, marks = [], []
        for image in images:  # one image's ink map at a time: a photo's is large
            ink = self._ink(decode.read_gray(image), image)
            pixels.append(normalize.to_pixels(ink))
            marks.append(len(strokes.marks(ink > 0.5)[1]))
        return self._readings(np.stack(pixels), marks=marks)

    def _ink(self, gray: np.ndarray, source: Source) -> np.ndarray:
        """The image's ink map; a thumbnail's paper tone, where its border leaves it open, is
        the one the model reads as a digit."""
        options = find_ink.candidate_inks(gray, source)
        if len(options) == 1:
            return options[0]
        pick = surest(self.classifier, [[normalize.to_pixels(ink) for ink in options]])[0]
        return options[pick]

    def read_number(self, image: Source) -> NumberReading:
        """A number of up to segment.MAX_DIGITS digits, split by its strokes (touching digits are
        cut where both parts score higher than the whole: the model's probability, times the
        one-digit verifier's where it was made)."""
        if self.classes != class_names("mnist"):
            raise UserError(f"{self.path} reads {', '.join(self.classes[:2])}…, not digits; "
                            "read one item at a time with read()")
        gray = decode.read_gray(image)
        ink = self._ink(gray, image)

        def confidence(inks: list[np.ndarray]) -> list[float]:
            pixels = np.stack([normalize.to_pixels(piece) for piece in inks])
            score = self.classifier(pixels).max(axis=1)
            if self.verifier is not None:
                score = score * self.verifier(pixels)
            return score.tolist()

        try:
            pieces = segment.split_number(ink, confidence, verified=self.verifier is not None)
        except ValueError as exc:
            name = "the array" if isinstance(image, np.ndarray) else str(image)
            raise UserError(f"{name} holds {exc}, more than a number of "
                            f"{segment.MAX_DIGITS} digits; crop the image to the number "
                            "(or pass --single for one digit)") from None
        pixels = np.stack([normalize.to_pixels(piece.ink) for piece in pieces])
        missed = segment.left_out(ink, pieces)
        reason = (f"ink left out of the digits (a mark {missed:.0%} of their height): a digit "
                  "may be missing" if missed >= segment.LEFT_OUT_HEIGHT else None)
        return NumberReading(self._readings(
            pixels, [_relative_box(piece.box, gray.shape) for piece in pieces],
            doubts=self._piece_doubts(
                pieces, self.verifier(pixels) if self.verifier is not None else None)), reason)

    @staticmethod
    def _piece_doubts(pieces: list[segment.Piece], whole: np.ndarray | None = None
                      ) -> list[str | None]:
        """Why a piece of a number may not be one digit: it was cut from one mark that scored
        nearly as well whole (a bold 0 cut into a 1 and a 0), it was cut from a mark much taller
        than itself (a loop of a slanted 8 read as a 0), or it is wide and `whole`, the
        verifier's probability that it is one whole digit, is all but nil (two touching
        digits read as one). Each would otherwise be an answer given as sure."""
        doubts: list[str | None] = []
        for i, piece in enumerate(pieces):
            left, top, right, bottom = piece.box
            if piece.cut_doubt >= segment.CLOSE_CUT:
                doubts.append("cut from one mark that reads nearly as well whole: it may be "
                              "one digit")
            elif piece.cut_height < segment.SHORT_CUT:
                doubts.append("cut from a mark much taller than itself: it may be part of one "
                              "digit")
            elif (whole is not None and whole[i] < segment.TWO_BELOW
                  and right - left >= segment.TWO_WIDE * (bottom - top)):
                doubts.append("wide and not like one whole digit: it may be two")
            else:
                doubts.append(None)
        return doubts


def _relative_box(box: tuple[int, int, int, int], shape: tuple[int, ...]
                  ) -> tuple[float, float, float, float]:
    """A box in ink-map pixels (the image plus its paper margin) as fractions of the image."""
    height, width = shape
    margin = find_ink.paper_margin(shape)
    left, top, right, bottom = box
    return tuple(round(float(np.clip(v, 0.0, 1.0)), 4) for v in (
        (left - margin) / width, (top - margin) / height,
        (right - margin) / width, (bottom - margin) / height))
