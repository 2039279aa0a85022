"""Callbacks: EarlyStopping in all four endings, ModelCheckpoint, ReduceLROnPlateau, LearningRateScheduler, CSVLogger.

Most tests drive the monitored value from a script (a callback that writes ``state.logs["score"]`` before
the callback under test runs), so which epoch is "best" is known exactly.
"""
from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

import barenet as bn


class Script(bn.Callback):
    def __init__(self, scores):
        self.scores = list(scores)

    def on_epoch_end(self, state):
        state.logs["score"] = self.scores[state.epoch]


class Snapshots(bn.Callback):
    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, state):
        self.weights[state.epoch] = state.model.flat_params.copy()


class InterruptAt(bn.Callback):
    def __init__(self, epoch, batch=1):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, state):
        if state.epoch == self.epoch and state.batch == self.batch:
            raise KeyboardInterrupt


class BreakWeightsAfter(bn.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state):
        if state.epoch == self.epoch:
            state.model.flat_params[...] = np.nan


def _fit(blobs, scores, epochs, *extra, patience=3, **es_kwargs):
    X, y = blobs
    net = bn.build_mlp(hidden=(16,), n_outputs=3, seed=0)
    snaps = Snapshots()
    early = bn.EarlyStopping("score", patience=patience, **es_kwargs)
    history = net.fit(X, y, epochs=epochs, batch_size=32, callbacks=[Script(scores), early, snaps, *extra])
    return net, history, snaps, early


def test_early_stopping_by_patience_restores_the_best_epoch(blobs):
    net, history, snaps, early = _fit(blobs, [5, 3, 4, 4, 4, 4, 4, 4], epochs=8, patience=3)
    assert history.stop_reason == "early_stopping" and len(history) == 5  # epochs 2, 3, 4 without improvement
    assert early.best_epoch == 1 and early.best == 3
    np.testing.assert_array_equal(net.flat_params, snaps.weights[1])
    assert not np.array_equal(snaps.weights[1], snaps.weights[4])


def test_early_stopping_at_the_last_epoch_restores_the_best_epoch(blobs):
    net, history, snaps, _ = _fit(blobs, [5, 4, 1, 3, 3], epochs=5, patience=10)
    assert history.stop_reason == "completed" and len(history) == 5
    np.testing.assert_array_equal(net.flat_params, snaps.weights[2])


def test_early_stopping_after_keyboard_interrupt_restores_the_best_epoch(blobs):
    with pytest.warns(RuntimeWarning, match="training interrupted"):
        net, history, snaps, _ = _fit(blobs, [5, 1, 3, 3, 3, 3], 6, InterruptAt(epoch=3), patience=10)
    assert history.stop_reason == "interrupted" and len(history) == 3
    np.testing.assert_array_equal(net.flat_params, snaps.weights[1])
    assert not np.array_equal(snaps.weights[1], snaps.weights[2])  # not merely the last completed epoch


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_early_stopping_after_a_non_finite_loss_restores_the_best_epoch(blobs):
    with pytest.warns(RuntimeWarning, match="loss became nan at epoch 4"):
        net, history, snaps, _ = _fit(blobs, [1, 3, 4, 4, 4, 4], 6, BreakWeightsAfter(epoch=2), patience=10)
    assert history.stop_reason == "non_finite" and len(history) == 3
    np.testing.assert_array_equal(net.flat_params, snaps.weights[0])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_early_stopping_on_val_loss_when_a_huge_learning_rate_diverges_in_a_later_epoch(blobs):
    X, y = blobs
    net = bn.build_mlp(hidden=(16,), n_outputs=3, optimizer=bn.SGD(0.05), seed=0)
    snaps = Snapshots()
    schedule = bn.LearningRateScheduler(lambda epoch, lr: 1e30 if epoch == 4 else 0.05)
    with pytest.warns(RuntimeWarning, match="loss became"):
        history = net.fit(X, y, epochs=8, validation_fraction=0.2,
                          callbacks=[schedule, bn.EarlyStopping("val_loss", patience=10), snaps])
    assert history.stop_reason == "non_finite" and len(history) == 4
    best = int(np.argmin(history["val_loss"]))
    np.testing.assert_array_equal(net.flat_params, snaps.weights[best])
    assert np.isfinite(net.flat_params).all()


def test_early_stopping_without_restore_keeps_the_last_weights(blobs):
    net, history, snaps, _ = _fit(blobs, [5, 3, 4, 4, 4, 4], epochs=6, patience=2, restore_best_weights=False)
    assert len(history) == 4
    np.testing.assert_array_equal(net.flat_params, snaps.weights[3])


def test_early_stopping_min_delta_and_max_mode(blobs):
    _, history, _, early = _fit(blobs, [5, 4.95, 4.9, 4.85, 4.8], epochs=5, patience=2, min_delta=0.1)
    assert len(history) == 3 and early.best_epoch == 0  # improvements smaller than min_delta do not count
    _, history, _, early = _fit(blobs, [0.1, 0.5, 0.4, 0.3, 0.2], epochs=5, patience=2, mode="max")
    assert len(history) == 4 and early.best_epoch == 1
    assert bn.EarlyStopping("val_accuracy").mode == "max" and bn.EarlyStopping("val_loss").mode == "min"
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max'"):
        bn.EarlyStopping(mode="maximum")


def test_early_stopping_on_real_overfitting(blobs):
    X, y = blobs
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(len(y)) < 0.3, rng.integers(0, 3, len(y)), y)  # 30 % label noise
    net = bn.build_mlp(hidden=(128, 128), n_outputs=3, optimizer=bn.Adam(0.01), seed=0)
    snaps = Snapshots()
    history = net.fit(X, noisy, epochs=60, batch_size=32, validation_fraction=0.3,
                      callbacks=[bn.EarlyStopping("val_loss", patience=4), snaps])
    assert history.stop_reason == "early_stopping" and len(history) < 60
    best = int(np.argmin(history["val_loss"]))
    assert best < len(history) - 1
    np.testing.assert_array_equal(net.flat_params, snaps.weights[best])


def test_monitoring_a_missing_key_is_a_clear_error(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"cannot monitor 'val_loss'.*need validation_data or validation_fraction"):
        bn.build_mlp(hidden=(4,), n_outputs=3).fit(X, y, epochs=2, callbacks=[bn.EarlyStopping("val_loss")])


def test_model_checkpoint_best_only(blobs, tmp_path):
    X, y = blobs
    net, snaps = bn.build_mlp(hidden=(8,), n_outputs=3, seed=0), Snapshots()
    ckpt = bn.ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}.npz", monitor="score")
    net.fit(X, y, epochs=5, callbacks=[Script([3, 2, 2.5, 1, 4]), ckpt, snaps])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-01.npz", "ckpt-02.npz", "ckpt-04.npz"]
    np.testing.assert_array_equal(bn.load(tmp_path / "ckpt-04.npz").flat_params, snaps.weights[3])
    single = bn.ModelCheckpoint(tmp_path / "best.npz", monitor="score")
    net2, snaps2 = bn.build_mlp(hidden=(8,), n_outputs=3, seed=1), Snapshots()
    net2.fit(X, y, epochs=5, callbacks=[Script([3, 2, 2.5, 1, 4]), single, snaps2])
    np.testing.assert_array_equal(bn.load(tmp_path / "best.npz").flat_params, snaps2.weights[3])
    assert not list(tmp_path.glob(".tmp-*"))


def test_model_checkpoint_every_n_epochs(blobs, tmp_path):
    X, y = blobs
    net, snaps = bn.build_mlp(hidden=(8,), n_outputs=3, seed=0), Snapshots()
    ckpt = bn.ModelCheckpoint(tmp_path / "e{epoch}.npz", save_best_only=False, every=2)
    net.fit(X, y, epochs=5, callbacks=[ckpt, snaps])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e2.npz", "e4.npz"]
    loaded = bn.load(tmp_path / "e4.npz")
    np.testing.assert_array_equal(loaded.flat_params, snaps.weights[3])
    assert len(loaded.history_) == 4


def test_reduce_lr_on_plateau_lowers_the_learning_rate(blobs):
    X, y = blobs
    net = bn.build_mlp(hidden=(8,), n_outputs=3, optimizer=bn.Adam(1e-3), seed=0)
    plateau = bn.ReduceLROnPlateau("score", factor=0.5, patience=2, min_lr=3e-4)
    history = net.fit(X, y, epochs=7, callbacks=[Script([1.0] * 7), plateau])
    # "lr" is the rate used during each epoch; it halves after every 2 epochs without improvement, floored at 3e-4
    assert history["lr"] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 3e-4, 3e-4])
    assert net.optimizer.current_lr == pytest.approx(3e-4)
    improving = bn.build_mlp(hidden=(8,), n_outputs=3, optimizer=bn.Adam(1e-3), seed=0)
    history = improving.fit(X, y, epochs=5, callbacks=[Script([5, 4, 3, 2, 1]),
                                                       bn.ReduceLROnPlateau("score", factor=0.5, patience=1)])
    assert history["lr"] == [1e-3] * 5
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\)"):
        bn.ReduceLROnPlateau(factor=2.0)


def test_learning_rate_scheduler_sets_the_rate_each_epoch(blobs):
    X, y = blobs
    net = bn.build_mlp(hidden=(8,), n_outputs=3, optimizer=bn.SGD(0.1), seed=0)
    seen = []
    history = net.fit(X, y, epochs=4, callbacks=[bn.LearningRateScheduler(lambda epoch, lr: seen.append(lr) or
                                                                           0.1 * 0.5**epoch)])
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.025])  # it receives the current rate


def test_learning_rate_scheduler_really_changes_the_step(blobs):
    X, y = blobs
    frozen = bn.build_mlp(5, hidden=(8,), n_outputs=3, optimizer=bn.SGD(0.1), seed=0)
    before = frozen.flat_params.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen.fit(X, y, epochs=1, callbacks=[bn.LearningRateScheduler(lambda e, lr: 1e-30)])
    np.testing.assert_allclose(frozen.flat_params, before, atol=1e-20)


def test_csv_logger_writes_a_row_per_epoch(blobs, tmp_path):
    X, y = blobs
    path = tmp_path / "log.csv"
    net = bn.build_mlp(hidden=(8,), n_outputs=3, seed=0)
    history = net.fit(X, y, epochs=3, validation_fraction=0.2, callbacks=[bn.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == history.keys()
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_loss"]) for r in rows] == pytest.approx(history["val_loss"])
    net.fit(X, y, epochs=2, validation_fraction=0.2, callbacks=[bn.CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 5 and lines[0].startswith("epoch,")  # one header, five rows
    net.fit(X, y, epochs=1, validation_fraction=0.2, callbacks=[bn.CSVLogger(path)])
    assert len(path.read_text().splitlines()) == 2  # append=False starts over


def test_csvlogger_append_refuses_a_run_with_other_columns(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 3))
    y = (X[:, 0] > 0).astype(int)
    path = tmp_path / "log.csv"
    net = bn.build_mlp(hidden=(4,), n_outputs=2, seed=0)
    net.fit(X, y, epochs=2, callbacks=[bn.CSVLogger(path)])
    net.fit(X, y, epochs=1, callbacks=[bn.CSVLogger(path, append=True)])  # same columns: appended
    assert len(path.read_text().splitlines()) == 1 + 3
    with pytest.raises(ValueError, match="has columns .* this run logs"):
        net.fit(X, y, epochs=1, validation_data=(X[:8], y[:8]), callbacks=[bn.CSVLogger(path, append=True)])
