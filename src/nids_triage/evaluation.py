"""Metrics of a triage model on labelled flows: the JSON contract of ``nids-triage evaluate``.

Pure logic, no I/O. ``evaluate_scored`` turns (true labels, ScoredFlows) into one JSON-safe dict whose keys
are documented in docs/nids-triage.md ("The metrics JSON"). Conventions:

* a flow's prediction is *correct* when the predicted task label equals the true one; invalid rows (empty
  prediction) are never correct, and they are left out of the confusion matrix (``n_invalid`` counts them);
* a true label the model cannot predict (an unseen attack name in the ``attack`` task) gets its own row in
  the confusion matrix, so nothing silently disappears from recall;
* *auto* flows are those not sent to review; ``review_accuracy`` is how often the model's own guess was
  right on the flows a person will decide (low by design: those are the hard ones);
* *unseen attacks* are flows whose attack name is in ``schema.TEST_ONLY_ATTACKS``; one is *caught* when it
  is predicted as something other than ``normal`` or sent to review, i.e. not auto-labelled normal.
"""
from __future__ import annotations

import math

import numpy as np

import barenet as bn

from .policy import REASONS, risk_coverage
from .schema import TEST_ONLY_ATTACKS

METRICS_VERSION = 1
N_BINS = 15


def _threshold_only(scored, correct) -> dict:
    """Review share and auto-decided accuracy if every flow over a threshold (risk > 1) or with a hard
    reason were deferred, i.e. without the per-run budget cap."""
    over = np.asarray(scored.needs_review, dtype=bool) | (np.asarray(scored.risk, dtype=np.float64) > 1.0)
    return {"review_share": _share(over), "auto_accuracy": _share(correct[~over])}


def evaluate_scored(true_labels, scored, *, task: str, split: str, attack_names=None, model_info=None,
                    validation=None) -> dict:
    """The metrics dict for flows whose true task labels are ``true_labels`` (str array, one per flow).

    ``attack_names`` (raw names, optional) enables ``unseen_attacks``; ``model_info`` and ``validation``
    (the model's training-time report) are copied into the result.
    """
    y = np.asarray(true_labels, dtype=str)
    pred = np.asarray(scored.labels, dtype=str)
    needs = np.asarray(scored.needs_review, dtype=bool)
    n = len(y)
    if len(pred) != n:
        raise ValueError(f"{n} true labels for {len(pred)} scored flows")
    correct = pred == y
    invalid = pred == ""
    labels = list(scored.classes) + sorted(set(y.tolist()) - set(scored.classes))
    cm = bn.confusion_matrix(y, pred, labels=labels)
    prf = bn.precision_recall_f1(cm)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    confidence = np.asarray(scored.confidence, dtype=np.float64)
    valid = ~invalid
    result = {
        "metrics_version": METRICS_VERSION,
        "task": task,
        "split": split,
        "n_flows": int(n),
        "n_invalid": int(invalid.sum()),
        "accuracy": _share(correct),
        "macro_f1": float(prf["f1"][present].mean()) if present.any() else None,
        "n_review": int(needs.sum()),
        "review_share": _share(needs),
        "auto_accuracy": _share(correct[~needs]),
        "review_accuracy": _share(correct[needs]),
        # the validation thresholds alone, before the review budget's per-run cap (see policy.py)
        "threshold_only": _threshold_only(scored, correct),
        "auto_macro_f1": _macro_f1(y[~needs], pred[~needs], labels),
        "ece": _ece(scored, y, valid),
        "classes": list(scored.classes),
        "per_class": {lab: {"precision": float(prf["precision"][i]), "recall": float(prf["recall"][i]),
                            "f1": float(prf["f1"][i]), "support": int(prf["support"][i])}
                      for i, lab in enumerate(labels)},
        "confusion_matrix": {"labels": labels, "matrix": cm.astype(int).tolist()},
        "reasons": reason_counts(scored.reasons),
        "unseen_attacks": unseen_attack_stats(attack_names, pred, needs),
        "risk_coverage": risk_coverage(np.asarray(scored.risk)[valid], correct[valid]) if valid.any() else None,
        "reliability": _reliability(confidence[valid], correct[valid]),
        "confidence_histogram": confidence_histogram(confidence[valid], correct[valid], needs[valid]),
        "model": model_info or {},
        "validation": validation_summary(validation or {}),
    }
    return _json_clean(result)


def reason_counts(reasons) -> dict:
    """{reason: number of flows carrying it} for every known reason (a flow may carry several)."""
    counts = dict.fromkeys(REASONS, 0)
    for flow_reasons in reasons:
        for r in flow_reasons:
            counts[r] = counts.get(r, 0) + 1
    return counts


def unseen_attack_stats(attack_names, predicted, needs_review) -> dict:
    """Of the flows whose attack never appears in training, how many were caught (not auto-labelled normal)."""
    if attack_names is None:
        return {"count": 0, "caught": 0, "share_flagged_or_reviewed": None, "share_reviewed": None,
                "by_attack": {}}
    names = np.asarray(attack_names, dtype=str)
    unseen = np.isin(names, sorted(TEST_ONLY_ATTACKS))
    needs = np.asarray(needs_review, dtype=bool)
    caught = (np.asarray(predicted, dtype=str) != "normal") | needs
    by_attack = {}
    for name in sorted(set(names[unseen].tolist())):
        rows = names == name
        by_attack[name] = {"count": int(rows.sum()), "caught": int(caught[rows].sum()),
                           "reviewed": int(needs[rows].sum())}
    return {"count": int(unseen.sum()), "caught": int(caught[unseen].sum()),
            "share_flagged_or_reviewed": _share(caught[unseen]), "share_reviewed": _share(needs[unseen]),
            "by_attack": by_attack}


def validation_summary(report: dict) -> dict:
    """The validation calibration and deferral numbers recorded when the model was trained."""
    before, after = report.get("calibration_before", {}), report.get("calibration_after", {})
    return {
        "n_flows": report.get("n_validation"),
        "temperature": report.get("temperature"),
        "ece_before": before.get("ece"), "ece_after": after.get("ece"),
        "nll_before": before.get("nll"), "nll_after": after.get("nll"),
        "accuracy": report.get("validation_accuracy"),
        "review_share": report.get("validation_review_share"),
        "auto_accuracy": report.get("validation_auto_accuracy"),
        "risk_coverage": report.get("risk_coverage"),
    }


def confidence_histogram(confidence, correct, needs_review, n_bins: int = 20) -> dict:
    """Counts of flows per confidence bin, split by (auto-decided | reviewed) x (right | wrong)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.minimum((np.asarray(confidence) * n_bins).astype(np.intp), n_bins - 1)
    out = {"edges": edges.tolist()}
    for name, mask in (("auto_correct", ~needs_review & correct), ("auto_wrong", ~needs_review & ~correct),
                       ("review_correct", needs_review & correct), ("review_wrong", needs_review & ~correct)):
        out[name] = np.bincount(bins[mask], minlength=n_bins).tolist()
    return out


def model_info(model, path=None) -> dict:
    """What identifies the model in a metrics file."""
    p = model.policy
    return {"path": None if path is None else str(path), "model_id": model.model_id, "task": model.task,
            "classes": list(model.classes), "temperature": model.temperature,
            "confidence_threshold": p.confidence_threshold, "novelty_threshold": p.novelty_threshold,
            "burst_threshold": p.burst_threshold, "review_budget": p.review_budget,
            "target_accuracy": p.target_accuracy}


def aggregate(runs: list, keys) -> dict:
    """{key: {"mean", "std", "min", "max", "values"}} over runs (dicts of numbers); std uses n - 1."""
    out = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        if not values:
            out[key] = None
            continue
        v = np.asarray(values, dtype=np.float64)
        out[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                    "min": float(v.min()), "max": float(v.max()), "values": [float(x) for x in v]}
    return out


# ------------------------------------------------------------------------------------------------
def _share(mask) -> float | None:
    mask = np.asarray(mask, dtype=bool)
    return float(mask.mean()) if mask.size else None


def _macro_f1(y, pred, labels) -> float | None:
    if len(y) == 0:
        return None
    cm = bn.confusion_matrix(y, pred, labels=labels)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(bn.precision_recall_f1(cm)["f1"][present].mean()) if present.any() else None


def _ece(scored, y, valid) -> float | None:
    """ECE of the calibrated task probabilities (flows whose true label is one of the model's classes)."""
    lookup = {c: i for i, c in enumerate(scored.classes)}
    index = np.array([lookup.get(v, -1) for v in y.tolist()], dtype=np.intp)
    keep = valid & (index >= 0)
    if not keep.any():
        return None
    proba = np.asarray(scored.proba)[keep]
    if len(scored.classes) == 1:  # degenerate: one class, confidence 1
        return 0.0
    return bn.expected_calibration_error(proba, index[keep], n_bins=N_BINS)


def _reliability(confidence, correct) -> dict:
    curve = bn.reliability_curve(confidence, correct, n_bins=N_BINS)
    return {k: np.asarray(v).tolist() for k, v in curve.items()}


def _json_clean(value):
    """NaN/Inf -> None and NumPy scalars -> Python, so json.dumps(allow_nan=False) always works."""
    if isinstance(value, dict):
        return {str(k): _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _json_clean(value.tolist())
    return value
