"""The report's figures: confusion matrices, the most confident mistakes, learning curves and
reliability diagrams, drawn with matplotlib (imported on first use, without a display).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_digits.models.calibration import expected_calibration_error, reliability

MIN_SHOWN = 10  # answers a bin needs to be drawn in a reliability diagram
GALLERY_SIZE = 40  # the most confident mistakes shown per model


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: np.ndarray, classes: tuple[str, ...], title: str, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    # Off-diagonal cells are what matter; a log scale keeps them visible beside the large diagonal.
    shown = np.log1p(matrix)
    image = ax.imshow(shown, cmap="Blues")
    threshold = shown.max() * 0.6
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > threshold else "black",
                    fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(len(classes)), classes, rotation=45 if len(classes[0]) > 2 else 0,
                  ha="right" if len(classes[0]) > 2 else "center")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    cbar = fig.colorbar(image, ax=ax, fraction=0.046)
    cbar.set_label("log(1 + count)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_mistakes(images: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                  classes: tuple[str, ...], title: str, path: Path) -> int:
    """The most confident mistakes first; returns how many are shown."""
    plt = _pyplot()
    predictions = probs.argmax(1)
    wrong = np.flatnonzero(predictions != labels)
    wrong = wrong[np.argsort(-probs[wrong, predictions[wrong]])][:GALLERY_SIZE]
    cols = 8
    rows = max(1, -(-len(wrong) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.9 + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[index, ..., 0], cmap="gray_r", vmin=0, vmax=255)
        p = probs[index, predictions[index]]
        ax.set_title(f"{classes[labels[index]]}\n→ {classes[predictions[index]]} "
                     f"({100 * p:.0f}%)", fontsize=8)
    if not len(wrong):
        axes.flat[0].text(0, 0.5, "no mistakes", fontsize=12)
    fig.suptitle(f"{title}: true → predicted (confidence), most confident first", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(wrong)


def plot_curves(histories: dict[str, list[dict]], title: str, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for (name, rows), color in zip(histories.items(), plt.cm.tab10.colors, strict=False):
        epochs = [int(r["epoch"]) + 1 for r in rows]
        for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
            ax.plot(epochs, [r.get(key, np.nan) for r in rows], "--", color=color,
                    label=f"{name} train")
            ax.plot(epochs, [r.get(f"val_{key}", np.nan) for r in rows], "-", color=color,
                    label=f"{name} validation")
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.set_title(f"{key} per epoch")
    # Zoom on where the models end up: one wild first epoch must not flatten every other curve.
    finals = [r for rows in histories.values() for r in rows[-1:]]
    if finals:
        worst_acc = min(min(r.get("accuracy", 1), r.get("val_accuracy", 1)) for r in finals)
        worst_loss = max(max(r.get("loss", 0), r.get("val_loss", 0)) for r in finals)
        axes[0].set_ylim(0, worst_loss * 2.5)
        axes[1].set_ylim(max(0.0, worst_acc - 0.05), 1.0)
        axes[1].set_title("accuracy per epoch (zoomed on the final values)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], title: str,
                     path: Path) -> None:
    """Reliability diagrams, one panel per model: accuracy against confidence per bin for each
    named set of (probabilities, labels), with the diagonal a calibrated model follows (bins of
    fewer than MIN_SHOWN answers are left out: their accuracy is noise)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4 * len(curves), 4.2), squeeze=False)
    for ax, (name, sets) in zip(axes[0], curves.items(), strict=True):
        ax.plot([0, 1], [0, 1], ":", color="grey", linewidth=1)
        for (label, (probabilities, labels)), style in zip(sets.items(), ("o--", "s-", "^-."),
                                                           strict=False):
            rows = [r for r in reliability(probabilities, labels) if r["count"] >= MIN_SHOWN]
            ece = expected_calibration_error(probabilities, labels)
            ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], style,
                    markersize=4, label=f"{label} (ECE {100 * ece:.2f}%)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
