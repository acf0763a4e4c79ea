"""What a training run trains with: its settings (`TrainConfig`) and the compiled model with
the settings resolved from the model's recipe (`build_compiled`, returning a `Plan`).

Shared by `train`, `bench` and the race, so benchmarks measure exactly what training runs.
Keras is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from keras_digits.training import cluster, runtime


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
    recipe_options: tuple[tuple[str, Any], ...] = ()  # Recipe overrides (label_smoothing, ...)
    predict_view: float | None = None  # the recipe's share of predict-path renderings
    handwriting: float | None = None  # the recipe's share of handwriting-font digits


def resolved_recipe(config: TrainConfig):
    """The model's recipe for the dataset, with the run's overrides applied."""
    from keras_digits.models import registry

    recipe = replace(registry.get_entry(config.model).recipe_for(config.dataset),
                     **dict(config.recipe_options))
    if config.handwriting is not None:
        recipe = replace(recipe, handwriting=config.handwriting)
    return recipe


def _compile(model, recipe, lr: float, steps_per_epoch: int, epochs: int, jit: bool) -> None:
    import keras

    warmup = min(steps_per_epoch, max(1, steps_per_epoch * epochs // 10))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=lr / 10, decay_steps=max(1, steps_per_epoch * epochs - warmup),
        alpha=0.01, warmup_target=lr, warmup_steps=warmup,
    )
    beta_1, beta_2 = recipe.betas
    steps = steps_per_epoch * epochs
    for layer in model.layers:
        # BatchNorm's running statistics, which inference uses, start at mean 0 and variance 1:
        # a short run must not end with them still near those (set before `fit` traces them).
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = averaging_momentum(layer.momentum, steps)
    momentum = averaging_momentum(recipe.ema, steps)
    averaging = {"use_ema": True, "ema_momentum": momentum} if recipe.ema else {}
    if recipe.weight_decay:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay,
                                           beta_1=beta_1, beta_2=beta_2, **averaging)
    else:
        optimizer = keras.optimizers.Adam(schedule, beta_1=beta_1, beta_2=beta_2, **averaging)
    # Weighted, so the zero-weight images that pad a sharded validation set count for nothing.
    loss = _crossentropy(recipe.label_smoothing, mixed=bool(recipe.mixup))
    accuracy = _mixed_accuracy() if recipe.mixup else "accuracy"
    model.compile(optimizer=optimizer, loss=loss, weighted_metrics=[accuracy], jit_compile=jit)


def averaging_momentum(momentum: float, steps: int) -> float:
    """A moving average's momentum (of the weights, of BatchNorm's statistics), shortened so the
    average spans at most a fifth of the run's steps: the average starts at its initial values,
    and in a short run (`--limit`, `--epochs 2`) a long memory would publish little more than
    those. Whole recipes keep their momentum."""
    return max(0.0, min(momentum, 1.0 - 5.0 / steps))


def _is_mixed(y_true) -> bool:
    """Mixup's labels are rows of (label a, label b, weight of a); plain labels one number each."""
    return len(y_true.shape) == 2 and y_true.shape[-1] == 3


def _targets(y_true, classes: int):
    """One-hot targets of plain labels, or mixup's blend of its two labels."""
    import keras

    if not _is_mixed(y_true):
        return keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"),
                                 classes)
    first, second = (keras.ops.one_hot(keras.ops.cast(y_true[:, i], "int32"), classes)
                     for i in (0, 1))
    weight = keras.ops.cast(y_true[:, 2:], "float32")
    return first * weight + second * (1.0 - weight)


def _mixed_accuracy():
    """Accuracy against the main label of mixup's training rows and the plain validation
    labels alike (Keras's "accuracy" settles on one label shape for both)."""
    import keras

    def accuracy(y_true, y_pred):
        labels = y_true[:, 0] if _is_mixed(y_true) else keras.ops.reshape(y_true, (-1,))
        guesses = keras.ops.argmax(y_pred, axis=-1)
        return keras.ops.cast(keras.ops.equal(guesses, keras.ops.cast(labels, guesses.dtype)),
                              "float32")

    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")


def _crossentropy(smoothing: float, mixed: bool = False):
    """Sparse cross-entropy, with label smoothing and mixup's blended labels when asked (Keras's
    sparse loss has neither), averaged over the batch's sample weights rather than its length."""
    import keras

    reduction = "mean_with_sample_weight"
    if not smoothing and not mixed:
        return keras.losses.SparseCategoricalCrossentropy(reduction=reduction)

    class SmoothedSparseCrossentropy(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return keras.losses.categorical_crossentropy(_targets(y_true, y_pred.shape[-1]),
                                                         y_pred, label_smoothing=smoothing)

    return SmoothedSparseCrossentropy(name="smoothed_crossentropy", reduction=reduction)


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
    predict_view: float = 0.0  # share of training digits swapped for predict's rendering
    handwriting: float = 0.0  # share of training digits written in handwriting fonts
    averaged: bool = False  # the optimizer keeps a moving average of the weights
    mixup: float = 0.0  # mixup's Beta parameter; the training feed blends digits when set
    train_images: int = 0  # the training images the schedule was laid out for


def build_compiled(config: TrainConfig, n_train: int, strategy=None,
                   distribution=None) -> Plan:
    """Create the registry model under the right precision and compile it with its recipe.

    Shared by `train` and `bench`, so benchmarks measure exactly what training runs. Under a
    tf.distribute `strategy` or a keras `distribution` the model is built in its scope and the
    recipe's batch size is per replica (per device).
    """
    import contextlib

    import keras

    from keras_digits.models import registry

    recipe = resolved_recipe(config)
    epochs = config.epochs or recipe.epochs
    replicas = (strategy.num_replicas_in_sync if strategy is not None
                else cluster.device_count(distribution) if distribution is not None else 1)
    scope = (strategy or distribution).scope() if (strategy or distribution) else None
    batch_size = (config.batch_size or recipe.batch_size) * replicas
    gpu = runtime.has_gpu()
    precision = runtime.resolve_precision(config.precision, gpu, recipe.bfloat16_on_cpu)
    jit = runtime.resolve_jit(config.jit, gpu, keras.backend.backend())
    learning_rate = config.learning_rate or recipe.learning_rate
    keras.mixed_precision.set_global_policy(precision)
    try:
        with scope or contextlib.nullcontext():
            model = registry.create_model(config.model, dataset=config.dataset,
                                        **dict(config.build_options))
            _compile(model, recipe, learning_rate, -(-n_train // batch_size), epochs, jit)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return Plan(model=model, epochs=epochs, batch_size=batch_size,
                patience=config.patience or recipe.patience, learning_rate=learning_rate,
                precision=precision, jit=jit, replicas=replicas,
                predict_view=(recipe.predict_view if config.predict_view is None
                              else config.predict_view),
                handwriting=recipe.handwriting, averaged=bool(recipe.ema), mixup=recipe.mixup,
                train_images=n_train)
