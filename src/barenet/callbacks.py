"""Callbacks with the hook names Keras users know, each receiving an explicit ``TrainingState``.

Hooks, in order: ``on_train_begin``, then per epoch ``on_epoch_begin``, ``on_batch_end`` (per batch),
``on_epoch_end``, and finally ``on_train_end`` -- always called, however training ends (last epoch,
``stop_training``, Ctrl-C or a non-finite loss), so EarlyStopping can restore the best weights in every case.
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TrainingState:
    """Everything a callback may read or change during ``fit``."""

    model: object
    epochs: int
    epoch: int = 0  # 0-based index of the current epoch (model-lifetime count, across fit calls)
    batch: int = 0
    batch_loss: float = 0.0
    logs: dict = field(default_factory=dict)  # the current epoch's record once it ends
    history: object = None
    stop_training: bool = False
    stop_reason: str | None = None
    last_good_params: np.ndarray | None = None  # flat copy from the end of the last finite epoch
    last_good_optimizer: dict | None = None  # the optimizer's state_dict() at that moment
    last_good_rng: dict | None = None  # the model's generator state at that moment
    _history_lengths: list = field(default_factory=list)  # (History, its length) at that moment

    def stop(self, reason: str) -> None:
        self.stop_training = True
        self.stop_reason = self.stop_reason or reason

    def remember_good(self) -> None:
        """Snapshot weights, optimizer state (moments, step count), generator and history lengths: a point to
        roll back to."""
        self.last_good_params = self.model.flat_params.copy()
        self.last_good_optimizer = self.model.optimizer.state_dict()
        self.last_good_rng = self.model.rng.bit_generator.state
        self._history_lengths = [(h, len(h)) for h in (self.history, self.model.history_) if h is not None]

    def roll_back(self, *, keep_records=False) -> None:
        """Put the model back exactly as it was at the last snapshot: a later ``fit`` then continues as if the
        failed or interrupted epoch had never started (the same shuffles, masks and Adam steps).

        The History goes back too, unless ``keep_records``: an interrupt inside ``on_epoch_end`` lands after
        that epoch's record was appended, and a kept record would be repeated by the next ``fit``.
        """
        if self.last_good_params is None:
            return
        self.model.flat_params[...] = self.last_good_params
        self.model.optimizer.load_state_dict(self.last_good_optimizer)
        self.model.rng.bit_generator.state = self.last_good_rng
        for history, length in ([] if keep_records else self._history_lengths):
            del history.records[length:]


class Callback:
    def on_train_begin(self, state: TrainingState): ...
    def on_epoch_begin(self, state: TrainingState): ...
    def on_batch_end(self, state: TrainingState): ...
    def on_epoch_end(self, state: TrainingState): ...
    def on_train_end(self, state: TrainingState): ...


def _better(mode: str, min_delta: float):
    if mode == "min":
        return lambda current, best: current < best - min_delta
    return lambda current, best: current > best + min_delta


def _resolve_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(k in monitor for k in ("acc", "f1", "r2")) else "min"


def _monitored(state: TrainingState, monitor: str) -> float:
    if monitor not in state.logs:
        raise ValueError(f"cannot monitor {monitor!r}: this epoch's record has {sorted(state.logs)} "
                         "(val_* keys need validation_data or validation_fraction)")
    return float(state.logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights=True`` (the default here, unlike Keras) the best epoch's weights are put
    back at ``on_train_end``: after patience runs out, after the last epoch, after Ctrl-C, after a NaN.
    """

    def __init__(self, monitor="val_loss", *, mode="auto", patience=5, min_delta=0.0, restore_best_weights=True):
        self.monitor, self.patience, self.min_delta = monitor, int(patience), abs(float(min_delta))
        self.mode = _resolve_mode(mode, monitor)
        self.restore_best_weights = restore_best_weights
        self.best = self.best_epoch = self.best_params = None
        self.wait = 0

    def on_train_begin(self, state):
        self.best, self.best_epoch, self.best_params, self.wait = None, None, None, 0

    def on_epoch_end(self, state):
        current = _monitored(state, self.monitor)
        if not math.isfinite(current):
            return
        if self.best is None or _better(self.mode, self.min_delta)(current, self.best):
            self.best, self.best_epoch, self.wait = current, state.epoch, 0
            if self.restore_best_weights:
                self.best_params = state.model.flat_params.copy()
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop("early_stopping")

    def on_train_end(self, state):
        if self.restore_best_weights and self.best_params is not None:
            state.model.flat_params[...] = self.best_params


class ModelCheckpoint(Callback):
    """Save the model (atomically) when ``monitor`` improves, or every ``every`` epochs.

    ``path`` may contain ``{epoch}`` (1-based), e.g. ``"ckpt-{epoch:03d}.npz"``.
    """

    def __init__(self, path, *, monitor="val_loss", mode="auto", save_best_only=True, every=1):
        self.path, self.monitor, self.save_best_only, self.every = str(path), monitor, save_best_only, int(every)
        self.mode = _resolve_mode(mode, monitor)
        self.best = None

    def on_epoch_end(self, state):
        path = self.path.format(epoch=state.epoch + 1)
        if self.save_best_only:
            current = _monitored(state, self.monitor)
            if math.isfinite(current) and (self.best is None or _better(self.mode, 0.0)(current, self.best)):
                self.best = current
                state.model.save(path)
        elif (state.epoch + 1) % self.every == 0:
            state.model.save(path)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement."""

    def __init__(self, monitor="val_loss", *, factor=0.1, patience=10, mode="auto", min_delta=1e-4, cooldown=0,
                 min_lr=0.0):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.mode, self.min_delta = _resolve_mode(mode, monitor), float(min_delta)
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)
        self.best, self.wait, self.cooling = None, 0, 0

    def on_epoch_end(self, state):
        current = _monitored(state, self.monitor)
        if self.cooling > 0:
            self.cooling -= 1
            self.wait = 0
        if self.best is None or _better(self.mode, self.min_delta)(current, self.best):
            self.best, self.wait = current, 0
            return
        self.wait += 1
        if self.wait >= self.patience and self.cooling == 0:
            opt = state.model.optimizer
            lr = opt.current_lr
            new_lr = max(lr * self.factor, self.min_lr)
            if new_lr < lr:
                opt.lr_scale *= new_lr / lr
            self.cooling, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """At each epoch start set the learning rate to ``schedule(epoch, current_lr)`` (epoch is 0-based)."""

    def __init__(self, schedule):
        self.schedule = schedule

    def on_epoch_begin(self, state):
        opt = state.model.optimizer
        opt.learning_rate = float(self.schedule(state.epoch, opt.current_lr))
        opt.lr_scale = 1.0


class TerminateOnNaN(Callback):
    """Stop at the first NaN/Inf batch loss and roll the model back (weights, optimizer state, generator) to
    the start of that epoch, the end of the last one with a finite loss."""

    def on_batch_end(self, state):
        if not math.isfinite(state.batch_loss):
            state.stop("non_finite")
            # weights and the optimizer's moments (poisoned by the NaN step) both; the records of the epochs
            # that ran stay, as the loss curve up to the divergence
            state.roll_back(keep_records=True)
            warnings.warn(
                f"loss became {state.batch_loss} at epoch {state.epoch + 1}, batch {state.batch + 1}; training "
                "stopped and the weights from the last epoch with a finite loss were kept. Try a smaller "
                "learning rate, gradient clipping (clip_norm=...) or scaling the inputs.",
                RuntimeWarning, stacklevel=2)


class CSVLogger(Callback):
    """Append each epoch's record to a CSV file (header written once), flushed every epoch.

    With ``append=True`` on an existing file, rows follow that file's header; a run whose records have
    different keys is refused rather than written into the wrong columns.
    """

    def __init__(self, path, *, append=False):
        self.path, self.append = str(path), append
        self._file = self._writer = None

    def on_train_begin(self, state):
        self._existing_header = None
        if self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                self._existing_header = next(csv.reader(f), None)
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._writer = None

    def on_epoch_end(self, state):
        if self._writer is None:
            keys = list(state.logs)
            if self._existing_header is not None and self._existing_header != keys:
                raise ValueError(f"CSVLogger(append=True): {self.path} has columns {self._existing_header}, "
                                 f"this run logs {keys}; log to a new file instead")
            self._writer = csv.DictWriter(self._file, fieldnames=keys, extrasaction="ignore")
            if self._existing_header is None:
                self._writer.writeheader()
        self._writer.writerow(state.logs)
        self._file.flush()

    def on_train_end(self, state):
        if self._file is not None:
            self._file.close()
            self._file = None
