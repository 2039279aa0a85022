"""Novelty: how unlike the training data a flow is, measured in the network's own feature space.

Softmax confidence says how far a flow is from the decision boundary, not whether it resembles anything
the network was trained on: a never-seen attack can land deep inside the "normal" region and get 99.9 %
confidence. So we also model where training flows of each class sit in the last hidden layer h(x) and ask
how far a new flow is from the class it was assigned to (Lee et al., 2018, class-conditional Gaussians
with one shared covariance):

    mu_c = mean of h over training flows of class c
    S    = pooled within-class covariance + ridge * I
    d(x) = (h(x) - mu_c)^T S^{-1} (h(x) - mu_c),   c = the predicted class

All classes are scored at once with  d_c = h'Ph - 2 h'P mu_c + mu_c'P mu_c  (no loop over classes).
The threshold is the (1 - false_alarm_rate) quantile of d on validation flows, which are in-distribution,
so that share of ordinary flows is flagged by design and everything else flagged is genuinely unusual.
"""
from __future__ import annotations

import numpy as np


class MahalanobisNovelty:
    def __init__(self, *, ridge: float = 1e-3, false_alarm_rate: float = 0.02):
        if not 0.0 < false_alarm_rate < 1.0:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
        self.ridge = float(ridge)
        self.false_alarm_rate = float(false_alarm_rate)
        self.means_ = self.precision_ = None
        self.threshold_ = None

    def fit(self, hidden: np.ndarray, y_index: np.ndarray, n_classes: int) -> "MahalanobisNovelty":
        """Class means and the shared precision matrix from training activations and true classes."""
        h = np.asarray(hidden, dtype=np.float64)
        y_index = np.asarray(y_index, dtype=np.intp)
        counts = np.bincount(y_index, minlength=n_classes).astype(np.float64)
        sums = np.zeros((n_classes, h.shape[1]))
        np.add.at(sums, y_index, h)
        means = sums / np.maximum(counts, 1.0)[:, None]
        centred = h - means[y_index]
        cov = centred.T @ centred / max(len(h) - 1, 1)
        # ridge relative to the average variance: keeps S invertible when ReLU units are dead (zero variance)
        cov += (self.ridge * max(np.trace(cov) / len(cov), 1e-12)) * np.eye(len(cov))
        self.means_ = means
        self.precision_ = np.linalg.inv(cov)
        self.present_ = counts > 0
        return self

    def distances(self, hidden: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of every row to every class mean, shape (n, n_classes)."""
        h = np.asarray(hidden, dtype=np.float64)
        hp = h @ self.precision_
        quad = np.einsum("ij,ij->i", hp, h)
        cross = hp @ self.means_.T
        const = np.einsum("ij,ij->i", self.means_ @ self.precision_, self.means_)
        d = quad[:, None] - 2.0 * cross + const[None, :]
        d[:, ~self.present_] = np.inf  # a class with no training flows has no mean to be near
        return np.maximum(d, 0.0)

    def score(self, hidden: np.ndarray, predicted_index: np.ndarray) -> np.ndarray:
        """Distance to the mean of the predicted class (larger = more novel)."""
        d = self.distances(hidden)
        return d[np.arange(len(d)), np.asarray(predicted_index, dtype=np.intp)]

    def calibrate(self, validation_scores: np.ndarray) -> float:
        """Set the threshold so that ``false_alarm_rate`` of in-distribution flows exceed it."""
        self.threshold_ = float(np.quantile(validation_scores, 1.0 - self.false_alarm_rate))
        return self.threshold_

    # -- persistence: small config in JSON, arrays beside the model's weights ------------------
    def to_dict(self) -> dict:
        return {"ridge": self.ridge, "false_alarm_rate": self.false_alarm_rate, "threshold": self.threshold_,
                "present": self.present_.tolist()}

    def arrays(self) -> dict:
        return {"novelty.means": self.means_, "novelty.precision": self.precision_}

    @classmethod
    def from_dict(cls, config: dict, arrays: dict) -> "MahalanobisNovelty":
        obj = cls(ridge=config["ridge"], false_alarm_rate=config["false_alarm_rate"])
        obj.threshold_ = config["threshold"]
        obj.present_ = np.asarray(config["present"], dtype=bool)
        obj.means_ = np.asarray(arrays["novelty.means"], dtype=np.float64)
        obj.precision_ = np.asarray(arrays["novelty.precision"], dtype=np.float64)
        if obj.means_.shape[1] != obj.precision_.shape[0] or len(obj.present_) != len(obj.means_):
            raise ValueError("novelty arrays do not fit together (means vs precision vs classes)")
        return obj
