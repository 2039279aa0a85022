"""Activations: closed-form values, derivatives, numerical stability at extreme inputs, bad names."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import barenet as bn
from barenet.activations import ACTIVATIONS

ELEMENTWISE = ["identity", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus"]


def _away_from_kinks(rng, shape):
    """Inputs with |x| >= 0.1, so a central difference never straddles the ReLU kink at 0."""
    x = rng.standard_normal(shape)
    return np.sign(x) * (0.1 + np.abs(x))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_central_difference(name):
    act = bn.get_activation(name)
    x = _away_from_kinks(np.random.default_rng(0), (50,))
    h = 1e-6
    numeric = (act.function(x + h) - act.function(x - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(x), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ELEMENTWISE + ["softmax"])
def test_backward_does_not_write_into_dy(name):
    act = bn.get_activation(name)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    dy_before = dy.copy()
    _, cache = act.forward(x, training=True)
    dx = act.backward(dy, cache)
    np.testing.assert_array_equal(dy, dy_before)
    assert dx.shape == x.shape


def test_closed_form_values():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(bn.ReLU().function(x), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(bn.LeakyReLU(alpha=0.1).function(x), [-0.2, 0.0, 3.0])
    np.testing.assert_allclose(bn.ELU(alpha=1.0).function(x), [math.exp(-2) - 1, 0.0, 3.0])
    np.testing.assert_allclose(bn.Softplus().function(x),
                               [math.log1p(math.exp(-2)), math.log(2), math.log1p(math.exp(3))])
    np.testing.assert_allclose(bn.Sigmoid().function(x), [1 / (1 + math.exp(2)), 0.5, 1 / (1 + math.exp(-3))])
    np.testing.assert_allclose(bn.Tanh().function(x), np.tanh(x))
    # GELU (tanh form): 0 at 0, ~x for large x, ~0 for very negative x, and 0.5 * 1 * (1 + tanh(u(1))) at 1
    u = math.sqrt(2 / math.pi) * (1 + 0.044715)
    np.testing.assert_allclose(bn.GELU().function(np.array([0.0, 1.0, 10.0, -10.0])),
                               [0.0, 0.5 * (1 + math.tanh(u)), 10.0, 0.0], atol=1e-12)
    assert bn.Identity().function(x) is x


def test_relu_derivative_at_the_kink_is_zero():
    assert bn.ReLU().derivative(np.array([0.0]))[0] == 0.0


def test_softmax_is_stable_at_plus_minus_1000():
    z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, 999.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would warn; here it must not
        p = bn.softmax(z, axis=1)
        logp = bn.log_softmax(z, axis=1)
    assert np.isfinite(p).all() and np.isfinite(logp).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p[1], [1 / 3] * 3)
    e = math.exp(-1.0)
    np.testing.assert_allclose(p[2], [1 / (2 + e), 1 / (2 + e), e / (2 + e)])
    # log softmax of (1000, 0, -1000) is (0, -1000, -2000) up to log(1 + e^-1000 + ...) = 0
    np.testing.assert_allclose(logp[0], [0.0, -1000.0, -2000.0])
    np.testing.assert_allclose(logp[1], [-math.log(3)] * 3)


def test_softmax_float32_and_shift_invariance():
    z = np.array([[1000.0, 999.0], [-1000.0, -1001.0]], dtype=np.float32)
    p = bn.softmax(z, axis=1)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p[0], p[1], rtol=1e-6)
    np.testing.assert_allclose(p[0], [1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_beyond_700_raises_no_floating_point_warning(dtype):
    x = np.array([-1000.0, -750.0, -701.0, 0.0, 701.0, 750.0, 1000.0], dtype=dtype)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        y = bn.sigmoid(x)
        layer_y, cache = bn.Sigmoid().forward(x)
        dx = bn.Sigmoid().backward(np.ones_like(x), cache)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(layer_y, y)
    assert np.isfinite(dx).all()


def test_sigmoid_matches_textbook_formula_in_the_safe_range():
    x = np.linspace(-30, 30, 101)
    # the tanh form 0.5 (1 + tanh(x/2)) is accurate to ~1e-16 absolutely; in the far negative tail
    # (sigmoid < 1e-6) that is not a small *relative* error, so only the absolute error is pinned there
    np.testing.assert_allclose(bn.sigmoid(x), 1.0 / (1.0 + np.exp(-x)), rtol=0, atol=5e-16)
    mid = np.linspace(-5, 30, 71)
    np.testing.assert_allclose(bn.sigmoid(mid), 1.0 / (1.0 + np.exp(-mid)), rtol=1e-12)


def test_softplus_elu_gelu_large_inputs_are_finite_without_warnings():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sp = bn.Softplus().function(x)
        elu = bn.ELU().function(x)
        gelu = bn.GELU().function(x)
    np.testing.assert_allclose(sp, [0.0, math.log1p(math.exp(-50)), math.log(2), 50.0, 1000.0], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(elu, [-1.0, math.expm1(-50), 0.0, 50.0, 1000.0])
    assert np.isfinite(gelu).all()


def test_softmax_backward_is_the_jacobian_vector_product():
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    layer = bn.Softmax()
    s, cache = layer.forward(x)
    dx = layer.backward(g, cache)
    for i in range(2):
        jacobian = np.diag(s[i]) - np.outer(s[i], s[i])  # J = diag(s) - s s^T
        np.testing.assert_allclose(dx[i], jacobian @ g[i], rtol=1e-12, atol=1e-15)


def test_softmax_has_no_elementwise_derivative():
    with pytest.raises(ValueError, match="Jacobian"):
        bn.Softmax().derivative(np.zeros((1, 2)))


def test_registry_and_unknown_name():
    assert isinstance(bn.get_activation("ReLU"), bn.ReLU)  # case-insensitive
    assert isinstance(bn.get_activation("logistic"), bn.Sigmoid)
    assert bn.get_activation("leaky_relu", alpha=0.2).alpha == 0.2
    layer = bn.Tanh()
    assert bn.get_activation(layer) is layer
    with pytest.raises(ValueError, match=r"unknown activation 'swish'.*'relu'"):
        bn.get_activation("swish")
    assert set(ELEMENTWISE + ["softmax"]) <= set(ACTIVATIONS)
