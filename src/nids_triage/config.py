"""The triage model's settings: hyper-parameters, the review goal and the false-alarm rates, checked up front."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .policy import DeferralPolicy


@dataclass
class TrainConfig:
    """Hyper-parameters; the defaults are the lab's network (64 -> 32 ReLU, dropout, He init, batch 64, Adam)."""

    hidden: tuple = (64, 32)
    dropout: float = 0.2
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    class_weight: str | None = "balanced"
    validation_fraction: float = 0.2
    patience: int = 3
    members: int = 5
    novelty_false_alarm: float = 0.02
    burst_false_alarm: float = 0.02
    review_budget: float | None = 0.14
    target_accuracy: float | None = None
    seed: int = 0

    def to_dict(self):
        d = dict(vars(self))
        d["hidden"] = list(self.hidden)
        return d


def check_config(config: TrainConfig) -> None:
    """Fail before training, not after: the goal, the sizes, the rates, the split."""
    DeferralPolicy(review_budget=config.review_budget, target_accuracy=config.target_accuracy)
    for name in ("members", "epochs", "batch_size", "patience"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if not (isinstance(config.learning_rate, (int, float)) and math.isfinite(config.learning_rate)
            and config.learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {config.learning_rate!r}")
    rates = config.dropout if isinstance(config.dropout, (list, tuple)) else [config.dropout]
    if isinstance(config.dropout, (list, tuple)) and len(rates) != len(config.hidden):
        raise ValueError(f"dropout must be one rate or one per hidden layer ({len(config.hidden)}), "
                         f"got {config.dropout!r}")
    for rate in rates:  # None: no dropout, as in build_mlp
        if rate is not None and not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 <= rate < 1):
            raise ValueError(f"dropout must be a rate in [0, 1) or one per hidden layer, got {config.dropout!r}")
    for name, high in (("validation_fraction", 1.0), ("novelty_false_alarm", 1.0), ("burst_false_alarm", 0.5)):
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < high):
            raise ValueError(f"{name} must be in (0, {high:g}), got {value!r}")
