"""The training loop: hook order, stopping, History, determinism, splits, weights, resumption, batching, output."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import barenet as bn
from barenet.targets import TargetEncoder


class Recorder(bn.Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, state):
        self.calls.append(("on_train_begin",))

    def on_epoch_begin(self, state):
        self.calls.append(("on_epoch_begin", state.epoch))

    def on_batch_end(self, state):
        self.calls.append(("on_batch_end", state.epoch, state.batch))

    def on_epoch_end(self, state):
        self.calls.append(("on_epoch_end", state.epoch, dict(state.logs)))

    def on_train_end(self, state):
        self.calls.append(("on_train_end", state.stop_reason))


class Snapshots(bn.Callback):
    """The weights at the end of every epoch, by 0-based epoch."""

    def __init__(self):
        self.weights = {}

    def on_epoch_end(self, state):
        self.weights[state.epoch] = state.model.flat_params.copy()


def _net(seed=0, **kwargs):
    kwargs.setdefault("hidden", (16,))
    return bn.build_mlp(n_outputs=3, seed=seed, **kwargs)


def test_hook_order(blobs):
    X, y = blobs
    rec = Recorder()
    _net().fit(X[:10], y[:10], epochs=2, batch_size=4, callbacks=[rec])  # 3 batches per epoch
    names = [(c[0],) + tuple(x for x in c[1:] if not isinstance(x, dict)) for c in rec.calls]
    assert names == [
        ("on_train_begin",),
        ("on_epoch_begin", 0), ("on_batch_end", 0, 0), ("on_batch_end", 0, 1), ("on_batch_end", 0, 2),
        ("on_epoch_end", 0),
        ("on_epoch_begin", 1), ("on_batch_end", 1, 0), ("on_batch_end", 1, 1), ("on_batch_end", 1, 2),
        ("on_epoch_end", 1),
        ("on_train_end", None),
    ]
    epoch_logs = [c[2] for c in rec.calls if c[0] == "on_epoch_end"]
    assert [r["epoch"] for r in epoch_logs] == [1, 2] and all("loss" in r for r in epoch_logs)


def test_stop_training_from_a_callback_stops(blobs):
    X, y = blobs

    class StopAtThird(bn.Callback):
        def on_epoch_end(self, state):
            if state.epoch == 2:
                state.stop("my_reason")

    rec = Recorder()
    history = _net().fit(X, y, epochs=10, callbacks=[StopAtThird(), rec])
    assert len(history) == 3 and history.stop_reason == "my_reason"
    assert rec.calls[-1] == ("on_train_end", "my_reason")
    assert sum(c[0] == "on_epoch_begin" for c in rec.calls) == 3


def test_stop_training_flag_alone_also_stops(blobs):
    X, y = blobs

    class Flag(bn.Callback):
        def on_epoch_end(self, state):
            state.stop_training = True

    assert len(_net().fit(X, y, epochs=5, callbacks=[Flag()])) == 1


def test_history_keys_values_and_accumulation(blobs):
    X, y = blobs
    net = _net()
    history = net.fit(X, y, epochs=3, validation_fraction=0.2)
    assert history.keys() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert history["epoch"] == [1, 2, 3] and history.stop_reason == "completed"
    assert all(isinstance(v, float) and v > 0 for v in history["loss"])
    assert all(0.0 <= v <= 1.0 for v in history["val_accuracy"])
    assert history["lr"] == [0.001] * 3
    assert history["val_loss"][-1] < history["val_loss"][0]  # it learns
    more = net.fit(X, y, epochs=2)
    assert more["epoch"] == [4, 5] and "val_loss" not in more
    assert len(net.history_) == 5 and net.history_["epoch"] == [1, 2, 3, 4, 5]
    with pytest.raises(KeyError, match="history has no 'val_f1'"):
        history["val_f1"]


def test_history_json_round_trip_including_non_finite_values(blobs):
    X, y = blobs
    history = _net().fit(X, y, epochs=2, validation_fraction=0.2)
    history.append({"epoch": 3, "loss": float("nan"), "val_loss": float("inf"), "lr": 0.001, "time": 0.1})
    text = history.to_json()
    json.loads(text)  # strict JSON
    assert "NaN" not in text and "Infinity" not in text
    back = bn.History.from_json(text)
    assert back == history and back.stop_reason == "completed"
    assert math.isnan(back["loss"][2]) and back["val_loss"][2] == math.inf
    assert back["val_accuracy"] == history["val_accuracy"]


def test_history_table(blobs):
    X, y = blobs
    history = _net().fit(X, y, epochs=3)
    lines = history.table(["epoch", "loss", "accuracy"]).splitlines()
    assert lines[0].split() == ["epoch", "loss", "accuracy"]
    assert len(lines) == 4
    assert lines[2].split()[0] == "2" and float(lines[2].split()[1]) == pytest.approx(history["loss"][1], abs=1e-4)


def _run(blobs, seed):
    X, y = blobs
    net = _net(seed, hidden=(16, 8), dropout=0.3)
    history = net.fit(X, y, epochs=4, batch_size=32, validation_fraction=0.25)
    return net, [{k: v for k, v in r.items() if k != "time"} for r in history.records]


def test_same_seed_gives_bit_identical_history_and_weights(blobs):
    (a, ha), (b, hb), (_, hc) = _run(blobs, 5), _run(blobs, 5), _run(blobs, 6)
    assert ha == hb  # exact float equality, every key but "time"
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert ha != hc


def test_stratified_split_keeps_every_class_share_within_one_point():
    rng = np.random.default_rng(0)
    shares = np.array([0.6, 0.25, 0.1, 0.04, 0.01])
    y = rng.choice(5, size=3000, p=shares)
    targets = TargetEncoder.fit(y, "multiclass")
    Y = targets.encode(y)
    val, train = bn.split_indices(targets, Y, 0.2, np.random.default_rng(1))
    assert len(np.intersect1d(val, train)) == 0 and len(val) + len(train) == 3000
    assert abs(len(val) - 600) <= 5
    overall = np.bincount(Y, minlength=5) / len(Y)
    for part in (val, train):
        share = np.bincount(Y[part], minlength=5) / len(part)
        assert np.abs(share - overall).max() < 0.01, (share, overall)
    # same generator state, same split; a plain random split of the rare class would often miss this
    val2, _ = bn.split_indices(targets, Y, 0.2, np.random.default_rng(1))
    np.testing.assert_array_equal(val, val2)


def test_split_of_a_continuous_target_and_impossible_fractions():
    targets = TargetEncoder.fit(np.arange(10.0), "continuous")
    val, train = bn.split_indices(targets, np.arange(10.0), 0.3, np.random.default_rng(0))
    assert len(val) == 3 and len(train) == 7
    with pytest.raises(ValueError, match="leaves 0 of 10 rows for validation"):
        bn.split_indices(targets, np.arange(10.0), 0.01, np.random.default_rng(0))


def _imbalanced(n_major, n_minor, seed):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.standard_normal((n_major, 2)), rng.standard_normal((n_minor, 2)) + 1.5]).astype(np.float32)
    return X, np.r_[np.zeros(n_major, int), np.ones(n_minor, int)]


def test_balanced_class_weight_raises_the_recall_of_a_one_percent_class():
    X, y = _imbalanced(4950, 50, 0)  # the minority class is 1 % of the rows
    X_test, y_test = _imbalanced(2000, 2000, 1)
    recall = {}
    for cw in (None, "balanced"):
        net = bn.build_mlp(hidden=(16,), n_outputs=2, optimizer=bn.Adam(0.01), seed=0)
        net.fit(X, y, epochs=10, batch_size=128, class_weight=cw)
        recall[cw] = np.mean(net.predict(X_test)[y_test == 1] == 1)
    assert recall[None] < 0.3 and recall["balanced"] > 0.7, recall


def test_class_weight_dict_uses_the_user_labels():
    X, y = _imbalanced(990, 10, 2)
    names = np.where(y == 1, "ddos", "benign")
    net = bn.build_mlp(hidden=(8,), n_outputs=2, optimizer=bn.Adam(0.01), seed=0)
    net.fit(X, names, epochs=5, batch_size=64, class_weight={"ddos": 99.0})
    assert np.mean(net.predict(X)[y == 1] == "ddos") > 0.5
    with pytest.raises(ValueError, match=r"class_weight has labels \['dos'\] that are not classes"):
        net.fit(X, names, epochs=1, class_weight={"dos": 2.0})


def test_resume_equivalence_ten_epochs_straight_vs_five_save_load_five(blobs, tmp_path):
    X, y = blobs
    straight = _net(7, dropout=0.2)
    straight.fit(X, y, epochs=10, batch_size=32)
    first = _net(7, dropout=0.2)
    first.fit(X, y, epochs=5, batch_size=32)
    first.save(tmp_path / "half.npz")
    resumed = bn.load(tmp_path / "half.npz")
    resumed.fit(X, y, epochs=5, batch_size=32)
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    assert resumed.optimizer.step_count == straight.optimizer.step_count == 10 * math.ceil(300 / 32)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in straight.history_.records]
    assert [{k: v for k, v in r.items() if k != "time"} for r in resumed.history_.records] == strip


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_terminate_on_nan_is_on_by_default(blobs):
    X, y = blobs

    def blow_up(epoch, lr):
        return 1e30 if epoch == 2 else 0.01  # a huge step in the third epoch

    snaps = Snapshots()
    net = _net(0, optimizer=bn.SGD(0.01))
    with pytest.warns(RuntimeWarning, match=r"loss became (nan|inf) at epoch 3.*training stopped"):
        history = net.fit(X, y, epochs=6, callbacks=[bn.LearningRateScheduler(blow_up), snaps])
    assert history.stop_reason == "non_finite" and len(history) == 2
    assert np.isfinite(net.flat_params).all()
    np.testing.assert_array_equal(net.flat_params, snaps.weights[1])  # the last epoch with a finite loss
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        off = _net(0, optimizer=bn.SGD(0.01))
        history = off.fit(X, y, epochs=4, callbacks=[bn.LearningRateScheduler(blow_up)], terminate_on_nan=False)
    assert len(history) == 4 and not np.isfinite(off.flat_params).all()  # without it, the damage stays


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_training_can_continue_after_a_non_finite_stop(blobs, tmp_path):
    # the NaN step also poisons Adam's moments; they must not make every later fit fail at once
    X, y = blobs
    net = _net(0)
    history = net.fit(X, y, epochs=4, callbacks=[bn.LearningRateScheduler(lambda e, lr: 1e30 if e == 1 else 1e-3)])
    assert history.stop_reason == "non_finite"
    assert all(np.isfinite(buf).all() for buf in net.optimizer.state.values())
    net.optimizer.learning_rate = 1e-3
    net.save(tmp_path / "m.npz")
    for model in (net, bn.load(tmp_path / "m.npz")):
        again = model.fit(X, y, epochs=2)
        assert again.stop_reason == "completed" and np.isfinite(again["loss"]).all()
        assert np.isfinite(model.flat_params).all()


def test_terminate_on_nan_never_restores_non_finite_weights(blobs):
    # weights broken at the end of an epoch (after its finite loss was recorded) must not become the
    # "last good" weights the next epoch's NaN rolls back to
    X, y = blobs

    class Corrupt(bn.Callback):
        def on_epoch_end(self, state):
            if state.epoch == 1:
                state.model.flat_params[0] = np.inf

    net = _net(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = net.fit(X, y, epochs=5, callbacks=[Corrupt()])
    assert history.stop_reason == "non_finite"
    assert np.isfinite(net.flat_params).all()


def test_keyboard_interrupt_keeps_the_last_completed_epoch(blobs):
    X, y = blobs

    class CtrlC(bn.Callback):
        def on_batch_end(self, state):
            if state.epoch == 2 and state.batch == 1:
                raise KeyboardInterrupt

    snaps = Snapshots()
    net = _net(0)
    with pytest.warns(RuntimeWarning, match="training interrupted"):
        history = net.fit(X, y, epochs=5, batch_size=32, callbacks=[snaps, CtrlC()])
    assert history.stop_reason == "interrupted" and len(history) == 2
    np.testing.assert_array_equal(net.flat_params, snaps.weights[1])


def test_fit_after_an_interrupt_continues_as_if_the_epoch_never_started(blobs):
    # the roll-back covers the optimizer's moments and step count and the model's generator, not only the
    # weights: interrupted at epoch 3 and fitted again, the model ends bit-identical to one never interrupted
    X, y = blobs

    class CtrlC(bn.Callback):
        def on_batch_end(self, state):
            if state.epoch == 2 and state.batch == 3:
                raise KeyboardInterrupt

    straight = _net(0, dropout=0.3)
    straight.fit(X, y, epochs=4, batch_size=16)
    resumed = _net(0, dropout=0.3)
    with pytest.warns(RuntimeWarning, match="training interrupted"):
        resumed.fit(X, y, epochs=4, batch_size=16, callbacks=[CtrlC()])
    assert resumed.optimizer.step_count == straight.optimizer.step_count // 2
    resumed.fit(X, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    for name, buf in straight.optimizer.state.items():
        np.testing.assert_array_equal(resumed.optimizer.state[name], buf)
    assert resumed.history_["loss"] == straight.history_["loss"]


def test_an_interrupt_inside_on_epoch_end_also_takes_back_that_epochs_record(blobs):
    # e.g. Ctrl-C while a checkpoint callback writes: the epoch's record is already in the History, but the
    # weights go back to the epoch's start, so the record must go too (a later fit would repeat the epoch)
    X, y = blobs

    class CtrlCAtEpochEnd(bn.Callback):
        def on_epoch_end(self, state):
            if state.epoch == 1:
                raise KeyboardInterrupt

    straight = _net(0)
    straight.fit(X, y, epochs=3, batch_size=16)
    resumed = _net(0)
    with pytest.warns(RuntimeWarning, match="training interrupted"):
        history = resumed.fit(X, y, epochs=3, batch_size=16, callbacks=[CtrlCAtEpochEnd()])
    assert len(history) == len(resumed.history_) == 1
    resumed.fit(X, y, epochs=2, batch_size=16)
    np.testing.assert_array_equal(resumed.flat_params, straight.flat_params)
    assert resumed.history_["loss"] == straight.history_["loss"]


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_predict_and_evaluate_in_batches_equal_one_batch(blobs, batch_size):
    X, y = blobs
    net = _net(0, dropout=0.5)
    net.fit(X, y, epochs=2)
    whole = net.predict_proba(X, batch_size=10_000)
    np.testing.assert_allclose(net.predict_proba(X, batch_size=batch_size), whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(net.predict(X, batch_size=batch_size), net.predict(X, batch_size=10_000))
    np.testing.assert_allclose(net.decision_function(X, batch_size=batch_size), net.decision_function(X), rtol=1e-5,
                               atol=1e-6)
    one, many = net.evaluate(X, y, batch_size=10_000), net.evaluate(X, y, batch_size=batch_size)
    assert many["accuracy"] == one["accuracy"]
    assert many["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert one["accuracy"] == np.mean(net.predict(X) == y)


def test_evaluate_matches_a_direct_computation(blobs):
    X, y = blobs
    net = _net(0, l2=0.01)
    net.fit(X, y, epochs=2)
    p = net.predict_proba(X).astype(np.float64)
    expected = -np.mean(np.log(p[np.arange(len(y)), y])) + net.penalty()
    assert net.evaluate(X, y)["loss"] == pytest.approx(expected, rel=1e-4)


def test_partial_fit_continues_and_accepts_classes(blobs):
    X, y = blobs
    net = _net(0)
    first = np.isin(y, [0, 1])
    net.partial_fit(X[first], y[first], classes=[0, 1, 2], batch_size=50)  # class 2 not seen yet
    assert list(net.classes_) == [0, 1, 2]
    steps, weights = net.optimizer.step_count, net.flat_params.copy()
    assert steps == math.ceil(first.sum() / 50)
    net.partial_fit(X, y, batch_size=50)  # now with class 2
    assert net.optimizer.step_count == steps + math.ceil(300 / 50)
    assert not np.array_equal(net.flat_params, weights)
    assert len(net.history_) == 2 and net.history_["epoch"] == [1, 2]
    with pytest.raises(ValueError, match=r"classes \[3\] were not in the classes this model was first fitted with"):
        net.partial_fit(X, y, classes=[0, 1, 2, 3])


def test_validation_data_identical_to_training_data_warns(blobs):
    X, y = blobs
    with pytest.warns(UserWarning, match="validation data is identical to the training data"):
        _net().fit(X, y, epochs=1, validation_data=(X.copy(), y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _net().fit(X[:200], y[:200], epochs=1, validation_data=(X[200:], y[200:]))


def test_verbose_2_prints_one_line_per_epoch_and_0_prints_nothing(blobs, capsys):
    X, y = blobs
    _net().fit(X, y, epochs=3, verbose=2, validation_fraction=0.2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    for i, line in enumerate(out, 1):
        assert line.startswith(f"epoch {i}/3") and "loss=" in line and "val_accuracy=" in line and line.endswith("s)")
    _net().fit(X, y, epochs=3, verbose=0, validation_fraction=0.2)
    _net().fit(X, y, epochs=1, verbose=1)  # not a terminal: no progress bar either
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_zero_epochs_changes_nothing(blobs):
    X, y = blobs
    net = _net(0, n_inputs=5)
    before = net.flat_params.copy()
    history = net.fit(X, y, epochs=0)
    assert len(history) == 0
    np.testing.assert_array_equal(net.flat_params, before)


def test_blas_threads_auto_means_one_thread_for_small_layers(blobs):
    X, y = blobs
    nets = {threads: _net(0) for threads in ("auto", 1)}
    for threads, net in nets.items():
        net.fit(X, y, epochs=2, blas_threads=threads)
    np.testing.assert_array_equal(nets["auto"].flat_params, nets[1].flat_params)


def test_training_predictions_are_taken_only_for_label_metrics(blobs, monkeypatch):
    from barenet import training

    X, y = blobs
    calls = []
    real = training._predicted_index
    monkeypatch.setattr(training, "_predicted_index", lambda *a: calls.append(1) or real(*a))
    history = _net(0).fit(X, y, epochs=1, metrics=[])
    assert calls == [] and "accuracy" not in history.keys()  # no metric asks for labels: no argmax per batch
    history = _net(0).fit(X, y, epochs=1)
    assert calls and 0.0 <= history["accuracy"][0] <= 1.0  # the default metric still gets its predictions


@pytest.mark.parametrize("threads, kernels, expected", [(1, True, True), (1, False, False), (2, True, False),
                                                       (None, True, False)])
def test_fit_allows_row_blocks_only_on_one_thread_of_a_blas_with_small_matrix_kernels(
        blobs, monkeypatch, threads, kernels, expected):
    pytest.importorskip("threadpoolctl")
    from barenet import blas

    class Flag(bn.Callback):
        seen = set()

        def on_batch_end(self, state):
            self.seen.add(blas.ONE_BLAS_THREAD.get())

    monkeypatch.setattr(blas, "blas_has_small_matrix_kernels", lambda: kernels)
    X, y = blobs
    flag = Flag()
    _net(0).fit(X, y, epochs=1, blas_threads=threads, callbacks=[flag])
    assert flag.seen == {expected}
    assert blas.ONE_BLAS_THREAD.get() is False  # reset after fit


def test_small_matrix_kernel_detection_reads_numpys_blas():
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_info

    from barenet.blas import SMALL_MATRIX_CORES, blas_has_small_matrix_kernels

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas" and "numpy" in str(i.get("filepath", ""))]
    expected = bool(blas) and all(i.get("internal_api") == "openblas"
                                  and str(i.get("architecture")).lower() in SMALL_MATRIX_CORES for i in blas)
    assert blas_has_small_matrix_kernels() is expected


def test_class_weight_on_regression_targets_is_refused_not_ignored():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    net = bn.build_mlp(hidden=(4,), n_outputs=1, loss="mse", seed=0)
    with pytest.raises(ValueError, match="weights classes of multiclass or binary targets; these are continuous"):
        net.fit(X, X[:, 0], epochs=1, class_weight={0: 2.0})


def test_history_lr_is_the_rate_the_epoch_trained_with():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X[:, 0] > 0).astype(int)
    # 4 steps per epoch at batch 16: epoch k starts at step 4k, so it trains with lr 0.1 * 0.5 ** k
    schedule = bn.StepDecay(0.1, drop=0.5, every=4)
    net = bn.build_mlp(hidden=(4,), n_outputs=2, optimizer=bn.SGD(schedule), seed=0)
    history = net.fit(X, y, epochs=3, batch_size=16)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])


def test_stratified_split_keeps_every_labels_share_and_is_seeded():
    labels = np.array(["normal"] * 600 + ["dos"] * 300 + ["u2r"] * 10)
    train, val = bn.stratified_split(labels, 0.2, np.random.default_rng(0))
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    for name, count in (("normal", 120), ("dos", 60), ("u2r", 2)):
        assert (labels[val] == name).sum() == count
    again = bn.stratified_split(labels, 0.2, np.random.default_rng(0))
    assert np.array_equal(val, again[1]) and np.array_equal(train, again[0])


def test_label_and_argument_errors_say_what_to_do(blobs):
    X, y = blobs
    net = _net(0)
    with pytest.raises(ValueError, match=r"These look like one-hot rows: pass the class indices y.argmax\(axis=1\)"):
        net.fit(X, np.eye(3)[y], epochs=1)
    with pytest.raises(ValueError, match="validation y has labels \\[7\\]"):
        net.fit(X, y, epochs=1, validation_data=(X[:5], np.full(5, 7)))
    for bad in ("64", 2.5, True, np.True_, None):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            net.fit(X, y, batch_size=bad)
    assert len(_net(0).fit(X, y, epochs=1, batch_size=np.int64(16), verbose=0)) == 1
    assert len(_net(0).fit(X, y, epochs=2.0, batch_size=16.0)) == 2  # integral floats, as before
