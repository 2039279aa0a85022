"""nids-triage: intrusion detection that decides the easy flows and sends the uncertain ones to a person.

>>> from nids_triage import load_nsl_kdd, TriageModel, TrainConfig
>>> model = TriageModel.train(load_nsl_kdd("train"), "5class", TrainConfig(review_budget=0.14))  # doctest: +SKIP
>>> scored = model.score(load_nsl_kdd("test+"))                                                 # doctest: +SKIP
>>> scored.needs_review.mean(), scored.reasons[:3]                                              # doctest: +SKIP
"""
from .burst import BurstDetector
from .config import TrainConfig
from .datasets import DataNotFoundError, load_nsl_kdd
from .features import EncodedFlows, FeatureEncoder
from .flows import FlowFileError, FlowTable, read_flow_csv
from .model import ScoredFlows, TriageModel
from .novelty import MahalanobisNovelty
from .policy import REASONS, DeferralPolicy, risk_coverage
from .review_queue import ReviewQueue
from .schema import ATTACK_CATEGORY, TASKS, TEST_ONLY_ATTACKS, labels_for_task

__all__ = [
    "load_nsl_kdd", "read_flow_csv", "FlowTable", "FlowFileError", "DataNotFoundError",
    "FeatureEncoder", "EncodedFlows", "TriageModel", "TrainConfig", "ScoredFlows",
    "MahalanobisNovelty", "BurstDetector", "DeferralPolicy", "risk_coverage", "REASONS", "ReviewQueue",
    "ATTACK_CATEGORY", "TASKS", "TEST_ONLY_ATTACKS", "labels_for_task",
]
