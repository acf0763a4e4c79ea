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
    # A fixed layout: every cell is alike, so measuring all 40 (tight_layout) would be wasted.
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.75 / fig.get_figheight(),
                        wspace=0.1, hspace=0.6)
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


def _diverging(ax, values: np.ndarray) -> None:
    limit = max(float(np.abs(values).max()), 1e-12)
    ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_templates(kernel: np.ndarray, classes: tuple[str, ...], path: Path) -> None:
    """The linear model's weights (784, C) as one 28x28 template per class: red where ink
    raises the class's score, blue where it lowers it."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(classes), figsize=(1.5 * len(classes), 2.0))
    centred = kernel - kernel.mean(axis=1, keepdims=True)  # what sets one class above another
    for ax, column, name in zip(axes, centred.T, classes, strict=True):
        _diverging(ax, column.reshape(28, 28))
        ax.set_title(name, fontsize=9)
    fig.suptitle("linear: one template per class (red: ink here raises the class)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_filters(kernels: dict[str, np.ndarray], path: Path) -> None:
    """Each model's first convolutional filters (kh, kw, 1, F), one row per model."""
    plt = _pyplot()
    width = max(k.shape[-1] for k in kernels.values())
    fig, axes = plt.subplots(len(kernels), width, squeeze=False,
                             figsize=(max(6.0, 0.6 * width), 1.0 * len(kernels) + 1.2))
    for ax in axes.flat:
        ax.axis("off")
    for row, (name, kernel) in zip(axes, kernels.items(), strict=True):
        for ax, f in zip(row, range(kernel.shape[-1]), strict=False):
            _diverging(ax, kernel[:, :, 0, f])
            ax.axis("on")
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("first convolutional filters (red: responds to ink, blue: to paper)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_hidden_maps(points: dict[str, np.ndarray], labels: np.ndarray, said: dict[str, np.ndarray],
                     classes: tuple[str, ...], path: Path) -> None:
    """Each model's last hidden layer in 2-D (PCA), coloured by the true class; mistakes are
    black crosses labelled with their test index."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(points), figsize=(4.2 * len(points), 4.4), squeeze=False)
    for ax, (name, xy) in zip(axes[0], points.items(), strict=True):
        truth = labels[:len(xy)]
        for c, colour in zip(range(len(classes)), plt.cm.tab10.colors, strict=False):
            mine = truth == c
            ax.scatter(xy[mine, 0], xy[mine, 1], s=4, color=colour, label=classes[c])
            if mine.any():
                centre = np.median(xy[mine], axis=0)
                ax.text(*centre, classes[c], fontsize=11, weight="bold", ha="center")
        wrong = np.flatnonzero(said[name][:len(xy)] != truth)
        ax.scatter(xy[wrong, 0], xy[wrong, 1], s=18, marker="x", color="black")
        for i in wrong[:25]:
            ax.annotate(str(i), xy[i], fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_title(f"{name}: {len(wrong)} of {len(xy)} wrong (x)", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("the last hidden layer of each model, test digits in 2-D (PCA), "
                 "coloured by true class; mistakes marked x with their test index", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_shift_rotate(curves: dict[str, dict[str, list[float]]], shifts: tuple[int, ...],
                      angles: tuple[int, ...], path: Path) -> None:
    """Accuracy as test digits are shifted (left) and rotated (right), one line per model."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, c in curves.items():
        axes[0].plot(shifts, [100 * a for a in c["shift"]], "o-", label=name)
        axes[1].plot(angles, [100 * a for a in c["angle"]], "o-", label=name)
    for ax, xlabel in zip(axes, ("shift (pixels, in a random direction)",
                                 "rotation (degrees, either way)"), strict=True):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle("how much each model leans on where the ink is: accuracy on moved test digits")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
