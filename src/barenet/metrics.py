"""Classification and regression metrics on label indices or values (pure NumPy, vectorised)."""
from __future__ import annotations

import numpy as np


def accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Share of rows predicted exactly right (for 2-D 0/1 targets: share of entries right)."""
    correct = np.asarray(y_true) == np.asarray(y_pred)
    if correct.ndim == 2:
        correct = correct.mean(axis=1)
    if sample_weight is None:
        return float(correct.mean())
    return float(np.average(correct, weights=sample_weight))


def confusion_matrix(y_true, y_pred, n_classes: int | None = None, labels=None) -> np.ndarray:
    """C[i, j] = number of rows of true class i predicted as class j.

    With ``labels`` (any type) the rows/columns follow that order; otherwise inputs are class indices.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if labels is not None:
        labels = np.asarray(labels)
        lookup = {v: i for i, v in enumerate(labels.tolist())}
        t = np.array([lookup.get(v, -1) for v in y_true.tolist()])
        p = np.array([lookup.get(v, -1) for v in y_pred.tolist()])
        keep = (t >= 0) & (p >= 0)
        y_true, y_pred, n_classes = t[keep], p[keep], len(labels)
    if n_classes is None:
        n_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    flat = y_true.astype(np.intp) * n_classes + y_pred.astype(np.intp)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def precision_recall_f1(cm: np.ndarray) -> dict:
    """Per-class precision, recall, F1 and support from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def macro_f1(y_true, y_pred, n_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in ``y_true`` or ``y_pred``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(precision_recall_f1(cm)["f1"][present].mean())


def mean_absolute_error(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64))))


def r2_score(y_true, y_pred) -> float:
    """1 - SS_res / SS_tot, averaged over outputs."""
    t = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)))


#: metric name -> (function(y_true, y_pred), works on "labels" (class indices) or "values")
METRICS = {
    "accuracy": (accuracy, "labels"),
    "macro_f1": (macro_f1, "labels"),
    "mae": (mean_absolute_error, "values"),
    "r2": (r2_score, "values"),
}


def get_metric(name: str):
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {sorted(METRICS)}")
    return METRICS[name]
