"""Folding analysts' verdicts back into a model (``nids-triage retrain --with-reviews``).

Recipe (fine-tuning; the feature encoder is kept as it is):

1. every closed review item whose features parse and are valid becomes a training flow; its verdict is
   mapped to one of the network's fine classes (attack names seen in training, see ``map_verdicts``);
2. the training file is split exactly as at training time (same seed and validation fraction); a replay
   sample of its train part is mixed with the reviewed flows (which get ``review_weight``), and the
   network continues from its weights and optimizer state with ``partial_fit`` for a few epochs, with
   the same class weighting as training;
3. temperature, novelty and burst detectors (train part + reviewed flows) and deferral thresholds are refitted
   on the unchanged validation part, which also gives the before/after comparison (a model file from before
   the burst detector stays without one: the comparison is then about the fine-tuning alone).

Verdict mapping (the network predicts attack names; a verdict may be coarser or unknown to it):
* an attack name the network knows -> that class;
* a task label ("normal", "attack", "DoS", "Probe", "R2L", "U2R") or an attack name never seen in training
  (its category is used, e.g. mscan -> Probe) -> the fine class, among those consistent with the verdict,
  that the current network finds most probable for that flow (the verdict decides the family, the network
  only the detail the analyst did not give);
* anything else (or an unseen attack name in the ``attack`` task, which has no output for it) is skipped.
"""
from __future__ import annotations

import math

import numpy as np

import barenet as bn

from .evaluation import evaluate_scored
from .flows import FlowTable
from .model import TriageModel, check_same_training_table, training_split
from .schema import ATTACK_CATEGORY, CATEGORICAL, CATEGORIES, NUMERIC_COLUMNS, labels_for_task

COARSE_VERDICTS = ("attack",) + CATEGORIES


def canonical_verdict(text: str) -> str:
    """The canonical spelling of a verdict (case-insensitive), or ValueError listing what is allowed."""
    value = str(text).strip()
    known = {v.lower(): v for v in (*COARSE_VERDICTS, *ATTACK_CATEGORY)}
    if value.lower() not in known:
        raise ValueError(f"unknown verdict {value!r}: use a task label ({', '.join(COARSE_VERDICTS)}) "
                         "or an NSL-KDD attack name (e.g. neptune, mscan)")
    return known[value.lower()]


def map_verdicts(verdicts, fine_proba, fine_classes, task) -> np.ndarray:
    """Fine training label for each verdict ('' = skipped); ``fine_proba`` (n, n_fine) from the network."""
    fine = np.asarray(fine_classes, dtype=str)
    family = np.array([_family(c) for c in fine])
    out = np.full(len(verdicts), "", dtype=object)
    for i, v in enumerate(verdicts):
        try:
            v = canonical_verdict(v)
        except ValueError:
            continue
        if v in fine:
            out[i] = v
            continue
        if v in ATTACK_CATEGORY and task == "attack":
            continue  # an attack name the network has no output for: cannot be taught by fine-tuning
        wanted = ATTACK_CATEGORY.get(v, v)  # an unseen attack name -> its category
        ok = family != "normal" if wanted == "attack" else family == wanted
        if ok.any():
            out[i] = fine[np.flatnonzero(ok)[np.argmax(fine_proba[i, ok])]]
    return out.astype(str)


def table_from_features(features_list, source="review queue") -> tuple:
    """(FlowTable, usable mask) from review items' raw feature dicts; unusable rows hold NaN."""
    n = len(features_list)
    numeric = np.full((n, len(NUMERIC_COLUMNS)), np.nan)
    cats = {c: np.full(n, "", dtype=object) for c in CATEGORICAL}
    usable = np.zeros(n, dtype=bool)
    for i, feats in enumerate(features_list):
        try:
            row = [float(feats[c]) for c in NUMERIC_COLUMNS]
            values = {c: str(feats[c]).strip() for c in CATEGORICAL}
        except (KeyError, TypeError, ValueError):
            continue
        numeric[i] = row
        for c in CATEGORICAL:
            cats[c][i] = values[c]
        usable[i] = True
    empty = np.empty(n, dtype=object)
    table = FlowTable(numeric=numeric, categorical={c: v.astype(str) for c, v in cats.items()},
                      numeric_columns=NUMERIC_COLUMNS, attack=None, difficulty=None, source=source,
                      line=np.arange(1, n + 1, dtype=np.int64), bad_reason=empty.copy(), bad_message=empty.copy())
    return table, usable


def fine_tune(model: TriageModel, reviews: list, train_table, *, epochs: int = 3, replay: int = 20000,
              review_weight: float = 2.0, learning_rate: float | None = None, seed: int = 0) -> tuple:
    """Fine-tune ``model`` in place on closed reviews; returns (model, summary dict).

    ``reviews``: ReviewQueue.closed_verdicts() entries. ``train_table``: the flows the model was trained on.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if isinstance(replay, bool) or not isinstance(replay, int) or replay < 0:
        raise ValueError(f"replay must be a whole number >= 0, got {replay!r}")
    for name, value in (("review_weight", review_weight), ("learning_rate", learning_rate)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    net, enc, cfg = model.network, model.encoder, model.config
    model_id = model.model_id  # a hash of every weight: once, not per review
    table, usable = table_from_features([r["features"] for r in reviews])
    encoded = enc.transform(table)
    usable &= ~encoded.invalid_value
    X_rev = encoded.X[usable]
    verdicts = [r["verdict"] for r in reviews]
    fine_rev = np.full(len(reviews), "", dtype=object)
    if usable.any():
        fine_proba = bn.calibrated_proba(model.logits(X_rev), 1.0)  # the members' averaged fine classes
        fine_rev[usable] = map_verdicts([v for v, u in zip(verdicts, usable, strict=True) if u], fine_proba,
                                        net.classes_, model.task)
    keep = fine_rev != ""
    X_rev, y_rev = encoded.X[keep], fine_rev[keep].astype(str)
    summary = {"n_closed": len(reviews), "n_used": int(keep.sum()), "n_unusable_features": int((~usable).sum()),
               # a verdict is about the flow, whichever model deferred it: those of other models count too
               "n_other_models": sum(r["model_id"] != model_id for r in reviews),
               "n_unmapped_verdict": int((usable & ~keep).sum()),
               "fine_labels": {str(k): int(v) for k, v in zip(*np.unique(y_rev, return_counts=True), strict=True)}}
    if not keep.any():
        raise ValueError("no closed review can be used for retraining "
                         f"({summary['n_unusable_features']} with unusable features, "
                         f"{summary['n_unmapped_verdict']} with verdicts the model cannot learn)")

    check_same_training_table(model, train_table)
    train, val, y_tr, y_val = training_split(train_table, cfg)
    X_tr, X_val = enc.transform(train).X, enc.transform(val).X
    # flows of classes the network has no output for (another training file) cannot be replayed
    known_tr, known_val = np.isin(y_tr, net.classes_), np.isin(y_val, net.classes_)
    X_tr, y_tr, X_val, y_val = X_tr[known_tr], y_tr[known_tr], X_val[known_val], y_val[known_val]
    before = _validation_metrics(model, val.subset(np.flatnonzero(known_val)), X_rev, y_rev)

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(X_tr), size=min(int(replay), len(X_tr)), replace=False)
    X_mix = np.concatenate([X_tr[pick], X_rev])
    y_mix = np.concatenate([y_tr[pick], y_rev])
    weight = np.concatenate([np.ones(len(pick)), np.full(len(y_rev), float(review_weight))])
    for member in model.networks:  # every ensemble member sees the same mix
        if learning_rate is not None:
            member.optimizer.learning_rate = float(learning_rate)
        for _ in range(int(epochs)):
            member.partial_fit(X_mix, y_mix, sample_weight=weight, class_weight=cfg.class_weight,
                               batch_size=cfg.batch_size)
    # a model from before the burst signal stays without it
    model.fit_detectors(np.concatenate([X_tr, X_rev]), np.concatenate([y_tr, y_rev]), burst=model.burst is not None)
    model.calibrate(X_val, y_val)
    after = _validation_metrics(model, val.subset(np.flatnonzero(known_val)), X_rev, y_rev)
    summary.update({"epochs": int(epochs), "replay": len(pick), "review_weight": float(review_weight),
                    "before": before, "after": after})
    model.report["retrain"] = summary
    return model, summary


KEYS = ("accuracy", "macro_f1", "review_share", "auto_accuracy", "review_accuracy", "ece")


def _validation_metrics(model, val_table, X_rev, y_rev) -> dict:
    """Metrics on the validation part, plus accuracy on the reviewed flows (task labels)."""
    scored = model.score(val_table)
    m = evaluate_scored(model.true_labels(val_table), scored, task=model.task, split="validation")
    out = {k: m[k] for k in KEYS}
    proba = bn.calibrated_proba(model.logits(X_rev), model.temperature, groups=model.groups)
    pred = np.asarray(model.classes)[proba.argmax(axis=1)]
    out["reviewed_fit_accuracy"] = float((pred == labels_for_task(y_rev, model.task)).mean())
    return out


def _family(fine_class: str) -> str:
    return "normal" if fine_class == "normal" else ATTACK_CATEGORY.get(fine_class, "attack")
