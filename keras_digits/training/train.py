"""Training stage: `python -m keras_digits.train all|linear|mlp|cnn|alexnet`.

Each model trains with `model.fit` on tf.data pipelines, selects its epoch on the validation split,
is evaluated once on the test set, and lands in `saved_models/<dataset>/<model>/`:

    model.keras     the Keras model (best validation epoch)
    saved_model/    `model.export` SavedModel
    history.csv     per-epoch metrics, including seconds per epoch
    metrics.json    test accuracy and loss, train seconds, epochs, parameters, precision, versions
    calibration.json  the temperature fitted on validation, ECE and NLL before and after
    logs/           TensorBoard

Work in progress lives in a hidden `.<model>.work/` folder (BackupAndRestore state, the best
checkpoint, the running history), so a killed run resumes from its last finished epoch when the
same command is run again. The final folder is assembled aside and renamed into place, so it is
either complete or absent.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from keras_digits.core import artifacts, atomic
from keras_digits.core.cli import (
    Parser,
    UserError,
    add_model_arguments,
    expand_models,
    positive_float,
    positive_int,
    share,
)
from keras_digits.data import datasets, handwriting
from keras_digits.training import calibrate, cluster, input_pipeline, renderings, runtime
from keras_digits.training.compiled import TrainConfig, build_compiled, resolved_recipe


def prepare_output(out_root: Path, dataset: str, model: str,
                   process: int = 0) -> tuple[Path, Path]:
    """Check the output folder is writable, lock it for this model (and process of a cluster),
    sweep leftovers; the final and the work folder."""
    atomic.require_writable(out_root / dataset)
    atomic.claim(artifacts.lock_path(out_root, dataset, model, process),
                 f"training {model} into {out_root}")
    atomic.sweep_leftovers(out_root / dataset)
    return (artifacts.model_dir(out_root, dataset, model),
            artifacts.work_dir(out_root, dataset, model, process))


def _inference_copy(model, config: TrainConfig, precision: str, temperature: float):
    """The trained weights in the registry model built without training-only layers, calibrated."""
    import keras

    from keras_digits.models import registry

    keras.mixed_precision.set_global_policy(precision)
    try:
        published = registry.create_model(config.model, dataset=config.dataset, inference=True,
                                         temperature=temperature, **dict(config.build_options))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    published.set_weights(model.get_weights())
    return published


def train_and_evaluate(config: TrainConfig, out_root: Path | str = "saved_models",
                       strategy=None, distribution=None) -> dict:
    """Train one model on one dataset and publish its artifacts; returns its metrics.

    Under a keras `distribution` every process runs this; process 0 alone publishes, the others
    keep only their own resume state.
    """
    import keras

    distributed = distribution is not None
    process = cluster.process_index() if distributed else 0
    final, work = prepare_output(Path(out_root), config.dataset, config.model, process)
    arrays = datasets.load_arrays(config.dataset, config.data_dir)
    splits = datasets.split(arrays, config.limit)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    written = written_digits(config, len(splits.train[0]))
    plan = build_compiled(config, len(splits.train[0]) + len(written[0]), strategy,
                          distribution)
    feeds = make_feeds(splits, plan, config.seed, distributed, written)
    model, weights_sha256 = fit(plan, feeds, work, config, distributed)
    test_loss, test_accuracy = model.evaluate(**feeds.test, verbose=0)
    rows = artifacts.read_history(work / "history.csv")
    metrics = describe_run(config, plan, splits, rows, {
        "test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
        "parameters": int(model.count_params()), "weights_sha256": weights_sha256,
        "data_source": arrays.source,
        "strategy": runtime.strategy_name(strategy) if strategy is not None else "none",
        "distribution": type(distribution).__name__ if distributed else "none",
        "processes": cluster.process_count() if distributed else 1})
    if process:  # another process of a cluster: process 0 publishes the same weights
        _release(work, artifacts.lock_path(out_root, config.dataset, config.model, process))
        return metrics
    publish(model, config, plan, splits, rows, metrics, work, final)
    _release(work, artifacts.lock_path(out_root, config.dataset, config.model))
    return metrics


def written_digits(config: TrainConfig, mnist_count: int) -> tuple[np.ndarray, np.ndarray]:
    """The handwriting-font digits that make the recipe's share of the training split beside
    `mnist_count` MNIST digits (none for a share of 0)."""
    share = resolved_recipe(config).handwriting
    count = round(share / (1.0 - share) * mnist_count) if share else 0
    if not count:
        return np.zeros((0, 28, 28, 1), np.uint8), np.zeros(0, np.int64)
    return handwriting.training_digits(count, config.seed)


def make_feeds(splits: datasets.Splits, plan, seed: int, distributed: bool,
               written: tuple[np.ndarray, np.ndarray]):
    """The training, validation and test feeds of a run: predict's renderings of the training
    digits swapped in where the recipe asks, the `written` digits beside them. JAX on one
    device takes numpy arrays faster than tf.data (and needs no TensorFlow); a distribution
    shards tf.data batches between processes."""
    import keras

    alternate = renderings.predict_view(splits.train[0]) if plan.predict_view else None
    return input_pipeline.feeds(splits, plan.batch_size, seed,
                                devices=plan.replicas if distributed else 0,
                                arrays=not distributed and keras.backend.backend() == "jax",
                                alternate=alternate, share=plan.predict_view, mixup=plan.mixup,
                                written=written if len(written[0]) else None)


def fit(plan, feeds, work: Path, config: TrainConfig, distributed: bool):
    """Fit from the last finished epoch in `work` (a resumed run goes on where it stopped) and
    return the best validation epoch's model with its weights' SHA-256. In a cluster every
    process agrees on the epoch to resume from and, at the end, on the weights."""
    from keras_digits.training import resume  # Keras: not before the command line is checked

    model = plan.model
    resume_epoch, history_rows = resume.resume_point(work)
    with cluster.lost_peer(distributed):  # the steps that talk to the other processes
        if distributed:
            cluster.agree_on_epoch(resume_epoch, config.model, work.parent)
        if resume_epoch:
            print(f"resuming {config.model} from epoch {resume_epoch} ({work})", flush=True)
        model.fit(**feeds.train, validation_data=feeds.validation, epochs=plan.epochs,
                  verbose=config.verbose,
                  callbacks=resume.callbacks(work, plan.patience, history_rows,
                                             averaged=plan.averaged))
        if (work / "best.keras").is_file():
            model.load_weights(work / "best.keras")
        if distributed:  # evaluate and publish from a one-device copy, in every process
            trained = model.get_weights()
            model = build_compiled(config, plan.train_images).model
            model.set_weights(trained)
        weights_sha256 = cluster.weights_digest(model.get_weights())
        if distributed:
            cluster.agree_on_weights(weights_sha256)
    return model, weights_sha256


def describe_run(config: TrainConfig, plan, splits: datasets.Splits, rows: list[dict],
                 outcome: dict) -> dict:
    """metrics.json: what was trained and how (`config`, and the `plan` that
    `compiled.build_compiled` resolved), the epochs in `rows` (history.csv) and the `outcome`
    measured after training, with this machine's versions and description."""
    best = max(rows, key=lambda r: r.get("val_accuracy", 0.0), default={})
    seconds = sum(r.get("epoch_seconds", 0.0) for r in rows)
    train_images = plan.train_images
    return {
        "model": config.model,
        "dataset": config.dataset,
        "test_accuracy": outcome["test_accuracy"],
        "test_loss": outcome["test_loss"],
        "best_val_accuracy": best.get("val_accuracy", 0.0),
        "best_epoch": int(best["epoch"]) + 1 if best else 0,
        "epochs_run": len(rows),
        "train_seconds": round(seconds, 2),
        # Training images per second of epoch time (which includes each epoch's validation).
        "images_per_second": round(train_images * len(rows) / seconds) if seconds else 0,
        "parameters": outcome["parameters"],
        "precision": plan.precision,
        "jit_compile": plan.jit,
        "seed": config.seed,
        "deterministic": config.deterministic,
        "batch_size": plan.batch_size,
        "strategy": outcome.get("strategy", "none"),
        "distribution": outcome.get("distribution", "none"),
        "processes": outcome.get("processes", 1),
        "replicas": plan.replicas,
        "weights_sha256": outcome["weights_sha256"],
        "learning_rate": plan.learning_rate,
        "examples": {"train": train_images, "validation": len(splits.validation[0]),
                     "test": len(splits.test[0])},
        "limit": config.limit,
        "predict_view": plan.predict_view,
        "handwriting": plan.handwriting,
        "data_source": outcome.get("data_source", ""),
        "versions": runtime.library_versions(),
        "machine": runtime.machine_description(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def publish(model, config: TrainConfig, plan, splits: datasets.Splits, rows: list[dict],
            metrics: dict, work: Path, final: Path) -> None:
    """Calibrate the trained model and write its folder, whole or not at all.

    The published file is the calibrated model without its training-only augmentation layers,
    and deliberately uncompiled: an optimizer without its state (the fresh copy has none) makes
    `keras.models.load_model` warn, and whoever fine-tunes picks their own optimizer anyway.
    """
    calibration = calibrate.fit(model, splits)
    model = _inference_copy(model, config, plan.precision, calibration["temperature"])
    with atomic.atomic_path(final) as staging:
        staging.mkdir()
        model.save(staging / "model.keras")
        if runtime.has_tensorflow():
            model.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
        else:
            print("note: TensorFlow is not installed, so no saved_model/ or TensorBoard logs; "
                  "`export` writes the SavedModel where TensorFlow is", flush=True)
        artifacts.write_history(staging / "history.csv", rows)
        if (work / "logs").is_dir():
            shutil.copytree(work / "logs", staging / "logs")
        atomic.write_json(staging / "metrics.json", metrics)
        atomic.write_json(artifacts.calibration_path(staging), calibration)


def _release(work: Path, lock: Path) -> None:
    """A finished run's resume state goes, then its lock."""
    shutil.rmtree(work, ignore_errors=True)
    lock.unlink(missing_ok=True)


def format_table(results: list[dict]) -> str:
    """The comparison table printed at the end of a run (the report shows the same rows)."""
    return artifacts.markdown_table(artifacts.COMPARISON_COLUMNS,
                                    [artifacts.comparison_row(m) for m in results])


def build_parser() -> Parser:
    parser = Parser(prog="python -m keras_digits.train",
                    description="Train the digit classifiers and save their artifacts.")
    add_model_arguments(parser)
    parser.add_argument("--epochs", type=positive_int, help="maximum epochs (default: per model)")
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--learning-rate", type=positive_float)
    parser.add_argument("--patience", type=positive_int, help="early-stopping patience in epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true",
                        help="TensorFlow op determinism: identical runs for the same seed")
    parser.add_argument("--precision", choices=("auto", "float32", "mixed", "bfloat16"),
                        default="auto")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto",
                        help="XLA compilation (auto: on with a GPU only)")
    parser.add_argument("--limit", type=positive_int,
                        help="use at most N images per split, for quick runs")
    parser.add_argument("--predict-view", type=share, metavar="SHARE",
                        help="share of training digits swapped each epoch for predict's "
                             "rendering of them (default: per model; 0 turns it off)")
    parser.add_argument("--handwriting", type=share, metavar="SHARE",
                        help="share of training digits written in handwriting fonts "
                             "(default: per model; 0 turns it off)")
    parser.add_argument("--strategy", choices=runtime.STRATEGIES, default="auto",
                        help="TensorFlow backend: one device, or mirrored over all local GPUs "
                             "(or --cpu-devices); --batch-size is per replica. For several "
                             "processes or hosts use the JAX backend and --distribute")
    parser.add_argument("--cpu-devices", type=positive_int,
                        help="split the CPU into N logical devices (try mirrored or "
                             "data-parallel without GPUs)")
    cluster.add_arguments(parser)
    parser.add_argument("--data-dir",
                        help=f"folder with the IDX files (or ${datasets.DATA_DIR_ENV})")
    parser.add_argument("--out-dir", default="saved_models")
    parser.add_argument("--no-report", action="store_true",
                        help="skip the evaluation report after `all`")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def train_models(args) -> list[dict] | None:
    """Train the models `args` names, one after another, and print the comparison table; their
    metrics, or None in a data-parallel process other than the first (which publishes)."""
    names = expand_models(args.models)
    # Fail fast, before TensorFlow starts: data present and verified, output folder writable.
    if args.handwriting is not None and args.handwriting >= 1.0:
        raise UserError("--handwriting must be below 1: MNIST's digits stay in the mix")
    if args.handwriting:
        handwriting.usable_faces("train", quiet=True)  # fonts installed, before TensorFlow
    datasets.load_arrays(args.dataset, args.data_dir)
    atomic.require_writable(Path(args.out_dir) / args.dataset)
    runtime.refuse_multiworker(args.strategy)
    spec = cluster.spec_from_args(args)
    base = TrainConfig(
        model=names[0], dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, patience=args.patience, seed=args.seed,
        precision=args.precision, jit=args.jit, limit=args.limit, data_dir=args.data_dir,
        deterministic=args.deterministic, verbose=0 if args.quiet else 1,
        predict_view=args.predict_view, handwriting=args.handwriting,
    )
    strategy, distribution = None, None
    if keras_backend() == "jax":
        # Every process must train the same thing: compare everything but the process id.
        distribution = cluster.start(args, spec, repr((names, replace(base, verbose=0))))
    else:
        strategy = _start_strategy(args)
    results = []
    for name in names:
        print(f"== training {name} on {args.dataset}", flush=True)
        metrics = train_and_evaluate(replace(base, model=name), args.out_dir, strategy,
                                     distribution)
        print(f"== {name}: test accuracy {100 * metrics['test_accuracy']:.2f}% "
              f"in {metrics['train_seconds']:.1f} s (weights sha256 "
              f"{metrics['weights_sha256'][:16]})", flush=True)
        results.append(metrics)
    if spec.process_id:
        print(f"== process {spec.process_id} done; process 0 publishes the artifacts")
        return None
    print()
    print(format_table(results))
    return results


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def _start_strategy(args):
    """The tf.distribute strategy, created first thing as TensorFlow requires."""
    if args.distribute != "none":
        raise UserError("--distribute needs the JAX backend: run with KERAS_BACKEND=jax "
                        "(pip install -r requirements-jax.txt)")
    if args.cpu_devices:
        runtime.split_cpu(args.cpu_devices)
    strategy = runtime.make_strategy(args.strategy)
    if strategy.num_replicas_in_sync > 1:
        print(f"== {runtime.strategy_name(strategy)}: {strategy.num_replicas_in_sync} replicas",
              flush=True)
    return strategy
