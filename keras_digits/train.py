"""Training stage: `python -m keras_digits.train all|linear|mlp|cnn|alexnet`.

Each model trains with `model.fit` on tf.data pipelines, selects its epoch on the validation split,
is evaluated once on the test set, and lands in `saved_models/<dataset>/<model>/`:

    model.keras     the Keras model (best validation epoch)
    saved_model/    `model.export` SavedModel
    history.csv     per-epoch metrics, including seconds per epoch
    metrics.json    test accuracy and loss, train seconds, epochs, parameters, precision, versions
    logs/           TensorBoard

Work in progress lives in a hidden `.<model>.work/` folder (BackupAndRestore state, the best
checkpoint, the running history), so a killed run resumes from its last finished epoch when the
same command is run again. The final folder is assembled aside and renamed into place, so it is
either complete or absent.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from keras_digits import atomic, data
from keras_digits.classes import DATASET_NAMES
from keras_digits.cli import Parser, UserError, positive_float, positive_int, run_cli

VIDEO_ACCURACY = {"linear": 91.29, "mlp": 92.0, "cnn": 98.6, "alexnet": 99.21}
MODEL_NAMES = ("linear", "mlp", "cnn", "alexnet")  # mirrors the registry without importing Keras


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


def has_gpu() -> bool:
    """Whether the active Keras backend sees a GPU."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_precision(precision: str, gpu: bool) -> str:
    """`auto` means mixed_float16 on a GPU (tensor cores) and float32 on CPU (no fp16 speed-up)."""
    if precision == "auto":
        return "mixed_float16" if gpu else "float32"
    return {"mixed": "mixed_float16", "float32": "float32"}[precision]


def resolve_jit(jit: str, gpu: bool) -> bool:
    """XLA pays on a GPU; on CPU it made the CNN 3x slower here (see docs/RESULTS.md)."""
    if jit == "auto":
        return gpu
    return jit == "on"


STRATEGIES = ("auto", "one", "mirrored", "multiworker")


def split_cpu(devices: int) -> None:
    """Show the CPU as several logical devices, so distributed training runs without GPUs."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)])


def cluster_workers() -> int:
    """How many workers TF_CONFIG lists (0 when it is not set)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return 0
    try:
        return len(json.loads(raw)["cluster"]["worker"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"TF_CONFIG is not a valid cluster description ({exc}); set it to "
                        '{"cluster": {"worker": ["host:port", ...]}, '
                        '"task": {"type": "worker", "index": N}} or unset it') from None


def make_strategy(name: str):
    """The tf.distribute strategy for `--strategy`; global batch = per-replica batch x replicas.

    auto: several GPUs -> mirrored, else one device. mirrored: every local GPU, or every logical
    CPU device when there is no GPU (see --cpu-devices). multiworker is refused: Keras 3.15's
    `model.fit` cannot train under MultiWorkerMirroredStrategy (keras-team/keras#20585; measured
    here: its first step fails reducing the scalar metrics across workers).
    """
    refuse_multiworker(name)
    import tensorflow as tf

    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "one"
    if name == "one":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def refuse_multiworker(name: str) -> None:
    """Stop before TensorFlow starts when the run would need MultiWorkerMirroredStrategy."""
    if name == "multiworker" or (name == "auto" and cluster_workers() > 1):
        raise UserError(f"multi-worker training is not available: Keras {version('keras')} "
                        "model.fit fails under MultiWorkerMirroredStrategy "
                        "(keras-team/keras#20585); train on one machine with --strategy "
                        "mirrored (all its GPUs) and unset TF_CONFIG")


def strategy_name(strategy) -> str:
    return type(strategy).__name__.removeprefix("_")


def library_versions() -> dict[str, str]:
    import keras
    import numpy as np

    versions = {"python": platform.python_version(), "keras": keras.__version__,
                "numpy": np.__version__, "backend": keras.backend.backend()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return versions


def machine_description() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpu_count": os.cpu_count()}


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of a CSVLogger file, one per epoch; a repeated epoch (after a resume) keeps its last."""
    if not path.is_file():
        return []
    by_epoch: dict[int, dict[str, float]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                parsed = {k: float(v) for k, v in row.items() if k and v not in (None, "")}
            except ValueError:
                continue  # a half-written last line from a killed run
            if "epoch" in parsed:
                by_epoch[int(parsed["epoch"])] = parsed
    return [by_epoch[e] for e in sorted(by_epoch)]


def backup_epoch(work: Path) -> int:
    """Epochs finished according to BackupAndRestore's state in `work` (0 if none)."""
    try:
        return int(json.loads((work / "backup" / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    """Rewrite a history CSV in CSVLogger's column order (none at all for no rows)."""
    if not rows:
        path.unlink(missing_ok=True)
        return
    keys = sorted({k for row in rows for k in row}, key=lambda k: (k != "epoch", k))
    with atomic.atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (int(v) if k == "epoch" else v) for k, v in row.items()})


def _callbacks(work: Path, patience: int, history_rows: list[dict[str, float]]) -> list:
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Adds `epoch_seconds` to the logs so the history CSV keeps train time across resumes."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is not None:
                logs["epoch_seconds"] = time.perf_counter() - self._start

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
        """EarlyStopping whose patience counter survives a resume, read from the history."""

        def on_train_begin(self, logs: dict | None = None) -> None:
            super().on_train_begin(logs)
            scores = [row.get("val_accuracy", 0.0) for row in history_rows]
            if scores:
                best_index = max(range(len(scores)), key=scores.__getitem__)
                self.best = scores[best_index]
                self.wait = len(scores) - 1 - best_index

    class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
        """ModelCheckpoint that writes beside the target and renames: a kill never leaves a
        truncated best.keras."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            super().on_epoch_end(epoch, logs)
            incoming = Path(self.filepath)
            if incoming.exists():
                os.replace(incoming, work / "best.keras")

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        """BackupAndRestore whose weights and epoch counter are each replaced atomically
        (Keras writes them in place, and a kill -9 mid-write made the resume fail)."""

        def _save_model(self) -> None:
            os.makedirs(self.backup_dir, exist_ok=True)
            incoming = os.path.join(self.backup_dir, "incoming.weights.h5")
            self.model.save_weights(incoming, overwrite=True)
            os.replace(incoming, self._weights_path)
            atomic.write_json(Path(self._training_metadata_path),
                              {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    best_so_far = max((row.get("val_accuracy", 0.0) for row in history_rows), default=None)
    return [
        EpochTimer(),
        AtomicCheckpoint(
            str(work / "incoming.keras"), monitor="val_accuracy", mode="max",
            save_best_only=True, initial_value_threshold=best_so_far,
        ),
        ResumableEarlyStopping(
            monitor="val_accuracy", mode="max", patience=patience, restore_best_weights=True,
        ),
        keras.callbacks.CSVLogger(str(work / "history.csv"), append=True),
        keras.callbacks.TensorBoard(log_dir=str(work / "logs"), profile_batch=0),
        AtomicBackupAndRestore(backup_dir=str(work / "backup")),
    ]


def _compile(model, recipe, lr: float, steps_per_epoch: int, epochs: int, jit: bool) -> None:
    import keras

    warmup = min(steps_per_epoch, max(1, steps_per_epoch * epochs // 10))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10, decay_steps=max(1, steps_per_epoch * epochs - warmup),
        alpha=0.01, warmup_target=lr, warmup_steps=warmup,
    )
    if recipe.weight_decay:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(schedule)
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
    """Check the output folder is writable, sweep leftovers of crashed runs, return paths."""
    base = out_root / dataset
    atomic.require_writable(base)
    atomic.sweep_leftovers(base)
    return base / model, base / f".{model}.work"


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
    gpu = has_gpu()
    precision = resolve_precision(config.precision, gpu)
    jit = resolve_jit(config.jit, gpu)
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


def _inference_copy(model, config: TrainConfig, precision: str):
    """The trained weights in the registry model built without training-only layers."""
    import keras

    from keras_digits import models

    keras.mixed_precision.set_global_policy(precision)
    try:
        published = models.create_model(config.model, dataset=config.dataset, inference=True,
                                         **dict(config.build_options))
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

    work.mkdir(parents=True, exist_ok=True)
    # The backup decides where training resumes; history rows past it (an epoch logged just
    # before a kill, whose backup never landed) are dropped and that epoch runs again.
    resume_epoch = backup_epoch(work)
    history_rows = [r for r in read_history(work / "history.csv") if r["epoch"] < resume_epoch]
    write_history(work / "history.csv", history_rows)
    if resume_epoch:
        print(f"resuming {config.model} from epoch {resume_epoch} ({work})", flush=True)
    model.fit(
        train_ds, validation_data=val_ds, epochs=plan.epochs, verbose=config.verbose,
        shuffle=False,
        callbacks=_callbacks(work, plan.patience, history_rows),
    )

    if (work / "best.keras").is_file():
        model.load_weights(work / "best.keras")
    test_loss, test_accuracy = model.evaluate(test_ds, verbose=0)
    rows = read_history(work / "history.csv")
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
        "strategy": strategy_name(strategy) if strategy is not None else "none",
        "replicas": plan.replicas,
        "learning_rate": plan.learning_rate,
        "examples": {"train": len(splits.train[0]), "validation": len(splits.validation[0]),
                     "test": len(splits.test[0])},
        "limit": config.limit,
        "data_source": arrays.source,
        "versions": library_versions(),
        "machine": machine_description(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

    staging = final.with_name(f".{config.model}.staging-{os.getpid()}")
    staging.mkdir()
    # The published file is for inference and fine-tuning anywhere: the model without its
    # training-only augmentation layers (plain Keras loads it) and a plain compile config (the
    # label-smoothing wrapper used in training is not a serialisable Keras loss).
    model = _inference_copy(model, config, plan.precision)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(staging / "model.keras")
    model.export(str(staging / "saved_model"), format="tf_saved_model", verbose=False)
    write_history(staging / "history.csv", rows)
    if (work / "logs").is_dir():
        shutil.copytree(work / "logs", staging / "logs")
    atomic.write_json(staging / "metrics.json", metrics)
    atomic.publish_dir(staging, final)
    shutil.rmtree(work, ignore_errors=True)
    return metrics


def format_table(results: list[dict]) -> str:
    """The comparison table printed at the end of a run (and used by the results document)."""
    header = "| model | parameters | epochs | train time | test accuracy | video |"
    lines = [header, "|---|---:|---:|---:|---:|---:|"]
    for m in results:
        video = VIDEO_ACCURACY.get(m["model"]) if m["dataset"] == "mnist" else None
        lines.append(
            f"| {m['model']} | {m['parameters']:,} | {m['epochs_run']} | "
            f"{m['train_seconds']:.1f} s | {100 * m['test_accuracy']:.2f}% | "
            f"{f'{video:.2f}%' if video else '-'} |"
        )
    return "\n".join(lines)


def add_model_arguments(parser: Parser) -> None:
    """The MODEL... and --dataset arguments shared by train and export."""
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help=f"'all' or one or more of: {', '.join(MODEL_NAMES)}")
    parser.add_argument("--dataset", default="mnist", choices=DATASET_NAMES)


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
    parser.add_argument("--precision", choices=("auto", "float32", "mixed"), default="auto")
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto",
                        help="XLA compilation (auto: on with a GPU only)")
    parser.add_argument("--limit", type=positive_int,
                        help="use at most N images per split, for quick runs")
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto",
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


def expand_models(requested: list[str]) -> list[str]:
    names: list[str] = []
    for name in requested:
        chosen = list(MODEL_NAMES) if name == "all" else [name]
        for model in chosen:
            if model not in MODEL_NAMES:
                raise UserError(f"unknown model {model!r}: choose all or one of "
                                f"{', '.join(MODEL_NAMES)}")
            if model not in names:
                names.append(model)
    return names


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    names = expand_models(args.models)
    # Fail fast, before TensorFlow starts: data present and verified, output folder writable.
    data.load_arrays(args.dataset, args.data_dir)
    atomic.require_writable(Path(args.out_dir) / args.dataset)
    refuse_multiworker(args.strategy)
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
        split_cpu(args.cpu_devices)
    strategy = make_strategy(args.strategy)
    if strategy.num_replicas_in_sync > 1:
        print(f"== {strategy_name(strategy)}: {strategy.num_replicas_in_sync} replicas",
              flush=True)
    return strategy


def _run_report(args) -> None:
    from keras_digits import report

    index = report.build_report(args.dataset, Path(args.out_dir), data_dir=args.data_dir)
    print(f"report written: {index}")


if __name__ == "__main__":
    sys.exit(run_cli(main))

