"""Bursts: many near-identical flows in one scored run, far more than training's share of them predicts.

The Mahalanobis novelty (``novelty.py``) asks whether one flow looks like training data. Some of the attacks
that never appear in training do look like it, one flow at a time: on KDDTest+ hundreds of identical
``guess_passwd`` logins on pop_3 and ``mailbomb`` SMTP flows are called normal with high confidence and low
novelty. What gives them away is their number: a campaign repeats one kind of flow, and the scored run holds
far more flows of that kind than the training data says normal traffic would.

So the encoded feature space is cut into cubic cells of side ``cell`` (in standardised units; 0.5 keeps only
near-identical flows together), and for every flow of a run of n flows::

    k = other flows of the run in its cell (of n' = n - 1)      t = training flows in its cell (of N)
    pooled share p = (k + t) / (n' + N);  expected counts e_k = n' p,  e_t = N p
    burst = k ln(k / e_k) + t ln(t / e_t)     if k / n' > t / N  (more common in the run), else 0

``burst`` is half the G statistic (log-likelihood ratio) of the 2 x 2 table "this cell or not" x "run or
training": how much better "this kind of flow is over-represented in the run" explains the two counts than
"run and training share one rate". It weighs the run's count against the training count's own noise, so
under "the run is drawn like training" its distribution does not depend on the run's size, and one
threshold serves every run: the (1 - false_alarm_rate) quantile over the validation flows, scored as one
run (in-distribution, so that share is flagged by design). A pair of identical flows scores about
ln(1 + N / n'), a few hundred identical flows in a cell training never filled score in the thousands.

Only the training cells' counts are kept (a 64-bit hash per cell, not the flows): ~24,000 cells for NSL-KDD's
100,000 training flows. Scoring is linear in the run (one ``np.unique`` over the run's cell hashes), unlike
an all-pairs neighbour search. The policy uses the signal for flows the network calls *normal* only: a burst
the network already calls an attack raises an alert anyway (and DoS floods are bursts by nature), while a
burst auto-labelled normal is the costly miss (see ``policy.py``).
"""
from __future__ import annotations

import numpy as np

#: rows hashed at a time: the (rows, features) int64 cell indices are 8x the float32 flows
HASH_CHUNK = 16384


def _xlogy(x, expected):
    """x ln(x / expected), with 0 ln 0 = 0 (a cell training never saw); ``expected`` > 0."""
    return x * np.log(np.where(x > 0, x / expected, 1.0))


class BurstDetector:
    def __init__(self, *, cell: float = 0.5, false_alarm_rate: float = 0.02, seed: int = 0):
        if not cell > 0:
            raise ValueError(f"burst cell size must be > 0, got {cell!r}")
        if not 0.0 < false_alarm_rate < 1.0:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
        self.cell = float(cell)
        self.false_alarm_rate = float(false_alarm_rate)
        self.seed = seed
        self.multipliers_ = self.cells_ = self.counts_ = None
        self.n_train_ = 0
        self.threshold_ = None

    # -- cells ------------------------------------------------------------------------------------
    def cell_hashes(self, X: np.ndarray) -> np.ndarray:
        """One uint64 per row: a hash of its cell index floor(x / cell), identical for flows in one cell.

        The hash is the dot product of the integer cell index with random odd 64-bit multipliers, modulo 2^64
        (NumPy's unsigned arithmetic wraps): two different cells collide with probability ~2^-64.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != len(self.multipliers_):
            raise ValueError(f"burst detector expects {len(self.multipliers_)} encoded features, got shape {X.shape}")
        out = np.empty(len(X), dtype=np.uint64)
        for start in range(0, len(X), HASH_CHUNK):
            index = np.floor(X[start:start + HASH_CHUNK] / self.cell).astype(np.int64)
            out[start:start + HASH_CHUNK] = (index.view(np.uint64) * self.multipliers_).sum(axis=1, dtype=np.uint64)
        return out

    def fit(self, X_train: np.ndarray) -> "BurstDetector":
        """Count the training flows per cell (encoded flows of the train part)."""
        X_train = np.asarray(X_train)
        rng = np.random.default_rng(self.seed)
        self.multipliers_ = rng.integers(0, 2**63, size=X_train.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.cells_, counts = np.unique(self.cell_hashes(X_train), return_counts=True)
        self.counts_ = counts.astype(np.int64)
        self.n_train_ = int(len(X_train))
        return self

    def training_counts(self, hashes: np.ndarray) -> np.ndarray:
        """t for each hash: training flows in that cell (0 for a cell training never saw)."""
        pos = np.minimum(np.searchsorted(self.cells_, hashes), len(self.cells_) - 1)
        return np.where(self.cells_[pos] == hashes, self.counts_[pos], 0)

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, X: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """The burst statistic of every row of one run (0 for rows not ``valid``, which are not counted)."""
        X = np.asarray(X)
        valid = np.ones(len(X), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        burst = np.zeros(len(X))
        rows = np.flatnonzero(valid)
        if len(rows) < 2:
            return burst
        cells, where, in_run = np.unique(self.cell_hashes(X[rows]), return_inverse=True, return_counts=True)
        k = (in_run - 1).astype(np.float64)[where]  # the other flows of the run in the same cell
        t = self.training_counts(cells).astype(np.float64)[where]
        n_run, n_train = len(rows) - 1, self.n_train_
        over = k * n_train > t * n_run  # k / n' > t / N: the cell is more common in the run than in training
        k, t = k[over], t[over]
        pooled = (k + t) / (n_run + n_train)
        burst[rows[over]] = _xlogy(k, n_run * pooled) + _xlogy(t, n_train * pooled)
        return burst

    def calibrate(self, validation_scores: np.ndarray) -> float:
        """Set the threshold so that ``false_alarm_rate`` of in-distribution flows exceed it."""
        self.threshold_ = float(np.quantile(validation_scores, 1.0 - self.false_alarm_rate))
        return self.threshold_

    # -- persistence: small config in JSON, arrays beside the model's weights ------------------
    def to_dict(self) -> dict:
        return {"cell": self.cell, "false_alarm_rate": self.false_alarm_rate, "threshold": self.threshold_,
                "n_train": self.n_train_}

    def arrays(self) -> dict:
        return {"burst.multipliers": self.multipliers_, "burst.cells": self.cells_, "burst.counts": self.counts_}

    @classmethod
    def from_dict(cls, config: dict, arrays: dict) -> "BurstDetector":
        obj = cls(cell=config["cell"], false_alarm_rate=config["false_alarm_rate"])
        obj.threshold_ = config["threshold"]
        obj.n_train_ = int(config["n_train"])
        obj.multipliers_ = np.asarray(arrays["burst.multipliers"], dtype=np.uint64)
        obj.cells_ = np.asarray(arrays["burst.cells"], dtype=np.uint64)
        obj.counts_ = np.asarray(arrays["burst.counts"], dtype=np.int64)
        if len(obj.cells_) != len(obj.counts_) or obj.n_train_ != int(obj.counts_.sum()) or not len(obj.cells_):
            raise ValueError("burst arrays do not fit together (cells vs counts vs training flows)")
        if np.any(obj.cells_[1:] <= obj.cells_[:-1]):  # training_counts' binary search needs them sorted
            raise ValueError("burst cells must be sorted and distinct")
        return obj
