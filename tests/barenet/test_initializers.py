"""Initialisers: target variances (He, Glorot, LeCun), symmetry warnings, determinism, default choice."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import barenet as bn
from barenet import initializers as init


def _rel(a, b):
    return abs(a - b) / b


@pytest.mark.parametrize("name", ["he_normal", "he_uniform", "kaiming_normal", "kaiming_uniform"])
def test_he_variance_is_2_over_fan_in(name):
    fan_in, fan_out = 800, 1200  # ~1e6 draws: the sample variance is within ~0.3 % of the true one
    W = bn.get_initializer(name)(np.random.default_rng(0), (fan_in, fan_out), np.float64)
    assert W.shape == (fan_in, fan_out)
    assert _rel(W.var(), 2.0 / fan_in) < 0.02
    assert abs(W.mean()) < 0.01 * W.std()


@pytest.mark.parametrize("name", ["glorot_normal", "glorot_uniform", "xavier_normal", "xavier_uniform"])
def test_glorot_variance_is_2_over_fan_in_plus_fan_out(name):
    fan_in, fan_out = 400, 2400
    W = bn.get_initializer(name)(np.random.default_rng(1), (fan_in, fan_out), np.float64)
    assert _rel(W.var(), 2.0 / (fan_in + fan_out)) < 0.02
    assert _rel(W.var(), 2.0 / fan_in) > 0.5  # and clearly not He's


@pytest.mark.parametrize("name", ["lecun_normal", "lecun_uniform"])
def test_lecun_variance_is_1_over_fan_in(name):
    W = bn.get_initializer(name)(np.random.default_rng(2), (1000, 1000), np.float64)
    assert _rel(W.var(), 1.0 / 1000) < 0.02


def test_uniform_variants_stay_inside_their_bounds():
    W = init.he_uniform(np.random.default_rng(3), (300, 300), np.float64)
    limit = np.sqrt(6.0 / 300)  # a = sqrt(3 * 2 / fan_in)
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.99 * limit
    G = init.glorot_uniform(np.random.default_rng(3), (100, 300), np.float64)
    assert np.abs(G).max() <= np.sqrt(6.0 / 400)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_respected(dtype):
    for name in ["he_normal", "glorot_uniform", "lecun_normal", "orthogonal", "normal", "uniform"]:
        assert bn.get_initializer(name)(np.random.default_rng(0), (3, 4), dtype).dtype == dtype


def test_same_generator_state_same_draws():
    a = init.he_normal(np.random.default_rng(7), (5, 6))
    b = init.he_normal(np.random.default_rng(7), (5, 6))
    c = init.he_normal(np.random.default_rng(8), (5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5)])
def test_orthogonal_is_orthogonal(shape):
    Q = init.orthogonal(np.random.default_rng(0), shape, np.float64)
    small = min(shape)
    gram = Q.T @ Q if shape[0] >= shape[1] else Q @ Q.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-12)


@pytest.mark.parametrize("name", ["zeros", "constant"])
def test_zero_or_constant_weight_init_warns_about_symmetry(name):
    with pytest.warns(UserWarning, match="symmetry"):
        W = bn.get_initializer(name)(np.random.default_rng(0), (3, 4), np.float32)
    assert (W == 0).all()


def test_zero_bias_does_not_warn_and_dense_with_zero_init_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = init.zeros(np.random.default_rng(0), (4,))
    assert (b == 0).all()
    with pytest.warns(UserWarning, match="symmetry"):
        bn.Sequential([bn.Dense(3, init="zeros"), bn.ReLU(), bn.Dense(2)], n_inputs=4, seed=0)


def test_spec_with_keyword_arguments():
    f = bn.get_initializer(("constant", {"value": 0.25}))
    with pytest.warns(UserWarning):
        W = f(np.random.default_rng(0), (2, 2), np.float64)
    np.testing.assert_array_equal(W, np.full((2, 2), 0.25))
    W = bn.get_initializer(("normal", {"scale": 3.0}))(np.random.default_rng(0), (500, 500), np.float64)
    assert _rel(W.std(), 3.0) < 0.02


def test_unknown_initializer_name_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown initialiser 'glorious'.*'he_normal'"):
        bn.get_initializer("glorious")
    with pytest.raises(ValueError, match="unknown initialiser 'nope'"):
        bn.Dense(3, init="nope")  # refused at construction, not at the first fit


@pytest.mark.parametrize("act, family", [("relu", "he_normal"), ("leaky_relu", "he_normal"), ("elu", "he_normal"),
                                         ("gelu", "he_normal"), ("tanh", "glorot_uniform"),
                                         ("sigmoid", "glorot_uniform")])
def test_default_init_follows_the_next_activation(act, family):
    net = bn.build_mlp(6, hidden=(5,), n_outputs=3, activation=act, seed=0)
    assert net.layers[0].init == family
    assert net.layers[-1].init == "glorot_uniform"  # the output layer feeds the loss's softmax


def test_default_init_draws_he_before_relu_and_glorot_before_tanh_and_output():
    net = bn.Sequential([bn.Dense(1000), bn.ReLU(), bn.Dense(1000), bn.Tanh(), bn.Dense(1000)],
                        n_inputs=1000, seed=0, dtype="float64")
    w = net.parameters()
    assert _rel(w["0.W"].var(), 2.0 / 1000) < 0.02           # He before ReLU
    assert _rel(w["2.W"].var(), 2.0 / 2000) < 0.02           # Glorot before tanh
    assert _rel(w["4.W"].var(), 2.0 / 2000) < 0.02           # Glorot for the output
    assert (w["0.b"] == 0).all() and (w["2.b"] == 0).all()   # biases start at zero


def test_explicit_init_is_kept():
    net = bn.Sequential([bn.Dense(4, init="lecun_normal"), bn.ReLU(), bn.Dense(2)], n_inputs=3, seed=0)
    assert net.layers[0].init == "lecun_normal"
