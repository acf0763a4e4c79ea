"""Temperature scaling and how well probabilities are calibrated: numpy only.

A classifier's top probability should be how often such answers are right; trained networks are
over- or under-confident (label smoothing and augmentation push them under). Temperature scaling
fixes that with one number T fitted on held-out data: calibrated p = softmax(logits / T), which
keeps every answer (the order of the classes never changes) and only rescales the confidence.
`training.calibrate` fits T and builds it into the model; `evaluate` and the report measure with
the functions here.
"""

from __future__ import annotations

import numpy as np

# Probabilities are floored here before their log (a softmax can underflow to 0); above it,
# softmax(log p / T) is exactly the model's softmax(logits / T).
PROBABILITY_FLOOR = 1e-30
BINS = 15  # the usual number of equal-width confidence bins for the expected calibration error


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), row by row: what dividing the logits by T does to probabilities p."""
    scaled = np.log(np.clip(probabilities, PROBABILITY_FLOOR, 1.0)) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, PROBABILITY_FLOOR, 1.0))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the negative log-likelihood (golden-section search on
    log T; the likelihood is unimodal in T)."""
    def loss(log_t: float) -> float:
        return negative_log_likelihood(apply_temperature(probabilities, np.exp(log_t)), labels)

    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(60):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return float(np.exp((low + high) / 2))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin: its range, how many answers fall in it, their mean confidence and the
    share of them that is right (the points of a reliability diagram)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "confidence": float(confidence[inside].mean()) if count else 0.0,
                     "accuracy": float(correct[inside].mean()) if count else 0.0})
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray,
                               bins: int = BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their counts."""
    rows = reliability(probabilities, labels, bins)
    total = sum(r["count"] for r in rows)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total)


def summary(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, ECE and NLL of one set of answers (the numbers calibration.json keeps)."""
    return {"accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
            "ece": expected_calibration_error(probabilities, labels),
            "nll": negative_log_likelihood(probabilities, labels)}


def uncalibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The model's probabilities before its temperature (calibration inverted)."""
    return apply_temperature(probabilities, 1.0 / temperature)
