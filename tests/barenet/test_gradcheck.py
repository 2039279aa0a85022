"""Registry-driven gradient checks: every activation, layer and loss, and deep networks, in float64.

Every analytic gradient must agree with central differences to a relative error below 1e-6 (correct
float64 code gives ~1e-9). The last tests break a derivative on purpose to show the checker catches it.
"""
from __future__ import annotations

import numpy as np
import pytest

import barenet as bn
from barenet.activations import ACTIVATIONS

TOL = 1e-6
ACTIVATION_NAMES = sorted({name for name, cls in ACTIVATIONS.items() if name == cls.__name__.lower()
                           or name in ("leaky_relu",)})


def _inputs(shape, seed=0):
    """Standard normal inputs pushed away from 0, so no finite difference straddles the ReLU kink."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.sign(x) * (0.05 + np.abs(x))


def _assert_small(errors):
    assert errors, "the checker returned nothing"
    worst = max(errors.values())
    assert worst < TOL, errors


def test_the_registry_covers_every_activation():
    assert ACTIVATION_NAMES == ["elu", "gelu", "identity", "leaky_relu", "relu", "sigmoid", "softmax", "softplus",
                                "tanh"]


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_layer(name):
    errors = bn.check_gradients(bn.get_activation(name), _inputs((6, 5)))
    assert set(errors) == {"input"}
    _assert_small(errors)


LAYERS = {
    "dense": lambda: bn.Dense(4),
    "dense_l2": lambda: bn.Dense(4, l2=0.3),
    "dense_l1": lambda: bn.Dense(4, l1=0.2),
    "dense_l1_l2_bias_l1_l2": lambda: bn.Dense(4, l1=0.1, l2=0.2, bias_l1=0.3, bias_l2=0.4),
    "dropout": lambda: bn.Dropout(0.4),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer(name):
    layer = LAYERS[name]().build((5,), rng=np.random.default_rng(1), dtype=np.float64)
    if "b" in layer.params:  # non-zero biases, away from 0 so sign(b) (the L1 gradient) is smooth
        layer.params["b"][...] = _inputs((4,), seed=2)
    errors = bn.check_gradients(layer, _inputs((6, 5)))
    assert set(errors) == set(layer.params) | {"input"}
    _assert_small(errors)


def _targets(kind, n, k, rng):
    labels = rng.integers(0, k, n)
    labels[:k] = np.arange(k)  # every class present (for "balanced")
    if kind == "ce_int":
        return labels
    if kind == "ce_onehot":
        return np.eye(k)[labels]
    if kind == "bce_binary":
        return (labels[:, None] % 2).astype(float)
    if kind == "bce_multilabel":
        y = (rng.random((n, k)) > 0.5).astype(float)
        y[0], y[1] = 1.0, 0.0  # every label has both values
        return y
    return rng.standard_normal((n, k))  # mse


LOSS_OF = {"ce_int": "softmax_cross_entropy", "ce_onehot": "softmax_cross_entropy", "bce_binary": "bce",
           "bce_multilabel": "bce", "mse": "mse"}
WEIGHTINGS = ["none", "sample_weight", "class_weight", "balanced", "sample_and_class_weight"]
LOSS_CASES = [(kind, wt) for kind in LOSS_OF for wt in WEIGHTINGS if not (kind == "mse" and wt == "balanced")]


def _loss_and_weights(kind, weighting, n, k, rng):
    class_weight = None
    if weighting in ("class_weight", "sample_and_class_weight"):
        class_weight = {0: 2.5, 1: 0.5}
    elif weighting == "balanced":
        class_weight = "balanced"
    sample_weight = rng.uniform(0.2, 2.0, n) if weighting in ("sample_weight", "sample_and_class_weight") else None
    loss = bn.get_loss(LOSS_OF[kind], class_weight=class_weight)
    if weighting == "balanced":  # balanced weights come from a training set's counts (fit does this)
        loss.fit_class_weight(_targets(kind, n, k, np.random.default_rng(rng.integers(1 << 30))))
    return loss, sample_weight


@pytest.mark.parametrize("kind, weighting", LOSS_CASES)
def test_loss_on_a_single_dense_layer(kind, weighting):
    # with one Dense layer dL/dW = x^T dL/dz, so any error in the loss gradient shows up in W
    rng = np.random.default_rng(3)
    n, k = 8, 1 if kind == "bce_binary" else 3
    loss, w = _loss_and_weights(kind, weighting, n, k, rng)
    net = bn.Sequential([bn.Dense(k)], loss=loss, n_inputs=4, seed=0, dtype="float64")
    net.parameters()["0.b"][...] = rng.standard_normal(k)
    _assert_small(bn.check_gradients(net, _inputs((n, 4)), _targets(kind, n, k, rng), sample_weight=w))


def _offset_biases(net):
    """Non-zero biases: a row whose ReLU inputs are all 0 would otherwise sit exactly on the kink, and
    sign(b) of an L1 bias penalty is smooth only away from 0."""
    for name, p in net.parameters().items():
        if name.endswith(".b"):
            p[...] = _inputs(p.shape, seed=5) * 0.1


def _deep_net(loss, k, *, dropout=0.3, seed=0):
    """Three hidden layers with different activations, L1/L2 penalties and dropout."""
    return bn.Sequential([
        bn.Dense(6, l2=0.01), bn.Tanh(),
        bn.Dense(5, l1=0.01, bias_l2=0.02), bn.ReLU(), bn.Dropout(dropout),
        bn.Dense(4), bn.GELU(),
        bn.Dense(k),
    ], loss=loss, n_inputs=4, seed=seed, dtype="float64")


@pytest.mark.parametrize("kind, weighting", [(k, w) for k, w in LOSS_CASES if w in ("none", "sample_and_class_weight")]
                         + [("ce_int", "balanced"), ("bce_multilabel", "balanced")])
def test_three_hidden_layer_network(kind, weighting):
    rng = np.random.default_rng(4)
    n, k = 10, 1 if kind == "bce_binary" else 3
    loss, w = _loss_and_weights(kind, weighting, n, k, rng)
    net = _deep_net(loss, k)
    _offset_biases(net)
    errors = bn.check_gradients(net, _inputs((n, 4)), _targets(kind, n, k, rng), sample_weight=w)
    assert set(errors) == set(net.parameters()) | {"input"}
    _assert_small(errors)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus"])
def test_build_mlp_with_each_activation(activation):
    net = bn.build_mlp(4, hidden=(6, 5, 4), n_outputs=3, activation=activation, dropout=0.2, l2=0.01, seed=1,
                       dtype="float64")
    _offset_biases(net)
    y = np.random.default_rng(6).integers(0, 3, 9)
    _assert_small(bn.check_gradients(net, _inputs((9, 4)), y))


def test_softmax_output_layer_with_mse():
    net = bn.Sequential([bn.Dense(5), bn.Tanh(), bn.Dense(3), bn.Softmax()], loss="mse", n_inputs=4, seed=0,
                        dtype="float64")
    _assert_small(bn.check_gradients(net, _inputs((7, 4)), np.eye(3)[[0, 1, 2, 0, 1, 2, 0]]))


def test_random_direction_mode_on_a_bigger_network():
    net = bn.build_mlp(30, hidden=(64, 64, 32), n_outputs=10, activation="tanh", dropout=0.2, seed=2,
                       dtype="float64")
    y = np.random.default_rng(7).integers(0, 10, 32)
    errors = bn.check_gradients(net, _inputs((32, 30)), y, directions=8)
    assert set(errors) == set(net.parameters()) | {"input"}
    _assert_small(errors)


def test_random_direction_mode_on_a_layer():
    layer = bn.Dense(20, l2=0.1).build((15,), rng=np.random.default_rng(0), dtype=np.float64)
    _assert_small(bn.check_gradients(layer, _inputs((10, 15)), directions=6))


def test_check_gradients_leaves_the_network_untouched():
    net = bn.build_mlp(4, hidden=(5,), n_outputs=3, dropout=0.5, seed=0)  # float32: checked on a float64 copy
    before, rng_state = net.get_weights(), net.rng.bit_generator.state
    _assert_small(bn.check_gradients(net, _inputs((6, 4)), np.array([0, 1, 2, 0, 1, 2])))
    for name, value in net.get_weights().items():
        np.testing.assert_array_equal(value, before[name])
    assert net.rng.bit_generator.state == rng_state and net.dtype == np.float32


def test_unbuilt_network_is_refused():
    with pytest.raises(ValueError, match="build or fit the network"):
        bn.check_gradients(bn.build_mlp(hidden=(3,)), np.ones((2, 4)), np.array([0, 1]))


# ------------------------------------------------------------------------------------------------
# the checker must fail on wrong derivatives
# ------------------------------------------------------------------------------------------------
class WrongTanh(bn.Tanh):
    def _derivative_from(self, x, y):
        return 1.0 - y  # should be 1 - y^2


@bn.register_layer  # check_gradients works on a clone rebuilt from the config, so the class must be known
class WrongPenaltyDense(bn.Dense):
    def backward(self, dz, cache, *, need_dx=True):
        dx = super().backward(dz, cache, need_dx=need_dx)
        self.grads["W"] -= self.l2 * self.params["W"]  # leaves l2 * W instead of 2 * l2 * W
        return dx


def test_checker_catches_a_wrong_activation_derivative():
    errors = bn.check_gradients(WrongTanh(), _inputs((6, 5)))
    assert errors["input"] > 1e-2


def test_checker_catches_a_wrong_penalty_gradient_in_a_layer_and_in_a_network():
    layer = WrongPenaltyDense(4, l2=0.5).build((5,), dtype=np.float64)
    assert bn.check_gradients(layer, _inputs((6, 5)))["W"] > 1e-2
    net = bn.Sequential([WrongPenaltyDense(4, l2=0.5), bn.ReLU(), bn.Dense(3)], n_inputs=5, seed=0, dtype="float64")
    errors = bn.check_gradients(net, _inputs((6, 5)), np.array([0, 1, 2, 0, 1, 2]))
    assert errors["0.W"] > 1e-2 and errors["2.W"] < TOL


def test_checker_catches_dropout_without_its_mask_in_backward():
    class LeakyDropout(bn.Dropout):
        def backward(self, dy, cache, *, need_dx=True):
            return dy  # forgets the mask

    errors = bn.check_gradients(LeakyDropout(0.5), _inputs((6, 5)))
    assert errors["input"] > 1e-2


def test_check_gradients_validates_its_inputs_like_fit():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 6)), np.arange(8) % 3
    built = bn.build_mlp(6, (8,), 3, seed=0).build(6)
    fitted = bn.build_mlp(6, (8,), 3, seed=0)
    fitted.fit(X, y, epochs=1)
    # an unfitted network is checked against the loss's own targets; a fitted one takes the labels it was fitted on
    assert max(bn.check_gradients(built, X, y).values()) < 1e-6
    assert max(bn.check_gradients(fitted, X, y).values()) < 1e-6
    cases = [(fitted, X[:, :5], y, "X has 5 features, but the model was built for 6"),
             (fitted, X, np.array(["a"] * 8), r"y has labels \['a'\]"),
             (built, X, np.array(list("abcabcab")), "fit it first"),
             (built, X, y + 1, r"class indices in y must be integers in 0..2"),
             (built, X, np.ones((8, 4)), "y has 4 columns, but the output layer has 3 units"),
             (built, X, y[:5], "X has 8 samples but y has 5"),
             (built, X, None, "needs the targets y"),
             (bn.build_mlp(hidden=(8,), n_outputs=3), X, y, "build or fit the network"),
             (bn.Dense(4), X, None, r"build it first, e.g. layer.build\(\(6,\)\)")]
    for target, X_, y_, message in cases:
        with pytest.raises(ValueError, match=message):
            bn.check_gradients(target, X_, y_)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        bn.check_gradients(fitted, X, y, sample_weight=np.ones(3))
