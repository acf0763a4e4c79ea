"""Export stage: `python -m keras_digits.export all|<model> --dataset ...`.

For each trained model in `saved_models/<dataset>/<model>/model.keras` this writes

    export/<dataset>/saved_model/<model>/   SavedModel, signature `serving_default`:
                                            pixels (N, 28, 28, 1) float32 0-255 -> probabilities
    export/<dataset>/<model>.onnx           the same function through tf2onnx, dynamic batch
    export/<dataset>/inside/<model>.onnx    the same, with its hidden layers as extra outputs
                                            (deploy/inside.py: what `explain` and the page show)
    export/<dataset>/<model>.int8.onnx      static int8 quantisation calibrated on training images
    export/<dataset>/<model>.tflite         LiteRT float32, and `.int8.tflite` full-integer int8
                                            (see deploy/litert.py)
    export/<dataset>/parity.json            onnxruntime and LiteRT vs Keras on the full test set

and exits non-zero when any parity check fails. Exports are always float32: the model is rebuilt
under the float32 policy and given the trained weights, whatever precision it trained in.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_digits.core import artifacts, atomic, contract
from keras_digits.core.cli import (
    Parser,
    UserError,
    add_model_arguments,
    expand_models,
    positive_int,
)
from keras_digits.core.contract import INPUT_NAME, OUTPUT_NAME
from keras_digits.core.names import class_names
from keras_digits.data import datasets
from keras_digits.deploy import inside, litert
from keras_digits.models.saved import load_trained

OPSET = 17
CALIBRATION_IMAGES = 512


@dataclass(frozen=True)
class ParityLimits:
    """The bar an export must clear on the full test set."""

    accuracy_pp: float = 0.01  # |ONNX accuracy - Keras accuracy| in percentage points
    agreement: float = 0.9999  # fraction of images with the same argmax
    max_abs_prob: float = 1e-4  # largest |probability difference|
    int8_drop_pp: float = 0.3  # int8 accuracy may fall this far below Keras


LIMITS = ParityLimits()
# The parity entries of each exported model, one per format checked against Keras.
FORMATS = ("onnx", "int8", "saved_model", "litert", "litert_int8")


def _serving_function(model):
    import tensorflow as tf

    spec = tf.TensorSpec((None, *contract.INPUT_SHAPE), tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(pixels):
        return {OUTPUT_NAME: model(pixels, training=False)}

    return serve, spec


def export_saved_model(model, final: Path) -> None:
    import keras

    serve, spec = _serving_function(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=[spec])
    with atomic.atomic_path(final) as tmp:
        archive.write_out(str(tmp), verbose=False)


def export_onnx(model, final: Path, name: str, dataset: str,
                classes: tuple[str, ...] | None = None) -> None:
    """The model as ONNX, written atomically; `classes` names its outputs (the dataset's by
    default)."""
    import onnx
    import tf2onnx

    serve, spec = _serving_function(model)
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=[spec], opset=OPSET)
    onnx.helper.set_model_props(proto, {
        contract.MODEL_KEY: name,
        contract.DATASET_KEY: dataset,
        contract.CLASSES_KEY: "|".join(classes or class_names(dataset)),
        contract.INPUT_KEY: contract.INPUT_DESCRIPTION,
    })
    proto.doc_string = f"keras_digits {name} trained on {dataset}"
    onnx.checker.check_model(proto)
    with atomic.atomic_path(final) as tmp:
        onnx.save(proto, str(tmp))


class _Calibration:
    """Feeds training images (never test images) to the int8 calibrator."""

    def __init__(self, images: np.ndarray, batch: int = 64) -> None:
        self._batches = iter([images[i:i + batch].astype(np.float32)
                              for i in range(0, len(images), batch)])

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}

    def rewind(self) -> None:  # pragma: no cover - unused by the MinMax calibrator
        pass


def export_int8(fp32_path: Path, final: Path, calibration: np.ndarray) -> None:
    """Static QDQ quantisation of convolutions, matrix products and the data movement between
    them; the softmax stays float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = atomic.temp_name(final.with_suffix(".prep.onnx"))
    try:
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        with atomic.atomic_path(final) as tmp:
            quantize_static(
                str(prepared), str(tmp), _Calibration(calibration),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                # Pooling and reshaping in int8 too: otherwise every Conv output is converted
                # back to float and again to int8, and the small CNN ran slower than fp32.
                op_types_to_quantize=["Conv", "MatMul", "Gemm", "MaxPool", "Reshape",
                                      "Transpose", "Relu"],
                calibrate_method=CalibrationMethod.MinMax,
            )
    finally:
        prepared.unlink(missing_ok=True)


def onnx_session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_runner(path: Path, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a batch of pixels to probabilities through one onnxruntime session."""
    session = onnx_session(path, threads)
    return lambda images: session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]


def run_onnx(path: Path, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    predict = onnx_runner(path)
    return np.concatenate([predict(images[i:i + batch]) for i in range(0, len(images), batch)])


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy of both, argmax agreement and the largest probability difference."""
    ref_pred, cand_pred = reference.argmax(1), candidate.argmax(1)
    return {
        "reference_accuracy": float((ref_pred == labels).mean()),
        "accuracy": float((cand_pred == labels).mean()),
        "agreement": float((ref_pred == cand_pred).mean()),
        "disagreements": int((ref_pred != cand_pred).sum()),
        "images": len(labels),
        "max_abs_prob_diff": float(np.abs(reference - candidate).max()),
    }


def fp32_passes(result: dict) -> bool:
    return (abs(result["accuracy"] - result["reference_accuracy"]) * 100 <= LIMITS.accuracy_pp
            and result["agreement"] >= LIMITS.agreement
            and result["max_abs_prob_diff"] <= LIMITS.max_abs_prob)


def int8_passes(result: dict) -> bool:
    """At most `int8_drop_pp` lost; on a subset (`--limit`) where one image is worth more than
    that, one image: accuracy moves in whole images, and on 200 a single flip is 0.5 pp."""
    allowed = max(LIMITS.int8_drop_pp, 100 / result["images"])
    return (result["reference_accuracy"] - result["accuracy"]) * 100 <= allowed + 1e-9


def export_model(name: str, dataset: str, models_dir: Path, out_dir: Path,
                 arrays: datasets.Arrays, limit: int | None = None) -> dict:
    """Export one model in every format and measure its parity; returns its parity entry.

    `out_dir` is the export root: the files land in `<out_dir>/<dataset>/`.
    """
    model = load_trained(
        artifacts.model_dir(models_dir, dataset, name) / "model.keras", name, dataset)
    onnx_path = artifacts.onnx_path(out_dir, dataset, name)
    int8_path = artifacts.onnx_path(out_dir, dataset, name, int8=True)
    litert_paths = {int8: artifacts.litert_path(out_dir, dataset, name, int8=int8)
                    for int8 in (False, True)}
    saved_model_path = artifacts.saved_model_path(out_dir, dataset, name)
    saved_model_path.parent.mkdir(parents=True, exist_ok=True)

    calibration = arrays.train_images[:CALIBRATION_IMAGES]
    start = time.perf_counter()
    export_saved_model(model, saved_model_path)
    export_onnx(model, onnx_path, name, dataset)
    inside_path = inside.write_inside(onnx_path)
    export_int8(onnx_path, int8_path, calibration)
    litert.export_litert(model, litert_paths[False])
    litert.export_litert(model, litert_paths[True], calibration)
    export_seconds = time.perf_counter() - start

    images = arrays.test_images[:limit].astype(np.float32)
    labels = arrays.test_labels[:limit]
    reference = np.asarray(model.predict(images, batch_size=500, verbose=0))
    saved = _run_saved_model(saved_model_path, images)
    fp32 = compare(reference, run_onnx(onnx_path, images), labels)
    int8 = compare(reference, run_onnx(int8_path, images), labels)
    within = compare(reference, run_onnx(inside_path, images), labels)
    sm = compare(reference, saved, labels)
    lite = {int8: compare(reference, litert.run_litert(path, images), labels)
            for int8, path in litert_paths.items()}
    entry = {
        "model": name,
        "dataset": dataset,
        "test_images": len(images),
        "keras_accuracy": fp32["reference_accuracy"],
        "onnx": fp32 | {"path": str(onnx_path), "bytes": onnx_path.stat().st_size,
                        "passed": fp32_passes(fp32)},
        "int8": int8 | {"path": str(int8_path), "bytes": int8_path.stat().st_size,
                        "passed": int8_passes(int8)},
        "saved_model": sm | {"path": str(saved_model_path), "passed": fp32_passes(sm)},
        "litert": lite[False] | {"path": str(litert_paths[False]),
                                 "bytes": litert_paths[False].stat().st_size,
                                 "passed": fp32_passes(lite[False])},
        "litert_int8": lite[True] | {"path": str(litert_paths[True]),
                                     "bytes": litert_paths[True].stat().st_size,
                                     "passed": int8_passes(lite[True])},
        "inside": within | {"path": str(inside_path), "passed": fp32_passes(within)},
        "opset": OPSET,
        "export_seconds": round(export_seconds, 2),
    }
    entry["passed"] = all(entry[k]["passed"] for k in (*FORMATS, "inside"))
    return entry


def _run_saved_model(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return np.concatenate([serve(pixels=tf.constant(images[i:i + 1000]))[OUTPUT_NAME].numpy()
                           for i in range(0, len(images), 1000)])


def format_parity(entries: list[dict]) -> str:
    lines = ["| model | Keras acc | ONNX acc | agreement | max Δp | SavedModel max Δp | "
             "int8 acc | LiteRT acc | LiteRT max Δp | LiteRT int8 acc | ONNX size | int8 size | "
             "LiteRT size | LiteRT int8 size | parity |",
             "|---|" + "---:|" * 13 + "---|"]
    for e in entries:
        lite, lite8 = e.get("litert"), e.get("litert_int8")  # absent in older parity files
        lines.append(
            f"| {e['model']} | {100 * e['keras_accuracy']:.2f}% | "
            f"{100 * e['onnx']['accuracy']:.2f}% | {100 * e['onnx']['agreement']:.2f}% | "
            f"{e['onnx']['max_abs_prob_diff']:.1e} | {e['saved_model']['max_abs_prob_diff']:.1e} | "
            f"{100 * e['int8']['accuracy']:.2f}% | "
            + (f"{100 * lite['accuracy']:.2f}% | {lite['max_abs_prob_diff']:.1e} | "
               f"{100 * lite8['accuracy']:.2f}% | " if lite and lite8 else "– | – | – | ")
            + f"{e['onnx']['bytes'] / 1e6:.2f} MB | {e['int8']['bytes'] / 1e6:.2f} MB | "
            + (f"{lite['bytes'] / 1e6:.2f} MB | {lite8['bytes'] / 1e6:.2f} MB | "
               if lite and lite8 else "– | – | ")
            + f"{'pass' if e['passed'] else 'FAIL'} |")
    return "\n".join(lines)


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.export",
                    description="Export trained models to SavedModel and ONNX and prove parity.")
    add_model_arguments(parser)
    parser.add_argument("--models-dir", default="saved_models",
                        help="where `train` left the models")
    parser.add_argument("--out-dir", default="export")
    parser.add_argument("--data-dir", help="folder with the IDX files")
    parser.add_argument("--limit", type=positive_int,
                        help="check parity on the first N test images only (default: all)")
    parser.add_argument("--report-dir", default="reports",
                        help="where the report is rewritten after the export")
    parser.add_argument("--no-report", action="store_true",
                        help="leave the report as it is")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def export_models(args) -> int:
    """Export the models `args` names, write parity.json and print the parity table; the exit
    code (1 when parity fails)."""
    names = expand_models(args.models)
    models_dir = Path(args.models_dir)
    if args.models == ["all"]:
        names = [n for n in names if artifacts.is_trained(models_dir, args.dataset, n)]
        if not names:
            raise UserError(f"no trained models under {models_dir / args.dataset}; run "
                            f"`python -m keras_digits.train all --dataset {args.dataset}` first")
    arrays = datasets.load_arrays(args.dataset, args.data_dir)
    out_dir = artifacts.export_dir(args.out_dir, args.dataset)
    atomic.require_writable(out_dir)
    atomic.sweep_leftovers(out_dir)
    atomic.sweep_leftovers(out_dir / "saved_model")

    parity_path = artifacts.parity_path(args.out_dir, args.dataset)
    parity = artifacts.read_parity(out_dir)
    entries = []
    for name in names:
        print(f"== exporting {name} ({args.dataset})", flush=True)
        entry = export_model(name, args.dataset, models_dir, Path(args.out_dir), arrays,
                             args.limit)
        parity["models"][name] = entry
        entries.append(entry)
        atomic.write_json(parity_path, parity)
    parity["limits"] = LIMITS.__dict__
    atomic.write_json(parity_path, parity)
    print()
    print(format_parity(entries))
    failed = [e["model"] for e in entries if not e["passed"]]
    if failed:
        print(f"error: parity failed for {', '.join(failed)}; see {parity_path}", file=sys.stderr)
        return 1
    print(f"\nparity holds for {', '.join(names)} on {entries[0]['test_images']} test images "
          f"(details in {parity_path})")
    if args.dataset == "mnist" and not artifacts.verifier_path(out_dir).is_file():
        print("numbers: run `python -m keras_digits.verifier` (about 7 minutes) so that predict "
              "and the page cut touching digits with the one-digit verifier")
    return 0
