"""Sequential and build_mlp: a hand-worked SGD step, weights, dtypes, determinism, summary, bad input."""
from __future__ import annotations

import numpy as np
import pytest

import barenet as bn
from barenet.targets import TargetEncoder


# ------------------------------------------------------------------------------------------------
# one SGD step on a 2-2-2 network, worked by hand
# ------------------------------------------------------------------------------------------------
def _tiny_net():
    net = bn.Sequential([bn.Dense(2), bn.ReLU(), bn.Dense(2)], loss="softmax_cross_entropy",
                        optimizer=bn.SGD(0.1), n_inputs=2, seed=0, dtype="float64")
    net.set_weights({
        "0.W": np.array([[1.0, -1.0], [0.5, 0.5]]), "0.b": np.array([0.0, -0.5]),
        "2.W": np.array([[1.0, 0.0], [1.0, -1.0]]), "2.b": np.array([0.0, 2.0]),
    })
    return net


# Forward, for the single sample x = [1, 2] with label y = 0:
#   z1 = x W1 + b1 = [1*1 + 2*0.5, 1*(-1) + 2*0.5] + [0, -0.5] = [2, 0] + [0, -0.5] = [2, -0.5]
#   h  = relu(z1) = [2, 0]                                     (the second hidden unit is off)
#   z2 = h W2 + b2 = [2*1 + 0*1, 2*0 + 0*(-1)] + [0, 2] = [2, 2]
#   p  = softmax(z2) = [1/2, 1/2]          loss = -log p[0] = log 2 = 0.6931471805599453
# Backward (n = 1):
#   dz2 = (p - onehot(0)) / 1 = [-0.5, 0.5]
#   dW2 = h^T dz2 = [[2*(-0.5), 2*0.5], [0, 0]] = [[-1, 1], [0, 0]]        db2 = [-0.5, 0.5]
#   dh  = dz2 W2^T = [-0.5*1 + 0.5*0, -0.5*1 + 0.5*(-1)] = [-0.5, -1]
#   dz1 = dh * (z1 > 0) = [-0.5, -1] * [1, 0] = [-0.5, 0]
#   dW1 = x^T dz1 = [[1*(-0.5), 0], [2*(-0.5), 0]] = [[-0.5, 0], [-1, 0]]  db1 = [-0.5, 0]
# SGD with lr = 0.1, theta <- theta - 0.1 * grad:
#   W1 = [[1.05, -1], [0.6, 0.5]]   b1 = [0.05, -0.5]   W2 = [[1.1, -0.1], [1, -1]]   b2 = [0.05, 1.95]
# Loss after the step:
#   z1 = [1.05 + 1.2 + 0.05, -1 + 1 - 0.5] = [2.3, -0.5],  h = [2.3, 0]
#   z2 = [2.3*1.1 + 0.05, 2.3*(-0.1) + 1.95] = [2.58, 1.72]
#   loss = -log softmax(z2)[0] = log(1 + e^(1.72 - 2.58)) = log(1 + e^-0.86) = 0.35288121446099197
X_TINY, Y_TINY = np.array([[1.0, 2.0]]), np.array([0])
EXPECTED_GRADS = {"0.W": [[-0.5, 0.0], [-1.0, 0.0]], "0.b": [-0.5, 0.0], "2.W": [[-1.0, 1.0], [0.0, 0.0]],
                  "2.b": [-0.5, 0.5]}
EXPECTED_AFTER = {"0.W": [[1.05, -1.0], [0.6, 0.5]], "0.b": [0.05, -0.5], "2.W": [[1.1, -0.1], [1.0, -1.0]],
                  "2.b": [0.05, 1.95]}


def test_hand_worked_sgd_step():
    net = _tiny_net()
    loss, out = net.loss_and_gradients(X_TINY, Y_TINY)
    assert loss == pytest.approx(0.6931471805599453, rel=1e-15)
    np.testing.assert_allclose(out, [[2.0, 2.0]])
    for name, expected in EXPECTED_GRADS.items():
        np.testing.assert_allclose(net.gradients()[name], expected, rtol=1e-15, err_msg=name)
    net.optimizer.step(net.flat_params, net.flat_grads)
    for name, expected in EXPECTED_AFTER.items():
        np.testing.assert_allclose(net.parameters()[name], expected, rtol=1e-14, err_msg=name)
    assert net.loss_and_gradients(X_TINY, Y_TINY)[0] == pytest.approx(0.35288121446099197, rel=1e-12)


def test_hand_worked_sgd_step_through_fit():
    net = _tiny_net()
    history = net.fit(X_TINY, Y_TINY, epochs=1, batch_size=1, shuffle=False, classes=[0, 1])
    assert history["loss"] == [pytest.approx(0.6931471805599453, rel=1e-15)]
    for name, expected in EXPECTED_AFTER.items():
        np.testing.assert_allclose(net.parameters()[name], expected, rtol=1e-14, err_msg=name)
    assert net.evaluate(X_TINY, Y_TINY)["loss"] == pytest.approx(0.35288121446099197, rel=1e-12)


def test_forward_is_the_composition_of_the_layers():
    net = bn.build_mlp(3, hidden=(4,), n_outputs=2, activation="tanh", seed=0, dtype="float64")
    X = np.random.default_rng(0).standard_normal((5, 3))
    w = net.parameters()
    expected = np.tanh(X @ w["0.W"] + w["0.b"]) @ w["2.W"] + w["2.b"]
    np.testing.assert_allclose(net.decision_function(X), expected, rtol=1e-12)
    np.testing.assert_allclose(net.hidden_representation(X), np.tanh(X @ w["0.W"] + w["0.b"]), rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# parameters, weights, copies
# ------------------------------------------------------------------------------------------------
def test_parameters_are_views_into_one_flat_buffer():
    net = bn.build_mlp(3, hidden=(4,), n_outputs=2, seed=0)
    assert list(net.parameters()) == ["0.W", "0.b", "2.W", "2.b"]
    assert net.n_params == 3 * 4 + 4 + 4 * 2 + 2 == net.flat_params.size
    net.parameters()["2.b"][...] = 7.0
    assert (net.flat_params[-2:] == 7.0).all()
    for p in net.parameters().values():
        assert np.shares_memory(p, net.flat_params)


def test_get_and_set_weights():
    net = bn.build_mlp(3, hidden=(4,), n_outputs=2, seed=0)
    weights = net.get_weights()
    weights["0.W"] += 1.0  # a copy: the model is unchanged
    assert not np.array_equal(net.parameters()["0.W"], weights["0.W"])
    net.set_weights(weights)
    np.testing.assert_array_equal(net.parameters()["0.W"], weights["0.W"])
    with pytest.raises(ValueError, match="weights have names"):
        net.set_weights({"0.W": weights["0.W"]})
    weights["2.b"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"weight '2.b' has shape \(3,\), expected \(2,\)"):
        net.set_weights(weights)


def test_clone_is_independent():
    net = bn.build_mlp(3, hidden=(4,), n_outputs=2, seed=0)
    twin = net.clone()
    np.testing.assert_array_equal(twin.flat_params, net.flat_params)
    twin.flat_params += 1.0
    assert not np.array_equal(twin.flat_params, net.flat_params)
    assert net.clone(dtype="float64").flat_params.dtype == np.float64


# ------------------------------------------------------------------------------------------------
# dtypes, determinism, randomness
# ------------------------------------------------------------------------------------------------
def test_float32_by_default_float64_on_request(blobs):
    X, y = blobs
    net = bn.build_mlp(hidden=(8,), n_outputs=3, seed=0)
    net.fit(X.astype(np.float64), y, epochs=1)
    assert net.dtype == np.float32 and net.flat_params.dtype == np.float32
    assert net.predict_proba(X).dtype == np.float32
    net64 = bn.build_mlp(hidden=(8,), n_outputs=3, seed=0, dtype="float64")
    net64.fit(X, y, epochs=1)
    assert net64.flat_params.dtype == np.float64 and net64.predict_proba(X).dtype == np.float64
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got 'float16'"):
        bn.build_mlp(dtype="float16")


def _trained(blobs, seed, dtype="float32"):
    X, y = blobs
    net = bn.build_mlp(hidden=(16, 8), n_outputs=3, dropout=0.3, seed=seed, dtype=dtype)
    net.fit(X, y, epochs=3, batch_size=32, validation_fraction=0.2)
    return net


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_gives_bit_identical_weights_after_training(blobs, dtype):
    a, b, c = _trained(blobs, 3, dtype), _trained(blobs, 3, dtype), _trained(blobs, 4, dtype)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)


def test_no_global_numpy_random_state_is_used(blobs):
    X, y = blobs
    np.random.seed(1234)
    before = np.random.get_state()
    net = _trained(blobs, 0)
    net.predict_proba(X)
    net.sample_predict_proba(X[:10], 3, seed=1)
    bn.check_gradients(net, X[:5], y[:5], directions=2)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_mc_dropout_sampling_is_seeded_and_leaves_training_randomness_alone(blobs):
    X, _ = blobs
    net = _trained(blobs, 0)
    state = net.rng.bit_generator.state
    a = net.sample_predict_proba(X[:7], 4, seed=5)
    b = net.sample_predict_proba(X[:7], 4, seed=5)
    assert a.shape == (4, 7, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # dropout is on: the samples differ
    assert net.rng.bit_generator.state == state


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------
def test_summary_lists_layers_shapes_and_parameter_counts(capsys):
    net = bn.Sequential([bn.Dense(3), bn.ReLU(), bn.Dropout(0.5), bn.Dense(2)], n_inputs=4, seed=0)
    text = net.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    lines = text.splitlines()
    assert lines[0].split() == ["#", "layer", "output", "shape", "params"]
    assert set(lines[1]) == {"-"}
    dense0 = next(line for line in lines if line.startswith("0 "))
    assert "Dense(units=3, init='he_normal'" in dense0 and "('batch', 3)" in dense0 and dense0.rstrip().endswith("15")
    dense3 = next(line for line in lines if line.startswith("3 "))
    assert "('batch', 2)" in dense3 and dense3.rstrip().endswith("8")  # 3 * 2 + 2
    assert "Dropout(rate=0.5)" in text and "ReLU()" in text
    assert lines[-1] == "total parameters: 23  dtype: float32  loss: softmax_cross_entropy  optimizer: Adam"


def test_summary_of_an_unbuilt_network_and_print_fn(capsys):
    text = bn.build_mlp(hidden=(5,), n_outputs=2).summary(print_fn=None)
    assert capsys.readouterr().out == ""
    assert "?" in text and "total parameters: 0" in text
    assert repr(bn.build_mlp(3, hidden=(5,), n_outputs=2)) == "Sequential(3 layers, 32 parameters)"


# ------------------------------------------------------------------------------------------------
# bad input: a clear ValueError that says what was wrong
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def fitted(blobs):
    X, y = blobs
    net = bn.build_mlp(hidden=(8,), n_outputs=3, seed=0)
    net.fit(X, y, epochs=1)
    return net, X, y


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(blobs, fitted, bad):
    X, y = blobs
    X = X.copy()
    X[4, 2] = bad
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at row 4, column 2"):
        bn.build_mlp(hidden=(4,), n_outputs=3, seed=0).fit(X, y, epochs=1)
    net = fitted[0]
    for call in (net.predict, net.predict_proba, lambda a: net.evaluate(a, y)):
        with pytest.raises(ValueError, match="contains NaN or infinity"):
            call(X)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # NumPy's, on the 1e39 cast
def test_a_non_finite_value_past_the_first_inference_batch_is_named_by_its_row_in_x(fitted):
    net, X, _ = fitted
    # more rows than one inference batch (PREDICT_BATCH = 2048)
    big = np.repeat(X, 40, axis=0)[:5000].astype(np.float64)
    big[3000, 2] = np.nan
    for call in (net.predict_proba, lambda a: net.sample_predict_proba(a, 2)):
        with pytest.raises(ValueError, match=r"first at row 3000, column 2"):
            call(big)
    big[3000, 2] = 1e39  # finite in float64, infinite once cast to the model's float32
    with pytest.raises(ValueError, match=r"it was 1e\+39 before the conversion to float32"):
        net.predict(big)


@pytest.mark.parametrize("layers, loss", [([bn.Dense(3), bn.Softmax()], "softmax_cross_entropy"),
                                          ([bn.Dense(3), bn.Softmax(), bn.Dropout(0.1)], "softmax_cross_entropy"),
                                          ([bn.Dense(1), bn.Sigmoid()], "sigmoid_binary_cross_entropy")])
def test_a_final_softmax_or_sigmoid_before_a_loss_that_applies_it_is_refused(layers, loss):
    # Keras users put softmax last; here the loss takes logits, and softmax twice would squash every
    # probability towards uniform without any error
    with pytest.raises(ValueError, match="remove the final"):
        bn.Sequential(layers, loss=loss)

    class MySoftmax(bn.Softmax):
        pass

    with pytest.raises(ValueError, match="remove the final MySoftmax"):
        bn.Sequential([bn.Dense(3), MySoftmax()])
    bn.Sequential([bn.Dense(3), bn.Softmax()], loss="mse")  # a softmax output fitted by squared error is fine


def test_wrong_number_of_features(fitted):
    net, X, y = fitted
    wide = np.hstack([X, X[:, :1]])
    for call in (net.predict, net.predict_proba, lambda a: net.fit(a, y, epochs=1), lambda a: net.evaluate(a, y)):
        with pytest.raises(ValueError, match="X has 6 features, but the model was built for 5"):
            call(wide)


def test_one_dimensional_x(fitted):
    net, X, y = fitted
    with pytest.raises(ValueError, match=r"X must be 2-D \(n_samples, n_features\); got an array of shape \(5,\)"):
        net.predict(X[0])
    with pytest.raises(ValueError, match=r"reshape"):
        bn.build_mlp(hidden=(4,), n_outputs=3).fit(X[:, 0], y)


def test_labels_not_among_the_training_classes(fitted):
    net, X, y = fitted
    y_bad = y.copy()
    y_bad[[3, 8]] = [7, 9]
    with pytest.raises(ValueError, match=r"y has labels \[7, 9\] that are not among the training classes \[0, 1, 2\]"):
        net.evaluate(X, y_bad)
    with pytest.raises(ValueError, match=r"not among the training classes"):
        net.fit(X, y_bad, epochs=1)
    with pytest.raises(ValueError, match=r"y has labels \[7\] that are not among the training classes"):
        net.fit(X, y, epochs=1, validation_data=(X[:5], y_bad[:5]))


def test_empty_arrays(fitted):
    net, X, _ = fitted
    with pytest.raises(ValueError, match=r"X is empty: 0 samples"):
        bn.build_mlp(hidden=(4,), n_outputs=3).fit(np.empty((0, 5)), np.empty(0))
    with pytest.raises(ValueError, match=r"X is empty"):
        net.predict(np.empty((0, 5)))
    with pytest.raises(ValueError, match=r"X has 5 samples but y has 0"):
        bn.build_mlp(hidden=(4,), n_outputs=3).fit(X[:5], np.empty(0))
    with pytest.raises(ValueError, match=r"y is empty"):
        TargetEncoder.fit(np.empty(0), "multiclass")


@pytest.mark.parametrize("kwargs, match", [
    ({"activation": "swish"}, r"unknown activation 'swish'"),
    ({"init": "glorious"}, r"unknown initialiser 'glorious'"),
    ({"loss": "hinge"}, r"unknown loss 'hinge'"),
    ({"optimizer": "adagrad"}, r"unknown optimizer 'adagrad'"),
])
def test_unknown_names(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bn.build_mlp(4, hidden=(3,), n_outputs=2, **kwargs)


def test_other_bad_arguments(blobs):
    X, y = blobs
    net = bn.build_mlp(hidden=(4,), n_outputs=3, seed=0)
    cases = [
        (lambda: net.fit(X, y[:-1]), r"X has 300 samples but y has 299"),
        (lambda: net.fit(X, y, sample_weight=np.ones(3)), r"sample_weight must have shape \(300,\)"),
        (lambda: net.fit(X, y, epochs=-1), r"epochs must be a non-negative integer"),
        (lambda: net.fit(X, y, batch_size=0), r"batch_size must be a positive integer"),
        (lambda: net.fit(X, y, validation_fraction=1.5), r"validation_fraction must be in \(0, 1\)"),
        (lambda: net.fit(np.array([["a", "b", "c", "d", "e"]] * 300), y), r"X must be numeric"),
        (lambda: bn.build_mlp(hidden=(4,), n_outputs=2).fit(X, y), r"output layer has 2 units but the targets need 3"),
        (lambda: bn.build_mlp(hidden=(4,), n_outputs=2).fit(X, np.zeros(300)), r"at least 2 classes"),
        (lambda: bn.build_mlp(hidden=(4,), n_outputs=3).predict(X), r"has not been fitted or built yet"),
        (lambda: bn.build_mlp(hidden=(4, 4), activation=["relu"]), r"got 1 activations .* for 2 hidden layers"),
        (lambda: bn.Sequential([]), r"needs at least one layer"),
        (lambda: bn.Sequential([bn.Dense(2), "not-a-layer"]), r"unknown activation 'not-a-layer'"),
        (lambda: bn.Sequential([bn.Dense(2), 42]), r"layer 1 is 42, not a barenet Layer"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_regressor_refuses_predict_proba():
    X = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)
    net = bn.build_mlp(hidden=(4,), n_outputs=1, loss="mse", seed=0)
    net.fit(X, X[:, 0] * 2, epochs=2)
    assert net.predict(X).shape == (20,)
    with pytest.raises(ValueError, match="needs a classification loss"):
        net.predict_proba(X)


def test_binary_and_multilabel_targets():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)).astype(np.float32)
    labels = np.where(X[:, 0] > 0, "attack", "benign")
    net = bn.build_mlp(hidden=(8,), n_outputs=1, loss="bce", optimizer=bn.Adam(0.02), seed=0)
    net.fit(X, labels, epochs=20, batch_size=32)
    proba = net.predict_proba(X)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(axis=1), 1.0)
    samples = net.sample_predict_proba(X, 3, seed=0)  # same layout as predict_proba: (samples, n, 2 classes)
    assert samples.shape == (3, 200, 2) and np.allclose(samples.sum(axis=2), 1.0)
    np.testing.assert_allclose(samples.mean(axis=0), proba, atol=1e-6)  # no dropout: every sample is proba
    assert list(net.classes_) == ["attack", "benign"]
    assert np.mean(net.predict(X) == labels) > 0.9
    Y = (X[:, :2] > 0).astype(int)
    multi = bn.build_mlp(hidden=(8,), n_outputs=2, loss="bce", optimizer=bn.Adam(0.02), seed=0)
    multi.fit(X, Y, epochs=20, batch_size=32)
    assert multi.predict(X).shape == (200, 2) and np.mean(multi.predict(X) == Y) > 0.9


def test_backward_returns_the_input_gradient_only_when_asked():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 3))
    net = bn.build_mlp(3, (4,), 2, seed=0, dtype="float64")
    out, caches = net.forward(X, training=True)
    _, dout = net.loss.value_and_grad(out, np.array([0, 1, 0, 1, 1]))
    assert net.backward(dout, caches) is None
    dx = net.backward(dout, caches, input_grad=True)
    # dL/dX through Dense(4) -> ReLU -> Dense(2): ((dout W2^T) * 1[z1 > 0]) W1^T
    W1, W2 = net.layers[0].params["W"], net.layers[2].params["W"]
    expected = ((dout @ W2.T) * (X @ W1 + net.layers[0].params["b"] > 0)) @ W1.T
    np.testing.assert_allclose(dx, expected, rtol=1e-12)


@pytest.mark.parametrize("labels", [np.array([0.0, 1.0, np.nan, 1.0]), np.array(["a", None, "b", "a"], dtype=object)])
def test_missing_labels_are_named_as_such(labels):
    net = bn.build_mlp(hidden=(4,), n_outputs=2, seed=0)
    with pytest.raises(ValueError, match=r"y has 1 missing labels \(NaN, None or NA\), first at row"):
        net.fit(np.zeros((4, 3)), labels, epochs=1)


def test_pandas_missing_values_are_named_as_such():
    pd = pytest.importorskip("pandas")
    net = bn.build_mlp(hidden=(4,), n_outputs=2, seed=0)
    X = pd.DataFrame({"a": pd.array([1.0, None, 3.0, 4.0], dtype="Float64"), "b": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at row 1, column 0"):
        net.fit(X, [0, 1, 0, 1], epochs=1)  # a nullable column's NA, not "X must be numeric"
    for y in (pd.Series([0, pd.NA, 1, 0], dtype=object), pd.Series(["a", pd.NA, "b", "a"], dtype="string")):
        with pytest.raises(ValueError, match=r"y has 1 missing labels \(NaN, None or NA\), first at row 1"):
            net.fit(X.fillna(0.0), y, epochs=1)  # pandas.NA cannot even be sorted: named before np.unique
    ints = pd.DataFrame({"a": pd.array([1, 2, 3, 4], dtype="Int64"), "b": [1.0, 2.0, 3.0, 4.0]})
    assert net.fit(ints, [0, 1, 0, 1], epochs=1).stop_reason == "completed"
    with pytest.raises(ValueError, match="must be 2-D"):  # a 1-D nullable column: no TypeError from its dtype
        net.predict(pd.Series([1.0, None], dtype="Float64"))
    with pytest.raises(ValueError, match="must be numeric"):
        net.predict(pd.Series(["a", "b"], dtype="string"))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_predict_proba_refuses_a_meaningless_temperature(temperature):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    net = bn.build_mlp(hidden=(4,), n_outputs=2, seed=0)
    net.fit(X, (X[:, 0] > 0).astype(int), epochs=1)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        net.predict_proba(X, temperature=temperature)
