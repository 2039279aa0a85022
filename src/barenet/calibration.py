"""Calibration: temperature scaling (Guo et al., 2017), expected calibration error, reliability curves.

Temperature scaling divides the logits by one scalar T > 0 before the softmax. T is fitted by minimising
the negative log-likelihood on held-out data; it never changes which class wins (argmax is invariant),
only how confident the probabilities are. T > 1 softens over-confident networks.
"""
from __future__ import annotations

import math

import numpy as np

from .activations import log_softmax, softmax


def group_matrix(groups, n_groups: int | None = None) -> np.ndarray:
    """0/1 matrix G (n_logits, n_groups) with G[j, groups[j]] = 1: sums fine-class probabilities into groups."""
    groups = np.asarray(groups, dtype=np.intp)
    n_groups = int(groups.max()) + 1 if n_groups is None else n_groups
    G = np.zeros((len(groups), n_groups))
    G[np.arange(len(groups)), groups] = 1.0
    return G


def nll(logits: np.ndarray, y_index: np.ndarray, temperature: float = 1.0, *, groups=None) -> float:
    """Mean negative log-likelihood of the true classes under softmax(logits / T).

    With ``groups`` (one group index per logit column), the probability of group g is the sum of the
    softmax over its columns, and ``y_index`` indexes groups: a model trained on fine classes (attack
    names) can be calibrated for a coarse task (attack categories).
    """
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    if groups is not None:
        with np.errstate(divide="ignore"):
            logp = np.log(np.exp(logp) @ group_matrix(groups))
    picked = logp[np.arange(len(y_index)), y_index]
    return float(-np.maximum(picked, np.log(np.finfo(np.float64).tiny)).mean())


def fit_temperature(logits: np.ndarray, y_index: np.ndarray, *, groups=None, bounds=(0.05, 20.0), tol=1e-4) -> float:
    """The T minimising NLL on (logits, y): golden-section search on log T (NLL is unimodal in log T)."""
    logits = np.asarray(logits, dtype=np.float64)
    y_index = np.asarray(y_index, dtype=np.intp)
    if logits.ndim != 2 or len(logits) != len(y_index) or len(y_index) == 0:
        raise ValueError("fit_temperature needs logits (n, k) and n integer labels, n > 0")

    def nll_at(log_t):
        return nll(logits, y_index, math.exp(log_t), groups=groups)
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll_at(a), nll_at(b)
    while hi - lo > tol:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll_at(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll_at(b)
    return float(math.exp((lo + hi) / 2.0))


def reliability_curve(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> dict:
    """Equal-width confidence bins on [0, 1]: count, mean confidence and accuracy per bin."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bins = np.minimum((confidence * n_bins).astype(np.intp), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"edges": np.linspace(0.0, 1.0, n_bins + 1), "count": count,
                "confidence": np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan),
                "accuracy": np.where(count > 0, acc_sum / np.maximum(count, 1), np.nan)}


def expected_calibration_error(proba: np.ndarray, y_index: np.ndarray, n_bins: int = 15) -> float:
    """ECE = sum_b (n_b / n) |accuracy_b - confidence_b| over ``n_bins`` equal-width bins of max probability."""
    proba = np.asarray(proba)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y_index)
    curve = reliability_curve(confidence, correct, n_bins)
    used = curve["count"] > 0
    gaps = np.abs(curve["accuracy"][used] - curve["confidence"][used])
    return float(np.sum(curve["count"][used] / len(confidence) * gaps))


def calibrated_proba(logits: np.ndarray, temperature: float, *, groups=None) -> np.ndarray:
    """softmax(logits / T), summed into ``groups`` when given."""
    p = softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return p if groups is None else p @ group_matrix(groups)
