"""Learning-rate schedules: plain callables ``schedule(step) -> learning rate``.

``step`` counts optimizer updates from 0. Each schedule is a small class only so that it can be saved
in a model file (``get_config``) and rebuilt by name (``schedule_from_config``).
"""
from __future__ import annotations

import math


class Schedule:
    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self) -> dict:
        return dict(vars(self))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class Constant(Schedule):
    """lr(t) = lr."""

    def __init__(self, lr: float):
        self.lr = float(lr)

    def __call__(self, step):
        return self.lr


class StepDecay(Schedule):
    """lr(t) = lr * drop ^ floor(t / every)."""

    def __init__(self, lr: float, drop: float = 0.5, every: int = 1000):
        self.lr, self.drop, self.every = float(lr), float(drop), int(every)

    def __call__(self, step):
        return self.lr * self.drop ** (step // self.every)


class ExponentialDecay(Schedule):
    """lr(t) = lr * rate ^ (t / steps)."""

    def __init__(self, lr: float, rate: float = 0.96, steps: int = 1000):
        self.lr, self.rate, self.steps = float(lr), float(rate), int(steps)

    def __call__(self, step):
        return self.lr * self.rate ** (step / self.steps)


class CosineDecay(Schedule):
    """Linear warm-up from 0 to lr over ``warmup`` steps, then lr_min + (lr - lr_min)(1 + cos(pi u))/2."""

    def __init__(self, lr: float, total_steps: int, warmup: int = 0, lr_min: float = 0.0):
        self.lr, self.total_steps, self.warmup, self.lr_min = float(lr), int(total_steps), int(warmup), float(lr_min)

    def __call__(self, step):
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        u = min(1.0, (step - self.warmup) / max(1, self.total_steps - self.warmup))
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * u))


SCHEDULES = {cls.__name__: cls for cls in (Constant, StepDecay, ExponentialDecay, CosineDecay)}


def schedule_from_config(entry):
    """Rebuild from ``{"class": ..., "config": ...}``, or pass a float through as a constant."""
    if isinstance(entry, (int, float)):
        return float(entry)
    if entry["class"] not in SCHEDULES:
        raise ValueError(f"unknown schedule {entry['class']!r}; known: {sorted(SCHEDULES)}")
    return SCHEDULES[entry["class"]](**entry["config"])


def schedule_to_config(lr):
    if isinstance(lr, Schedule):
        return {"class": type(lr).__name__, "config": lr.get_config()}
    if callable(lr):
        raise ValueError("only barenet.schedules objects (or a float) can be saved as a learning rate")
    return float(lr)
