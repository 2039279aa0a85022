"""Bursts: many near-identical flows in one scored run, far more than training's share of them predicts.

The Mahalanobis novelty (``novelty.py``) asks whether one flow looks like training data. Some of the attacks
that never appear in training do look like it, one flow at a time: on KDDTest+ hundreds of identical
``guess_passwd`` logins on pop_3 and ``mailbomb`` SMTP flows are called normal with high confidence and low
novelty. What gives them away is their number: a campaign repeats one kind of flow, and the scored run holds
far more flows of that kind than the training data says normal traffic would.

The detector compares the flows of one scored file with reference flows of the same kind: in the triage model,
the flows the network calls *normal* with the *normal* training flows. A burst the network already calls an
attack raises an alert anyway (DoS floods are bursts by nature), while a campaign auto-labelled normal is the
costly miss; and comparing normal with normal keeps a capture that is simply mostly normal traffic (most real
captures) from looking over-represented against a training file that is half attacks.

So the encoded feature space is cut into cubic cells of side ``cell`` (in standardised units; 0.5 keeps only
near-identical flows together), and for every flow of a file of n such flows::

    k = other flows of the file in its cell (of n' = n - 1)      t = reference flows in its cell (of N)
    the file's share of both q = n' / (n' + N);  of the k + t flows of this kind, expected in the file
    e_k = (k + t) q, in the reference e_t = (k + t) (1 - q)
    burst = k ln(k / e_k) + t ln(t / e_t)   if k / n' > t / N (more common in the file) and k + 1 >= min_flows,
            else 0

``burst`` is the log-likelihood ratio of the k + t flows of this kind splitting k : t between file and reference,
against the split the two sizes predict (binomial, share q): how much better "this kind of flow is
over-represented in this file" explains the counts than "the file is drawn like the reference". A cell the
reference never filled (t = 0) scores k ln(1 + N / n'). Only groups of at least ``min_flows`` (10) flows count:
a campaign is many flows, and a few repeats are common in real captures while NSL-KDD's files were
de-duplicated, so its counts would call any repeat surprising.

The threshold is set on the validation flows of the normal class (in-distribution, the flows the signal must
leave alone): their (1 - false_alarm_rate) quantile when the validation part is scored as one file and as random
files of 100, 1,000 and 5,000 of its flows (5 draws each), the largest of these, so that those file sizes flag
at most that share of them; and never below z^2 / 2, z the normal quantile at 1 - false_alarm_rate: for a
group of many flows drawn like the reference the statistic is about half a chi-squared variable with one
degree of freedom (Wilks) whatever the file's size, so the bound covers larger files. Measured on NSL-KDD
(docs/nids-triage.md, "Bursts"), files of normal validation flows only (1,000 to 13,469 of them) flag 0-3 % of
their flows; normal traffic unlike training's (KDDTest+'s) is flagged more, which is what the signal is for.

Only the reference cells' counts are kept (a 64-bit hash per cell, not the flows): ~15,000 cells for NSL-KDD's
54,000 normal training flows. Scoring costs one sort of the file's cell hashes (``np.unique``), unlike an
all-pairs neighbour search.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

#: rows hashed at a time: the (rows, features) int64 cell indices take twice the memory of the float32 flows
HASH_CHUNK = 16384
#: the sizes of the random validation runs the threshold is also set on (besides the whole validation part)
CALIBRATION_SIZES = (100, 1000, 5000)
CALIBRATION_DRAWS = 5
#: cell indices are clipped to this (a huge finite value must not overflow the int64 index)
MAX_INDEX = 2.0**62


def _xlogy(x, expected):
    """x ln(x / expected), with 0 ln 0 = 0 (a cell training never saw); ``expected`` > 0."""
    return x * np.log(np.where(x > 0, x / expected, 1.0))


class BurstDetector:
    """Counts reference flows per cell (``fit``) and scores one file's flows against them (``score``)."""

    def __init__(self, *, cell: float = 0.5, min_flows: int = 10, false_alarm_rate: float = 0.02, seed: int = 0):
        if not cell > 0:
            raise ValueError(f"burst cell size must be > 0, got {cell!r}")
        if int(min_flows) != min_flows or min_flows < 2:
            raise ValueError(f"burst min_flows must be a whole number >= 2, got {min_flows!r}")
        if not 0.0 < false_alarm_rate < 0.5:  # at 0.5 the one-sided bound z^2 / 2 is 0
            raise ValueError(f"burst false_alarm_rate must be in (0, 0.5), got {false_alarm_rate}")
        self.cell = float(cell)
        self.min_flows = int(min_flows)
        self.false_alarm_rate = float(false_alarm_rate)
        self.seed = int(seed)
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
            index = np.floor(X[start:start + HASH_CHUNK] / self.cell)
            index = np.nan_to_num(index, nan=0.0, posinf=MAX_INDEX, neginf=-MAX_INDEX)  # (invalid rows: not counted)
            index = np.clip(index, -MAX_INDEX, MAX_INDEX).astype(np.int64)
            out[start:start + HASH_CHUNK] = (index.view(np.uint64) * self.multipliers_).sum(axis=1, dtype=np.uint64)
        return out

    def fit(self, X_train: np.ndarray) -> "BurstDetector":
        """Count the reference flows per cell (encoded flows; in the triage model the normal training flows)."""
        X_train = np.asarray(X_train)
        rng = np.random.default_rng(self.seed)
        self.multipliers_ = rng.integers(0, 2**63, size=X_train.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.cells_, counts = np.unique(self.cell_hashes(X_train), return_counts=True)
        self.counts_ = counts.astype(np.int64)
        self.n_train_ = int(len(X_train))
        return self

    def reference_counts(self, hashes: np.ndarray) -> np.ndarray:
        """t for each hash: reference flows in that cell (0 for a cell the reference never filled)."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        pos = np.minimum(np.searchsorted(self.cells_, hashes), len(self.cells_) - 1)
        return np.where(self.cells_[pos] == hashes, self.counts_[pos], 0)

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, X: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """The burst statistic of every row of one file; only the ``valid`` rows form the file (the others are
        not counted and score 0)."""
        X = np.asarray(X)
        valid = np.ones(len(X), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        burst = np.zeros(len(X))
        rows = np.flatnonzero(valid)
        if len(rows) < self.min_flows:
            return burst
        cells, where, in_run = np.unique(self.cell_hashes(X[rows]), return_inverse=True, return_counts=True)
        k = (in_run - 1).astype(np.float64)[where]  # the other flows of the run in the same cell
        t = self.reference_counts(cells).astype(np.float64)[where]
        n_run, n_train = len(rows) - 1, self.n_train_
        # the cell is more common in the file than in the reference (k / n' > t / N), and a group, not a few repeats
        over = (k * n_train > t * n_run) & (k + 1 >= self.min_flows)
        k, t = k[over], t[over]
        share = n_run / (n_run + n_train)  # q: the file's share of file and reference flows together
        burst[rows[over]] = _xlogy(k, (k + t) * share) + _xlogy(t, (k + t) * (1.0 - share))
        return burst

    def calibrate(self, X_val: np.ndarray, ordinary: np.ndarray | None = None,
                  members: np.ndarray | None = None) -> float:
        """Set the threshold on validation flows: ``members`` form the file (as ``score``'s ``valid``: in the
        triage model the flows predicted normal), ``ordinary`` are the flows it must leave alone (the normal
        class). At most ``false_alarm_rate`` of the ordinary flows exceed it when the validation part is one
        file and in random files of ``CALIBRATION_SIZES`` flows (the largest of these quantiles), and it is
        never below ``large_run_bound``."""
        X_val = np.asarray(X_val)
        n = len(X_val)
        ordinary = np.ones(n, dtype=bool) if ordinary is None else np.asarray(ordinary, dtype=bool)
        members = np.ones(n, dtype=bool) if members is None else np.asarray(members, dtype=bool)
        rng = np.random.default_rng(self.seed)
        level = 1.0 - self.false_alarm_rate
        quantiles = []
        for size in [n] + [size for size in CALIBRATION_SIZES if size < n]:
            draws = [np.arange(n)] if size == n else [rng.choice(n, size, replace=False)
                                                      for _ in range(CALIBRATION_DRAWS)]
            scores = np.concatenate([self.score(X_val[rows], members[rows])[ordinary[rows]] for rows in draws])
            if len(scores):  # (random files may hold no ordinary flow when the normal class is rare)
                quantiles.append(float(np.quantile(scores, level)))
        self.threshold_ = max(quantiles + [self.large_run_bound()])
        return self.threshold_

    def large_run_bound(self) -> float:
        """z^2 / 2 with z the normal (1 - false_alarm_rate) quantile: the statistic's one-sided threshold for a
        group of many ordinary flows (half a chi-squared variable, one degree of freedom), at any file size."""
        z = NormalDist().inv_cdf(1.0 - self.false_alarm_rate)
        return z * z / 2.0

    # -- persistence: small config in JSON, arrays beside the model's weights ------------------
    def to_dict(self) -> dict:
        return {"cell": self.cell, "min_flows": self.min_flows, "false_alarm_rate": self.false_alarm_rate,
                "seed": self.seed, "threshold": self.threshold_, "n_train": self.n_train_}

    def arrays(self) -> dict:
        return {"burst.multipliers": self.multipliers_, "burst.cells": self.cells_, "burst.counts": self.counts_}

    @classmethod
    def from_dict(cls, config: dict, arrays: dict) -> "BurstDetector":
        obj = cls(cell=config["cell"], min_flows=config["min_flows"], false_alarm_rate=config["false_alarm_rate"],
                  seed=config.get("seed", 0))
        obj.threshold_ = float(config["threshold"])
        obj.n_train_ = int(config["n_train"])
        obj.multipliers_ = np.asarray(arrays["burst.multipliers"], dtype=np.uint64)
        obj.cells_ = np.asarray(arrays["burst.cells"], dtype=np.uint64)
        obj.counts_ = np.asarray(arrays["burst.counts"], dtype=np.int64)
        if (len(obj.cells_) != len(obj.counts_) or not len(obj.cells_) or np.any(obj.counts_ < 1)
                or obj.n_train_ != int(obj.counts_.sum())):
            raise ValueError("burst arrays do not fit together (cells vs counts vs training flows)")
        if np.any(obj.cells_[1:] <= obj.cells_[:-1]):  # reference_counts' binary search needs them sorted
            raise ValueError("burst cells must be sorted and distinct")
        if not len(obj.multipliers_) or np.any(obj.multipliers_ % np.uint64(2) == 0):
            raise ValueError("burst hash multipliers must be odd")
        if not (np.isfinite(obj.threshold_) and obj.threshold_ > 0):
            raise ValueError(f"burst threshold must be a finite number > 0, got {obj.threshold_!r}")
        return obj
