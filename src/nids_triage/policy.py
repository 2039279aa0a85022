"""Deciding which flows a person must see: thresholds chosen on validation data, reasons for every deferral.

Learned signals, each scaled so that 1.0 is its threshold:

    confidence risk    r_c = (1 - confidence) / (1 - confidence_threshold)
    novelty risk       r_n = novelty / novelty_threshold
    burst risk         r_b = burst / burst_threshold    (flows called normal, against normal training flows; burst.py)
    disagreement risk  r_d = disagreement / disagreement_threshold   (only with Monte-Carlo samples)
    risk               r   = max(r_c, r_n, r_b, r_d)    -> defer when r > 1

Novelty and burst are both reported as ``novel``: the flow, or the number of flows like it in this run, is
unlike the training data. The burst risk counts only where the network says "normal": a burst it calls an
attack raises an alert anyway (DoS floods are bursts by nature), while a campaign auto-labelled normal is
the miss that matters. Model files from before the burst signal have no burst threshold: r_b is left out.

plus hard reasons that always defer: ``invalid_value`` (NaN/Inf/negative sentinel, bad row) and
``unseen_category`` (a protocol/service/flag value never seen in training).

The user states a goal and the policy picks the confidence threshold on validation flows:

* ``review_budget=b``: the largest threshold whose validation review share (novel or low confidence)
  stays <= b. At scoring time the budget is also enforced per run: if more than b of the run's flows
  exceed risk 1 (a shifted stream), only the ceil(b * n) flows with the highest risk are deferred and the
  rest are auto-decided, so the promised analyst workload holds. (Rounding up means a risky flow is never
  auto-decided just because the run is small: a run of one risky flow sends it to review.) The flows
  over the validation thresholds before the cap are reported too (``over_threshold``), so users see what
  the cap traded away. Hard reasons are always deferred, budget or not.
* ``target_accuracy=a``: the smallest validation review share whose auto-decided flows reach accuracy a.
"""
from __future__ import annotations

import numpy as np

REASONS = ("invalid_value", "unseen_category", "novel", "low_confidence", "disagreement")


def risk_coverage(risk: np.ndarray, correct: np.ndarray, shares=None) -> dict:
    """Accuracy of the auto-decided flows when the ``share`` riskiest flows go to review, for each share."""
    shares = np.linspace(0.0, 0.5, 26) if shares is None else np.asarray(shares)
    order = np.argsort(-risk, kind="stable")  # riskiest first
    correct_sorted = np.asarray(correct, dtype=np.float64)[order]
    n = len(order)
    kept_correct = np.cumsum(correct_sorted[::-1])[::-1]  # kept_correct[k] = correct among flows k..n-1
    acc = []
    for s in shares:
        k = min(int(round(s * n)), n - 1)
        acc.append(float(kept_correct[k] / (n - k)))
    return {"review_share": [float(s) for s in shares], "auto_accuracy": acc}


class DeferralPolicy:
    def __init__(self, *, review_budget: float | None = None, target_accuracy: float | None = None,
                 disagreement_threshold: float = 0.2):
        if (review_budget is None) == (target_accuracy is None):
            raise ValueError("give exactly one of review_budget or target_accuracy")
        if review_budget is not None and not 0.0 <= review_budget < 1.0:
            raise ValueError(f"review_budget must be in [0, 1), got {review_budget}")
        if target_accuracy is not None and not 0.0 < target_accuracy <= 1.0:
            raise ValueError(f"target_accuracy must be in (0, 1], got {target_accuracy}")
        self.review_budget = review_budget
        self.target_accuracy = target_accuracy
        self.disagreement_threshold = float(disagreement_threshold)
        self.confidence_threshold = None
        self.novelty_threshold = None
        self.burst_threshold = None

    # -- choosing thresholds on validation ------------------------------------------------------
    def fit(self, confidence, novelty, correct, novelty_threshold: float, *, burst=None,
            burst_threshold: float | None = None) -> "DeferralPolicy":
        """Pick the confidence threshold on validation flows (``correct``: prediction was right).

        ``burst`` (already 0 where the prediction is not normal) and its threshold are optional."""
        confidence = np.asarray(confidence, dtype=np.float64)
        correct = np.asarray(correct, dtype=bool)
        self.novelty_threshold = float(novelty_threshold)
        self.burst_threshold = None if burst_threshold is None else float(burst_threshold)
        novel = self._novel(novelty, burst)
        n = len(confidence)
        # Flows not flagged as novel, least confident first: deferring the k first of them gives a review
        # share of (n_novel + k) / n, and the threshold that does it is the confidence of the (k+1)-th.
        rest = np.flatnonzero(~novel)
        order = rest[np.argsort(confidence[rest], kind="stable")]
        conf_sorted = np.append(confidence[order], 1.0)
        if self.review_budget is not None:
            k = int(np.floor(self.review_budget * n)) - int(novel.sum())
            k = min(max(k, 0), len(order))  # "defer conf < conf_sorted[k]" defers at most k (fewer on ties)
        else:
            # accuracy of the auto-decided flows after deferring the k least confident: correct[k:] / (m - k)
            ok = correct[order].astype(np.float64)
            tail_correct = np.append(np.cumsum(ok[::-1])[::-1], 0.0)
            m = len(order)
            auto_acc = tail_correct[:m] / np.arange(m, 0, -1)
            reaching = np.flatnonzero(auto_acc >= self.target_accuracy)
            k = int(reaching[0]) if reaching.size else m
            while 0 < k < m and conf_sorted[k] == conf_sorted[k - 1]:  # ties: defer the whole tie group
                k += 1
        best = conf_sorted[k] if k > 0 else 0.0
        self.confidence_threshold = float(min(best, 1.0 - 1e-12))
        return self

    # -- deciding --------------------------------------------------------------------------------
    def risk(self, confidence, novelty, burst=None) -> np.ndarray:
        r_conf = (1.0 - np.asarray(confidence, dtype=np.float64)) / max(1.0 - self.confidence_threshold, 1e-12)
        r_nov = np.asarray(novelty, dtype=np.float64) / max(self.novelty_threshold, 1e-12)
        risk = np.maximum(r_conf, r_nov)
        if burst is not None and self.burst_threshold is not None:
            risk = np.maximum(risk, np.asarray(burst, dtype=np.float64) / max(self.burst_threshold, 1e-12))
        return risk

    def _novel(self, novelty, burst) -> np.ndarray:
        """Flows over the novelty threshold or, where given, the burst threshold (reason ``novel``)."""
        novel = np.asarray(novelty, dtype=np.float64) > self.novelty_threshold
        if burst is not None and self.burst_threshold is not None:
            novel |= np.asarray(burst, dtype=np.float64) > self.burst_threshold
        return novel

    def decide(self, confidence, novelty, *, invalid_value=None, unseen_category=None, disagreement=None,
               burst=None):
        """Return (needs_review bool (n,), reasons list of lists of str, risk (n,)).

        Flows deferred for a learned reason have ``risk > 1``; under a review budget the riskiest ones
        that fit the run's budget are kept (see the module docstring).
        """
        confidence = np.asarray(confidence, dtype=np.float64)
        novelty = np.asarray(novelty, dtype=np.float64)
        n = len(confidence)
        zeros = np.zeros(n, dtype=bool)
        invalid = zeros if invalid_value is None else np.asarray(invalid_value, dtype=bool)
        unseen = zeros if unseen_category is None else np.asarray(unseen_category, dtype=bool)
        risk = self.risk(confidence, novelty, burst)
        if disagreement is not None:  # disagreement competes for the budget on the same scale
            risk = np.maximum(risk, np.asarray(disagreement, dtype=np.float64) / self.disagreement_threshold)
        risk[invalid] = np.inf  # an invalid row has no meaningful score
        learned = (risk > 1.0) & ~invalid & ~unseen
        if self.review_budget is not None:
            learned = cap_to_budget(learned, risk, self.review_budget)
        hard = invalid | unseen
        reasons = [[] for _ in range(n)]
        for mask, name in ((invalid, "invalid_value"), (unseen & ~invalid, "unseen_category"),
                           (learned & self._novel(novelty, burst), "novel"),
                           (learned & (confidence < self.confidence_threshold), "low_confidence")):
            for i in np.flatnonzero(mask):
                reasons[i].append(name)
        if disagreement is not None:
            for i in np.flatnonzero(learned & (np.asarray(disagreement) > self.disagreement_threshold)):
                reasons[i].append("disagreement")
        return hard | learned, reasons, risk

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"review_budget": self.review_budget, "target_accuracy": self.target_accuracy,
                "disagreement_threshold": self.disagreement_threshold,
                "confidence_threshold": self.confidence_threshold, "novelty_threshold": self.novelty_threshold,
                "burst_threshold": self.burst_threshold}

    @classmethod
    def from_dict(cls, d: dict) -> "DeferralPolicy":
        p = cls(review_budget=d["review_budget"], target_accuracy=d["target_accuracy"],
                disagreement_threshold=d.get("disagreement_threshold", 0.2))
        p.confidence_threshold, p.novelty_threshold = d["confidence_threshold"], d["novelty_threshold"]
        p.burst_threshold = d.get("burst_threshold")  # absent in model files from before the burst signal
        return p


def cap_to_budget(learned: np.ndarray, risk: np.ndarray, budget: float) -> np.ndarray:
    """Keep only the budget's worth (ceil(budget * n)) of the riskiest ``learned`` deferrals of a run."""
    n = len(learned)
    allowed = int(np.ceil(budget * n - 1e-9))
    if learned.sum() <= allowed:
        return learned
    idx = np.flatnonzero(learned)
    keep = idx[np.argsort(-risk[idx], kind="stable")[:allowed]]
    capped = np.zeros(n, dtype=bool)
    capped[keep] = True
    return capped
