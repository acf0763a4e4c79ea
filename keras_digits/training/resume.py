"""Resuming a killed training run: the callbacks that keep its state whole, and the resume point.

A run in progress keeps everything in `saved_models/<dataset>/.<model>.work/`: BackupAndRestore's
weights and epoch counter, the best checkpoint so far, the history and TensorBoard logs. Keras
writes the first two in place, so a kill -9 mid-write used to leave a file that broke the resume;
here each is written beside its target and renamed. On a resume the backup decides the epoch,
and history rows past it (an epoch logged just before the kill) are dropped so it runs again.

Imports Keras at module level: import it only where training starts.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras

from keras_digits.core import artifacts, atomic
from keras_digits.training import runtime


class EpochTimer(keras.callbacks.Callback):
    """Adds `epoch_seconds` to the logs so the history CSV keeps train time across resumes."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose patience counter survives a resume, read from the history."""

    def __init__(self, history_rows: list[dict[str, float]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.history_rows = history_rows

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        scores = [row.get("val_accuracy", 0.0) for row in self.history_rows]
        if scores:
            best_index = max(range(len(scores)), key=scores.__getitem__)
            self.best = scores[best_index]
            self.wait = len(scores) - 1 - best_index


class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that writes beside the target and renames: a kill never leaves a
    truncated best.keras."""

    def __init__(self, work: Path, **kwargs) -> None:
        super().__init__(str(work / "incoming.keras"), **kwargs)
        self.best_path = work / "best.keras"

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        incoming = Path(self.filepath)
        if incoming.exists():
            os.replace(incoming, self.best_path)


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """Swaps the optimizer's moving average of the weights in for validation and at each
    epoch's end, so the checkpoint and the backup keep the average. A backup therefore holds the
    average in the model and the raw weights in the optimizer; `resumed` says training starts
    from one, so the next epoch swaps them back and carries on exactly."""

    def __init__(self, resumed: bool) -> None:
        super().__init__(swap_on_epoch=True)
        self.resumed = resumed

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._ema_weights_in_model = self.resumed


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose weights and epoch counter are each replaced atomically."""

    def _save_model(self) -> None:
        os.makedirs(self.backup_dir, exist_ok=True)
        incoming = os.path.join(self.backup_dir, "incoming.weights.h5")
        self.model.save_weights(incoming, overwrite=True)
        os.replace(incoming, self._weights_path)
        atomic.write_json(Path(self._training_metadata_path),
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen})


def backup_epoch(work: Path) -> int:
    """Epochs finished according to BackupAndRestore's state in `work` (0 if none)."""
    try:
        return int(json.loads((work / "backup" / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def resume_point(work: Path) -> tuple[int, list[dict[str, float]]]:
    """The epoch to resume from and the history rows before it (later rows are dropped)."""
    work.mkdir(parents=True, exist_ok=True)
    epoch = backup_epoch(work)
    rows = [r for r in artifacts.read_history(work / "history.csv") if r["epoch"] < epoch]
    artifacts.write_history(work / "history.csv", rows)
    return epoch, rows


def callbacks(work: Path, patience: int, history_rows: list[dict[str, float]],
              averaged: bool = False) -> list:
    """Timing, best-epoch checkpoint, early stopping, history, TensorBoard and the backup.

    `averaged`: the optimizer keeps a moving average of the weights, swapped in first.
    """
    best_so_far = max((row.get("val_accuracy", 0.0) for row in history_rows), default=None)
    logs = ([keras.callbacks.TensorBoard(log_dir=str(work / "logs"), profile_batch=0)]
            if runtime.has_tensorflow() else [])  # Keras writes its logs with tf.summary
    swap = [AveragedWeights(resumed=backup_epoch(work) > 0)] if averaged else []
    return [
        *swap,
        EpochTimer(),
        AtomicCheckpoint(work, monitor="val_accuracy", mode="max", save_best_only=True,
                         initial_value_threshold=best_so_far),
        ResumableEarlyStopping(history_rows, monitor="val_accuracy", mode="max",
                               patience=patience, restore_best_weights=True),
        keras.callbacks.CSVLogger(str(work / "history.csv"), append=True),
        *logs,
        AtomicBackupAndRestore(backup_dir=str(work / "backup")),
    ]
