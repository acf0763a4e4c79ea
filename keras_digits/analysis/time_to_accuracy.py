"""The time-to-accuracy race of `bench`: wall seconds of training until the MNIST test accuracy
first reaches each target, over several seeds, against the keras.io "Simple MNIST convnet".

The test set is checked once per epoch with the clock stopped (for this measurement only; model
selection elsewhere never sees the test set). Each contestant trains through `build_compiled`,
exactly as `train` would; the baseline is the keras.io recipe written here from its description.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from keras_digits.core import artifacts
from keras_digits.data import datasets
from keras_digits.training import input_pipeline, renderings, train
from keras_digits.training.compiled import TrainConfig, build_compiled

TARGETS = (0.986, 0.990, 0.995)
# Our contestants: the CNN as trained (handwriting distortions and fonts, the best reader of
# other people's digits), the same network without them on its former 6-epoch recipe, the speed
# variant that trains one epoch, and AlexNet, the one model that reaches 99.5% (slow: opt in).
CONTESTANTS = {"cnn": TrainConfig(model="cnn"),
               "cnn_unaugmented": TrainConfig(model="cnn", epochs=6, predict_view=0.0,
                                              handwriting=0.0,
                                              build_options=(("augmentation", 0.0),)),
               "cnn_fast": TrainConfig(model="cnn_fast"),
               "alexnet": TrainConfig(model="alexnet")}
DEFAULT_CONTESTANTS = ("cnn", "cnn_unaugmented", "cnn_fast")
LABELS = {"baseline": "keras.io convnet", "cnn": "our cnn (as trained)",
          "cnn_unaugmented": "our cnn, no augmentation, 6-epoch recipe",
          "cnn_fast": "our cnn_fast (one-epoch recipe)", "alexnet": "our alexnet (as trained)"}
# Recipes whose schedule ends: raced for their own number of epochs, not `max_epochs`.
SCHEDULED = ("cnn_fast", "alexnet")


def keras_io_convnet():
    """The keras.io "Simple MNIST convnet" baseline, written from its description.

    Conv32-pool-Conv64-pool-dropout-Dense10, Adam, batch 128. Rescaling sits inside the model so
    both contestants get the same raw pixels.
    """
    import keras
    from keras import layers

    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ], name="keras_io_convnet")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit_inputs(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
               predict_view: float = 0.0, written: tuple[np.ndarray, np.ndarray] | None = None):
    """tf.data on the TensorFlow backend (as `train` does), numpy elsewhere; with the recipe's
    share of predict-path renderings swapped in and its `written` digits beside MNIST's, as
    `train` does (both made before the clock)."""
    import keras

    alternate = renderings.predict_view(images) if predict_view else None
    return input_pipeline.train_feed(images, labels, batch_size, seed,
                               arrays=keras.backend.backend() != "tensorflow",
                               alternate=alternate, share=predict_view, written=written)


def run(model, splits: datasets.Splits, batch_size: int, max_epochs: int, seed: int,
        epochs: int | None = None, predict_view: float = 0.0,
        written: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Train epoch by epoch (at most `max_epochs`, or the recipe's own `epochs` when it has a
    schedule that ends); after each, check test accuracy with the clock stopped."""
    x_test, y_test = splits.test
    train_seconds, curve, reached = 0.0, [], {}
    inputs = fit_inputs(*splits.train, batch_size, seed, predict_view, written)
    for epoch in range(min(max_epochs, epochs or max_epochs)):
        start = time.perf_counter()
        model.fit(**inputs, initial_epoch=epoch, epochs=epoch + 1, verbose=0)
        train_seconds += time.perf_counter() - start
        probs = model.predict(x_test, batch_size=1000, verbose=0)
        accuracy = float((np.asarray(probs).argmax(1) == y_test).mean())
        curve.append({"epoch": epoch + 1, "train_seconds": round(train_seconds, 2),
                      "test_accuracy": accuracy})
        for target in TARGETS:
            if accuracy >= target and str(target) not in reached:
                reached[str(target)] = round(train_seconds, 2)
        if all(str(t) in reached for t in TARGETS):
            break
    images = len(splits.train[0]) + (len(written[0]) if written is not None else 0)
    return {"seconds_to": reached, "curve": curve, "train_images": images}


def summarize(runs: list[dict]) -> dict:
    """Mean and spread over seeds: seconds to each target (over the seeds that reached it) and
    the test accuracy after the first and the last epoch."""
    def spread(values: list[float], digits: int) -> dict:
        return {"mean": round(float(np.mean(values)), digits),
                "min": round(float(np.min(values)), digits),
                "max": round(float(np.max(values)), digits)}

    seconds = {str(t): [r["seconds_to"][str(t)] for r in runs if str(t) in r["seconds_to"]]
               for t in TARGETS}
    return {"seeds": len(runs),
            "seconds_to": {t: spread(v, 2) | {"reached": len(v)} for t, v in seconds.items()
                           if v},
            "first_epoch_accuracy": spread([r["curve"][0]["test_accuracy"] for r in runs], 4),
            "final_accuracy": spread([r["curve"][-1]["test_accuracy"] for r in runs], 4),
            "epochs_run": max(len(r["curve"]) for r in runs)}


def race(arrays: datasets.Arrays, limit: int | None, max_epochs: int, seeds: list[int],
         contestants: list[str]) -> dict:
    """Every seed runs the baseline and then each contestant; ratios are of mean seconds."""
    import keras

    splits = datasets.split(arrays, limit)
    n_train = len(splits.train[0])
    runs: dict[str, list[dict]] = {key: [] for key in ["baseline", *contestants]}
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        runs["baseline"].append(run(keras_io_convnet(), splits, 128, max_epochs, seed))
        for key in contestants:
            keras.utils.set_random_seed(seed)
            config = replace(CONTESTANTS[key], seed=seed)
            written = train.written_digits(config, n_train)  # the recipe's handwriting fonts
            plan = build_compiled(config, n_train + len(written[0]))
            runs[key].append(run(plan.model, splits, plan.batch_size, max_epochs, seed,
                                 plan.epochs if key in SCHEDULED else None, plan.predict_view,
                                 written))
        print(f"   seed {seed} done", flush=True)
    results = {key: summarize(key_runs) | {"runs": key_runs} for key, key_runs in runs.items()}
    baseline = results["baseline"]["seconds_to"]
    for key in contestants:
        mine = results[key]["seconds_to"]
        results[key]["speedup_vs_baseline"] = {
            target: round(baseline[target]["mean"] / mine[target]["mean"], 2)
            for target in map(str, TARGETS) if target in baseline and target in mine}
    return {**results, "contestants": contestants, "seeds": seeds, "max_epochs": max_epochs,
            "train_images": n_train, "test_images": len(splits.test[0])}


def to_markdown(tta: dict) -> list[str]:
    """The race as a table: mean (min–max) over seeds; '–' where a target was not reached."""
    def seconds(entry: dict, target: str) -> str:
        found = entry["seconds_to"].get(target)
        if not found:
            return "–"
        text = f"{found['mean']}" if found["min"] == found["max"] else (
            f"{found['mean']} ({found['min']}–{found['max']})")
        return text + ("" if found["reached"] == entry["seeds"] else
                       f", {found['reached']}/{entry['seeds']} seeds")

    def accuracy(spread: dict) -> str:
        return (f"{100 * spread['mean']:.2f}% ({100 * spread['min']:.2f}–"
                f"{100 * spread['max']:.2f})")

    rows = [[LABELS[key], *(seconds(tta[key], str(t)) for t in TARGETS),
             accuracy(tta[key]["first_epoch_accuracy"]), str(tta[key]["epochs_run"]),
             accuracy(tta[key]["final_accuracy"]),
             str(tta[key].get("speedup_vs_baseline", {}).get("0.99", "–"))]
            for key in ["baseline", *tta["contestants"]]]
    return [f"## Time to accuracy (MNIST test set; seeds {tta['seeds']}, at most "
            f"{tta['max_epochs']} epochs; mean (min–max) over seeds)", "", artifacts.markdown_table(
                ("model", "s to 98.6%", "s to 99.0%", "s to 99.5%", "after epoch 1",
                 "epochs run", "final test acc", "99.0% vs baseline"), rows), ""]
