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
import sys
import time
from dataclasses import replace
from pathlib import Path

from keras_digits import artifacts, atomic, calibrate, cluster, data, pipeline, runtime, views
from keras_digits.cli import (
    Parser,
    UserError,
    add_model_arguments,
    expand_models,
    positive_float,
    positive_int,
    run_cli,
    share,
)
from keras_digits.plan import TrainConfig, build_compiled


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

    from keras_digits import models

    keras.mixed_precision.set_global_policy(precision)
    try:
        published = models.create_model(config.model, dataset=config.dataset, inference=True,
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
    arrays = data.load_arrays(config.dataset, config.data_dir)
    splits = data.split(arrays, config.limit)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    plan = build_compiled(config, len(splits.train[0]), strategy, distribution)
    model, batch_size = plan.model, plan.batch_size
    # JAX on one device takes numpy arrays faster than tf.data (and needs no TensorFlow); a
    # distribution shards tf.data batches between processes.
    alternate = views.predict_view(splits.train[0]) if plan.predict_view else None
    feeds = pipeline.feeds(splits, batch_size, config.seed,
                           devices=plan.replicas if distributed else 0,
                           arrays=not distributed and keras.backend.backend() == "jax",
                           alternate=alternate, share=plan.predict_view, mixup=plan.mixup)

    from keras_digits import resume

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
            model = build_compiled(config, len(splits.train[0])).model
            model.set_weights(trained)
        weights_sha256 = cluster.weights_digest(model.get_weights())
        if distributed:
            cluster.agree_on_weights(weights_sha256)
    test_loss, test_accuracy = model.evaluate(**feeds.test, verbose=0)
    rows = artifacts.read_history(work / "history.csv")
    best = max(rows, key=lambda r: r.get("val_accuracy", 0.0), default={})
    seconds = sum(r.get("epoch_seconds", 0.0) for r in rows)
    metrics = {
        "model": config.model,
        "dataset": config.dataset,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "best_val_accuracy": best.get("val_accuracy", 0.0),
        "best_epoch": int(best["epoch"]) + 1 if best else 0,
        "epochs_run": len(rows),
        "train_seconds": round(seconds, 2),
        # Training images per second of epoch time (which includes each epoch's validation).
        "images_per_second": round(len(splits.train[0]) * len(rows) / seconds) if seconds else 0,
        "parameters": int(model.count_params()),
        "precision": plan.precision,
        "jit_compile": plan.jit,
        "seed": config.seed,
        "deterministic": config.deterministic,
        "batch_size": batch_size,
        "strategy": runtime.strategy_name(strategy) if strategy is not None else "none",
        "distribution": type(distribution).__name__ if distributed else "none",
        "processes": cluster.process_count() if distributed else 1,
        "replicas": plan.replicas,
        "weights_sha256": weights_sha256,
        "learning_rate": plan.learning_rate,
        "examples": {"train": len(splits.train[0]), "validation": len(splits.validation[0]),
                     "test": len(splits.test[0])},
        "limit": config.limit,
        "predict_view": plan.predict_view,
        "data_source": arrays.source,
        "versions": runtime.library_versions(),
        "machine": runtime.machine_description(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    if process:  # another process of a cluster: process 0 publishes the same weights
        _release(work, artifacts.lock_path(out_root, config.dataset, config.model, process))
        return metrics
    # The published file is the calibrated model without its training-only augmentation layers,
    # and deliberately uncompiled: an optimizer without its state (the fresh copy has none) makes
    # `keras.models.load_model` warn, and whoever fine-tunes picks their own optimizer anyway.
    calibration = calibrate.fit(model, splits)
    model = _inference_copy(model, config, plan.precision, calibration["temperature"])
    with atomic.atomic_path(final) as staging:  # the folder appears whole or not at all
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
    _release(work, artifacts.lock_path(out_root, config.dataset, config.model))
    return metrics


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
    parser.add_argument("--strategy", choices=runtime.STRATEGIES, default="auto",
                        help="TensorFlow backend: one device, or mirrored over all local GPUs "
                             "(or --cpu-devices); --batch-size is per replica. For several "
                             "processes or hosts use the JAX backend and --distribute")
    parser.add_argument("--cpu-devices", type=positive_int,
                        help="split the CPU into N logical devices (try mirrored or "
                             "data-parallel without GPUs)")
    cluster.add_arguments(parser)
    parser.add_argument("--data-dir", help=f"folder with the IDX files (or ${data.DATA_DIR_ENV})")
    parser.add_argument("--out-dir", default="saved_models")
    parser.add_argument("--no-report", action="store_true",
                        help="skip the evaluation report after `all`")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    names = expand_models(args.models)
    # Fail fast, before TensorFlow starts: data present and verified, output folder writable.
    data.load_arrays(args.dataset, args.data_dir)
    atomic.require_writable(Path(args.out_dir) / args.dataset)
    runtime.refuse_multiworker(args.strategy)
    spec = cluster.spec_from_args(args)
    base = TrainConfig(
        model=names[0], dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, patience=args.patience, seed=args.seed,
        precision=args.precision, jit=args.jit, limit=args.limit, data_dir=args.data_dir,
        deterministic=args.deterministic, verbose=0 if args.quiet else 1,
        predict_view=args.predict_view,
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
        return 0
    print()
    print(format_table(results))
    if args.models == ["all"] and not args.no_report:
        _run_report(args)
    return 0


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


def _run_report(args) -> None:
    from keras_digits import report

    index = report.build_report(args.dataset, Path(args.out_dir), data_dir=args.data_dir)
    print(f"report written: {index}")


if __name__ == "__main__":
    sys.exit(run_cli(main))

