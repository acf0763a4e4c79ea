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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from keras_digits import artifacts, atomic, calibrate, data, runtime
from keras_digits.cli import (
    Parser,
    UserError,
    add_model_arguments,
    expand_models,
    positive_float,
    positive_int,
    run_cli,
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; `None` means "the model's recipe default"."""

    model: str
    dataset: str = "mnist"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    patience: int | None = None
    seed: int = 0
    precision: str = "auto"
    jit: str = "auto"
    limit: int | None = None
    data_dir: str | None = None
    deterministic: bool = False
    verbose: int = 1
    build_options: tuple[tuple[str, Any], ...] = ()  # builder overrides, for studies


def _compile(model, recipe, lr: float, steps_per_epoch: int, epochs: int, jit: bool) -> None:
    import keras

    warmup = min(steps_per_epoch, max(1, steps_per_epoch * epochs // 10))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10, decay_steps=max(1, steps_per_epoch * epochs - warmup),
        alpha=0.01, warmup_target=lr, warmup_steps=warmup,
    )
    beta_1, beta_2 = recipe.betas
    if recipe.weight_decay:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay,
                                           beta_1=beta_1, beta_2=beta_2)
    else:
        optimizer = keras.optimizers.Adam(schedule, beta_1=beta_1, beta_2=beta_2)
    loss = keras.losses.SparseCategoricalCrossentropy()
    if recipe.label_smoothing:
        loss = _SmoothedSparseCrossentropy(recipe.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=jit)


class _SmoothedSparseCrossentropy:
    """Sparse labels with label smoothing (Keras's sparse loss has no smoothing option)."""

    def __init__(self, smoothing: float) -> None:
        import keras

        self._loss = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)
        self.__name__ = "smoothed_crossentropy"

    def __call__(self, y_true, y_pred):
        import keras

        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"),
                                    keras.ops.shape(y_pred)[-1])
        return self._loss(one_hot, y_pred)


def prepare_output(out_root: Path, dataset: str, model: str) -> tuple[Path, Path]:
    """Check the output folder is writable, lock it for this model, sweep leftovers; paths."""
    atomic.require_writable(out_root / dataset)
    atomic.claim(artifacts.lock_path(out_root, dataset, model), f"training {model} into {out_root}")
    atomic.sweep_leftovers(out_root / dataset)
    return (artifacts.model_dir(out_root, dataset, model),
            artifacts.work_dir(out_root, dataset, model))


@dataclass(frozen=True)
class Plan:
    """A compiled model and the resolved settings it trains with."""

    model: Any
    epochs: int
    batch_size: int
    patience: int
    learning_rate: float
    precision: str
    jit: bool
    replicas: int = 1


def build_compiled(config: TrainConfig, n_train: int, strategy=None) -> Plan:
    """Create the registry model under the right precision and compile it with its recipe.

    Shared by `train` and `bench`, so benchmarks measure exactly what training runs. Under a
    tf.distribute `strategy` the model is built in its scope and the recipe's batch size is per
    replica.
    """
    import contextlib

    import keras

    from keras_digits import models

    recipe = models.get_entry(config.model).recipe_for(config.dataset)
    epochs = config.epochs or recipe.epochs
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    batch_size = (config.batch_size or recipe.batch_size) * replicas
    gpu = runtime.has_gpu()
    precision = runtime.resolve_precision(config.precision, gpu, recipe.bfloat16_on_cpu)
    jit = runtime.resolve_jit(config.jit, gpu)
    learning_rate = config.learning_rate or recipe.learning_rate
    keras.mixed_precision.set_global_policy(precision)
    try:
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = models.create_model(config.model, dataset=config.dataset,
                                        **dict(config.build_options))
            _compile(model, recipe, learning_rate, -(-n_train // batch_size), epochs, jit)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return Plan(model=model, epochs=epochs, batch_size=batch_size,
                patience=config.patience or recipe.patience, learning_rate=learning_rate,
                precision=precision, jit=jit, replicas=replicas)


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
                       strategy=None) -> dict:
    """Train one model on one dataset and publish its artifacts; returns its metrics."""
    import keras

    final, work = prepare_output(Path(out_root), config.dataset, config.model)
    arrays = data.load_arrays(config.dataset, config.data_dir)
    splits = data.split(arrays, config.limit)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    plan = build_compiled(config, len(splits.train[0]), strategy)
    model, batch_size = plan.model, plan.batch_size
    train_ds, val_ds, test_ds = data.make_pipelines(splits, batch_size, config.seed)

    from keras_digits import resume

    resume_epoch, history_rows = resume.resume_point(work)
    if resume_epoch:
        print(f"resuming {config.model} from epoch {resume_epoch} ({work})", flush=True)
    model.fit(train_ds, validation_data=val_ds, epochs=plan.epochs, verbose=config.verbose,
              shuffle=False, callbacks=resume.callbacks(work, plan.patience, history_rows))

    if (work / "best.keras").is_file():
        model.load_weights(work / "best.keras")
    test_loss, test_accuracy = model.evaluate(test_ds, verbose=0)
    rows = artifacts.read_history(work / "history.csv")
    best = max(rows, key=lambda r: r.get("val_accuracy", 0.0), default={})
    metrics = {
        "model": config.model,
        "dataset": config.dataset,
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "best_val_accuracy": best.get("val_accuracy", 0.0),
        "best_epoch": int(best["epoch"]) + 1 if best else 0,
        "epochs_run": len(rows),
        "train_seconds": round(sum(r.get("epoch_seconds", 0.0) for r in rows), 2),
        "parameters": int(model.count_params()),
        "precision": plan.precision,
        "jit_compile": plan.jit,
        "seed": config.seed,
        "deterministic": config.deterministic,
        "batch_size": batch_size,
        "strategy": runtime.strategy_name(strategy) if strategy is not None else "none",
        "replicas": plan.replicas,
        "learning_rate": plan.learning_rate,
        "examples": {"train": len(splits.train[0]), "validation": len(splits.validation[0]),
                     "test": len(splits.test[0])},
        "limit": config.limit,
        "data_source": arrays.source,
        "versions": runtime.library_versions(),
        "machine": runtime.machine_description(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    # The published file is the calibrated model without its training-only augmentation layers,
    # and deliberately uncompiled: an optimizer without its state (the fresh copy has none) makes
    # `keras.models.load_model` warn, and whoever fine-tunes picks their own optimizer anyway.
    calibration = calibrate.fit(model, splits)
    model = _inference_copy(model, config, plan.precision, calibration["temperature"])
    with atomic.atomic_path(final) as staging:  # the folder appears whole or not at all
        staging.mkdir()
        model.save(staging / "model.keras")
        model.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
        artifacts.write_history(staging / "history.csv", rows)
        if (work / "logs").is_dir():
            shutil.copytree(work / "logs", staging / "logs")
        atomic.write_json(staging / "metrics.json", metrics)
        atomic.write_json(artifacts.calibration_path(staging), calibration)
    shutil.rmtree(work, ignore_errors=True)
    artifacts.lock_path(out_root, config.dataset, config.model).unlink(missing_ok=True)
    return metrics


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
    parser.add_argument("--strategy", choices=runtime.STRATEGIES, default="auto",
                        help="tf.distribute: one device, or mirrored over all local GPUs (or "
                             "--cpu-devices); --batch-size is per replica. multiworker is refused "
                             "until Keras fixes keras-team/keras#20585")
    parser.add_argument("--cpu-devices", type=positive_int,
                        help="split the CPU into N logical devices (try mirrored without GPUs)")
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
    base = TrainConfig(
        model=names[0], dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, patience=args.patience, seed=args.seed,
        precision=args.precision, jit=args.jit, limit=args.limit, data_dir=args.data_dir,
        deterministic=args.deterministic, verbose=0 if args.quiet else 1,
    )
    strategy = _start_strategy(args)
    results = []
    for name in names:
        print(f"== training {name} on {args.dataset}", flush=True)
        metrics = train_and_evaluate(replace(base, model=name), args.out_dir, strategy)
        print(f"== {name}: test accuracy {100 * metrics['test_accuracy']:.2f}% "
              f"in {metrics['train_seconds']:.1f} s", flush=True)
        results.append(metrics)
    print()
    print(format_table(results))
    if args.models == ["all"] and not args.no_report:
        _run_report(args)
    return 0


def _start_strategy(args):
    """The distribution strategy, created first thing as MultiWorkerMirroredStrategy requires;
    None on the JAX backend, which has no tf.distribute."""
    import keras

    if keras.backend.backend() != "tensorflow":
        if args.strategy not in ("auto", "one") or args.cpu_devices:
            raise UserError("--strategy and --cpu-devices need the TensorFlow backend; unset "
                            "KERAS_BACKEND or use --strategy one")
        return None
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

