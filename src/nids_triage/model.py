"""The triage model: feature encoder + network + temperature + novelty detector + deferral policy.

Training (``TriageModel.train``), all choices on a validation split of the training file only:

1. split the training flows (stratified by attack name, seeded) into train and validation parts;
2. fit the feature encoder on the train part;
3. train ``members`` MLPs (the lab's network, different seeds) on the *attack names* with balanced class
   weights. The task's labels (binary or the 5 categories) are sums of attack names, so a network that
   must tell the 22 attack types apart, each weighted equally, cannot ignore the rare R2L/U2R families
   that a coarse, imbalanced target lets it neglect; the task probability is the sum of its attack
   names' probabilities. The members' logits are averaged: a small ensemble removes most of the
   seed-to-seed spread a single network shows on NSL-KDD's shifted test set, and its members'
   disagreement is one more reason to ask a person;
4. fit the temperature on the averaged validation logits (NLL of the task labels);
5. fit the novelty detector on the train part's last hidden layers (all members side by side), and the
   burst detector's cell counts on the train part's normal flows (encoded); both thresholds on validation;
6. choose the deferral policy's confidence threshold on validation for the user's goal.

Only barenet's public API is used.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np

import barenet as bn

from .burst import BurstDetector
from .config import TrainConfig, check_config
from .features import FeatureEncoder
from .model_file import load_model, save_model
from .novelty import MahalanobisNovelty
from .policy import DeferralPolicy, risk_coverage
from .schema import TASKS, labels_for_task

NORMAL = "normal"  # the class the burst signal watches: its training flows are the reference (burst.py)


@dataclass
class ScoredFlows:
    """One entry per input flow, in input order."""

    labels: np.ndarray  # predicted task label ("" for invalid rows)
    confidence: np.ndarray  # calibrated probability of that label (NaN for invalid rows)
    proba: np.ndarray  # (n, n_classes) calibrated task probabilities
    classes: list
    needs_review: np.ndarray
    reasons: list  # list of lists of reason codes
    novelty: np.ndarray
    risk: np.ndarray
    unknown_values: dict = field(default_factory=dict)
    burst: np.ndarray | None = None  # the run's burst statistic per flow (None: a model without the detector)

    def __len__(self):
        return len(self.labels)


def table_fingerprint(table) -> dict:
    """Rows and a SHA-256 of a training table's contents: retraining must see the same file."""
    digest = hashlib.sha256(np.ascontiguousarray(table.numeric, dtype=np.float64).tobytes())
    for column in sorted(table.categorical):
        digest.update("\x1f".join(map(str, table.categorical[column])).encode("utf-8"))
    digest.update("\x1f".join(map(str, table.attack)).encode("utf-8"))
    return {"rows": int(len(table)), "sha256": digest.hexdigest()}


def check_same_training_table(model, table) -> None:
    """Refuse a table other than the one ``model`` was trained on (its validation split would overlap)."""
    expected = model.report.get("training_data")
    if expected is not None and table_fingerprint(table) != expected:
        raise ValueError(f"{table.source} is not the file this model was trained on ({expected['rows']:,} rows, "
                         f"sha256 {expected['sha256'][:12]}...): its validation split would overlap the "
                         "networks' training rows. Pass the original training file (--train-file / --data-dir)")


def training_split(table, config: "TrainConfig"):
    """(train_table, validation_table, train attack names, validation attack names), exactly as at training time."""
    if table.attack is None:
        raise ValueError(f"{table.source}: training flows need the attack label column")
    fine = labels_for_task(table.attack, "attack")
    train_rows, val_rows = stratified_split(fine, config.validation_fraction, config.seed)
    return table.subset(train_rows), table.subset(val_rows), fine[train_rows], fine[val_rows]


def stratified_split(labels: np.ndarray, fraction: float, seed: int):
    """(train_rows, validation_rows), each label split in proportion, shuffled from ``seed``."""
    return bn.stratified_split(labels, fraction, np.random.default_rng(seed))


class TriageModel:
    def __init__(self, task, encoder, networks, temperature, novelty, policy, config: TrainConfig, report=None,
                 burst=None):
        self.task, self.encoder, self.networks = task, encoder, list(networks)
        network = self.networks[0]
        self.temperature, self.novelty, self.policy = float(temperature), novelty, policy
        self.burst = burst  # BurstDetector, or None for model files from before it
        self.config = config
        self.report = report or {}  # validation metrics recorded at training time
        # the task's classes, and for each fine class (attack name) the index of the task class it sums into
        task_of_fine = labels_for_task(np.asarray(network.classes_, dtype=str), task)
        classes, groups = np.unique(task_of_fine, return_inverse=True)
        self.classes, self.groups = classes.tolist(), groups.astype(np.intp)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def train(cls, table, task: str, config: TrainConfig | None = None, *, verbose: int = 0) -> "TriageModel":
        config = config or TrainConfig()
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        if table.attack is None:
            raise ValueError(f"{table.source}: training flows need the attack label column")
        check_config(config)
        labels_for_task(table.attack, task)  # every attack name must map to the task, before any training
        train, val, y_tr, y_val = training_split(table, config)
        encoder = FeatureEncoder().fit(train)
        X_tr, X_val = encoder.transform(train).X, encoder.transform(val).X
        networks = []
        for member in range(config.members):
            net = bn.build_mlp(X_tr.shape[1], config.hidden, len(np.unique(y_tr)), dropout=config.dropout,
                               optimizer=bn.Adam(config.learning_rate), seed=[config.seed, member])
            net.fit(X_tr, y_tr, epochs=config.epochs, batch_size=config.batch_size, validation_data=(X_val, y_val),
                    class_weight=config.class_weight, verbose=verbose,
                    callbacks=[bn.EarlyStopping("val_loss", patience=config.patience)])
            networks.append(net)
        model = cls(task, encoder, networks, 1.0, None, None, config)
        model.report["training_data"] = table_fingerprint(table)
        model.fit_detectors(X_tr, y_tr)
        model.calibrate(X_val, y_val)
        return model

    @property
    def network(self):
        """The first member (its classes_ and history stand for all)."""
        return self.networks[0]

    def logits(self, X, batch_size=None) -> np.ndarray:
        """The members' logits, averaged."""
        kw = {} if batch_size is None else {"batch_size": batch_size}  # None: barenet's default inference batch
        return np.mean([net.decision_function(X, **kw) for net in self.networks], axis=0)

    def hidden(self, X, batch_size=None) -> np.ndarray:
        """Every member's last hidden layer, side by side (the novelty detector's feature space)."""
        kw = {} if batch_size is None else {"batch_size": batch_size}
        return np.hstack([net.hidden_representation(X, **kw) for net in self.networks])

    def for_task(self, table, task: str) -> "TriageModel":
        """The same networks recalibrated (temperature, novelty, threshold) for another task.

        The networks learn attack names whatever the task, with the same split and seeds, so this equals
        ``TriageModel.train(table, task, self.config)`` at the cost of a calibration instead of a training.
        The novelty and burst detectors depend only on the networks, the encoder and the attack names, not on
        the task: they are shared.
        """
        check_same_training_table(self, table)
        _, val, _, y_val = training_split(table, self.config)
        other = TriageModel(task, self.encoder, self.networks, 1.0, None, None, replace(self.config))
        other.report["training_data"] = self.report.get("training_data")
        other.novelty, other.burst = self.novelty, self.burst
        other.calibrate(self.encoder.transform(val).X, y_val)
        return other

    def fit_detectors(self, X_tr, y_tr, *, burst: bool = True) -> None:
        """Fit the novelty detector and, with ``burst``, the burst detector (on the normal flows) on the train part.

        ``X_tr`` are encoded flows, ``y_tr`` attack names. Their thresholds are left for ``calibrate``, which
        sets them on the validation part. ``burst=False`` leaves the model without a burst detector, as model
        files from before it: ``retrain`` keeps a model's signals as they are.
        """
        cfg, net = self.config, self.network
        self.novelty = MahalanobisNovelty(false_alarm_rate=cfg.novelty_false_alarm)
        self.novelty.fit(self.hidden(X_tr), np.searchsorted(net.classes_, y_tr), len(net.classes_))
        normal_tr = np.asarray(y_tr) == NORMAL
        self.burst = None  # (a training file without the normal class gets no burst detector either)
        if burst and normal_tr.any():
            self.burst = BurstDetector(false_alarm_rate=cfg.burst_false_alarm, seed=cfg.seed).fit(X_tr[normal_tr])

    def calibrate(self, X_val, y_val) -> None:
        """Temperature, the detectors' thresholds not set yet, and the deferral policy, all from the validation part.

        ``X_val`` are encoded flows, ``y_val`` attack names. The detectors are those of ``fit_detectors``, or ones
        already fitted and calibrated for these networks (``for_task`` shares them: their thresholds are kept).
        """
        cfg, net = self.config, self.network
        fine_val = np.searchsorted(net.classes_, y_val)
        task_val = labels_for_task(y_val, self.task)
        task_index = np.searchsorted(self.classes, task_val)
        logits = self.logits(X_val)
        raw = bn.calibrated_proba(logits, 1.0, groups=self.groups)  # T = 1: the networks' own probabilities
        before = {"nll": bn.nll(logits, task_index, groups=self.groups),
                  "ece": bn.expected_calibration_error(raw, task_index)}
        fitted = bn.fit_temperature(logits, task_index, groups=self.groups)
        proba = bn.calibrated_proba(logits, fitted, groups=self.groups)
        after = {"nll": bn.nll(logits, task_index, fitted, groups=self.groups),
                 "ece": bn.expected_calibration_error(proba, task_index)}
        # The temperature minimises NLL; it is kept only if it does not make the validation ECE worse
        # (with balanced class weights NLL and ECE can disagree); otherwise T = 1 and nothing changes.
        self.temperature = fitted if after["ece"] <= before["ece"] else 1.0
        if self.temperature != fitted:
            proba = raw
            after = dict(before)
        after["fitted_temperature"] = fitted

        novelty_val = self.novelty.score(self.hidden(X_val), logits.argmax(axis=1))
        if self.novelty.threshold_ is None:
            self.novelty.calibrate(novelty_val)

        burst, burst_val = self.burst, None
        if burst is not None:  # flows called normal against normal training flows (see burst.py)
            called_normal = self._called_normal(proba.argmax(axis=1))
            if burst.threshold_ is None:
                burst.calibrate(X_val, ordinary=np.asarray(y_val) == NORMAL, members=called_normal)
            burst_val = burst.score(X_val, valid=called_normal)

        confidence = proba.max(axis=1)
        correct = proba.argmax(axis=1) == task_index
        self.policy = DeferralPolicy(review_budget=cfg.review_budget, target_accuracy=cfg.target_accuracy)
        self.policy.fit(confidence, novelty_val, correct, self.novelty.threshold_, burst=burst_val,
                        burst_threshold=None if burst is None else burst.threshold_)
        needs, _, risk = self.policy.decide(confidence, novelty_val, burst=burst_val)
        self.report = {
            "training_data": self.report.get("training_data"),  # kept across recalibrations
            "n_validation": int(len(X_val)),
            "temperature": self.temperature,
            "calibration_before": before,
            "calibration_after": after,
            "validation_accuracy": float(correct.mean()),
            "validation_fine_accuracy": float((logits.argmax(axis=1) == fine_val).mean()),
            "validation_burst_share": None if burst is None else float((burst_val > burst.threshold_).mean()),
            "validation_review_share": float(needs.mean()),
            "validation_auto_accuracy": float(correct[~needs].mean()) if (~needs).any() else None,
            "risk_coverage": risk_coverage(risk, correct),
            "history": [None if m.history_ is None else m.history_.to_dict() for m in self.networks],
        }

    # ------------------------------------------------------------------------------------------
    def score(self, table, *, mc_samples: int = 0, batch_size: int | None = None) -> ScoredFlows:
        """Predict every flow and decide which need a person; never drops a row."""
        if len(table) == 0:  # an empty capture is a normal event: an empty result, not an error
            k = len(self.classes)
            return ScoredFlows(np.array([], dtype=str), np.array([]), np.zeros((0, k)), list(self.classes),
                               np.zeros(0, dtype=bool), [], np.array([]), np.array([]),
                               burst=None if self.burst is None else np.array([]))
        encoded = self.encoder.transform(table)
        invalid = encoded.invalid_value | table.bad
        logits = self.logits(encoded.X, batch_size=batch_size)
        proba = bn.calibrated_proba(logits, self.temperature, groups=self.groups)
        pred = proba.argmax(axis=1)
        confidence = proba[np.arange(len(pred)), pred]
        novelty = self.novelty.score(self.hidden(encoded.X, batch_size=batch_size), logits.argmax(axis=1))
        disagreement = None
        if mc_samples:  # Monte-Carlo dropout in every member: the share of votes against the prediction
            G = bn.group_matrix(self.groups, len(self.classes))
            kw = {} if batch_size is None else {"batch_size": batch_size}
            samples = np.concatenate([net.sample_predict_proba(encoded.X, mc_samples, seed=[self.config.seed, i], **kw)
                                      for i, net in enumerate(self.networks)], axis=0)
            votes = np.argmax(samples @ G, axis=2)
            disagreement = (votes != pred[None, :]).mean(axis=0)
        burst = None
        if self.burst is not None:  # the file's bursts among the flows called normal; invalid rows never count
            burst = self.burst.score(encoded.X, valid=self._called_normal(pred) & ~invalid)
        needs, reasons, risk = self.policy.decide(confidence, novelty, invalid_value=invalid,
                                                  unseen_category=encoded.unseen_category, disagreement=disagreement,
                                                  burst=burst)
        labels = np.array(self.classes, dtype=object)[pred].astype(str)
        labels[invalid] = ""
        confidence = np.where(invalid, np.nan, confidence)
        return ScoredFlows(labels, confidence, proba, list(self.classes), needs, reasons, novelty, risk,
                           encoded.unknown_values, burst)

    def _called_normal(self, predicted_index) -> np.ndarray:
        """Flows whose task prediction is the normal class: the burst signal's file (see burst.py)."""
        return np.asarray(self.classes, dtype=str)[predicted_index] == NORMAL

    def true_labels(self, table) -> np.ndarray:
        return labels_for_task(table.attack, self.task)

    @property
    def model_id(self) -> str:
        """A short fingerprint of everything that decides: weights, task, temperature, thresholds, encoder.

        Review-queue entries are keyed by it, so the 5-class and binary models built on the same networks
        (``for_task``) queue their flows separately.
        """
        digest = hashlib.sha256()
        for net in self.networks:
            digest.update(net.flat_params.tobytes())
        policy = self.policy.to_dict()
        if policy.get("burst_threshold") is None:  # a model file from before the burst detector keeps its id
            policy.pop("burst_threshold", None)
        parts = [self.task, self.temperature, policy, self.novelty.to_dict(), self.encoder.to_dict()]
        if self.burst is not None:
            parts.append(self.burst.to_dict())
            for array in self.burst.arrays().values():
                digest.update(array.tobytes())
        digest.update(json.dumps(parts, sort_keys=True).encode("utf-8"))
        return digest.hexdigest()[:16]

    # ------------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """One pickle-free .npz, written atomically (see ``model_file.py``)."""
        save_model(self, path)

    @classmethod
    def load(cls, path) -> "TriageModel":
        return load_model(path, cls)
