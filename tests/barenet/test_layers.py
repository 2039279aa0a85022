"""Dense and Dropout: the affine map and its derivatives, penalties, dropout mode semantics, the contract."""
from __future__ import annotations

import numpy as np
import pytest

import barenet as bn
from barenet.layers import LAYER_REGISTRY, layer_from_config


def _dense(units=3, d_in=2, **kwargs):
    layer = bn.Dense(units, **kwargs).build((d_in,), dtype=np.float64)
    layer.params["W"][...] = np.arange(1, 1 + d_in * units, dtype=np.float64).reshape(d_in, units) / 10
    layer.params["b"][...] = [0.5, -0.5, 1.0][:units]
    return layer


def test_dense_forward_is_x_w_plus_b():
    layer = _dense()
    x = np.array([[1.0, 2.0], [-1.0, 0.0]])
    z, cache = layer.forward(x)
    # W = [[.1 .2 .3], [.4 .5 .6]], b = [.5 -.5 1]
    # row 0: [1*.1 + 2*.4, 1*.2 + 2*.5, 1*.3 + 2*.6] + b = [.9, 1.2, 1.5] + b = [1.4, .7, 2.5]
    # row 1: [-.1, -.2, -.3] + b = [.4, -.7, .7]
    np.testing.assert_allclose(z, [[1.4, 0.7, 2.5], [0.4, -0.7, 0.7]])
    assert cache is x


def test_dense_backward_formulas():
    layer = _dense()
    x = np.array([[1.0, 2.0], [-1.0, 0.0]])
    dz = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    dz_before = dz.copy()
    _, cache = layer.forward(x)
    dx = layer.backward(dz, cache)
    # dW = x^T dz = [[1*1 + -1*2, 0 + -1*1, -1 + 0], [2*1 + 0, 0, -2 + 0]] = [[-1, -1, -1], [2, 0, -2]]
    np.testing.assert_allclose(layer.grads["W"], [[-1, -1, -1], [2, 0, -2]])
    np.testing.assert_allclose(layer.grads["b"], [3.0, 1.0, -1.0])  # column sums of dz
    # dx = dz W^T: row 0 = [.1 - .3, .4 - .6] = [-.2, -.2]; row 1 = [.2 + .2, .8 + .5] = [.4, 1.3]
    np.testing.assert_allclose(dx, [[-0.2, -0.2], [0.4, 1.3]])
    np.testing.assert_array_equal(dz, dz_before)
    assert layer.backward(dz, cache, need_dx=False) is None


def test_row_blocks_only_under_one_blas_thread_and_only_for_big_small_layers():
    from barenet.blas import row_block, single_thread_products

    assert row_block(256, 122, 64) == 256  # outside fit's one-thread block: one call (2 threads can share it)
    with single_thread_products():
        assert row_block(256, 122, 64) == 128  # 128 * 122 * 64 <= 100^3: OpenBLAS's small-matrix kernels
        assert row_block(129, 122, 64) == 65  # equal blocks, never a 1-row remainder
        assert row_block(300, 122, 64) == 100
        assert row_block(64, 122, 64) == 64  # already small
        assert row_block(128, 784, 512) == 128  # blocks would be 2 rows: one large call instead
    assert row_block(256, 122, 64) == 256  # the setting does not leak out of the block


def test_row_blocked_products_equal_the_single_product_and_pass_the_gradient_check(monkeypatch):
    from barenet import layers
    from barenet.blas import single_thread_products

    products = []
    real_dot = layers.np.dot

    class CountingNumpy:  # layers' view of NumPy, counting the forward's matrix products
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def dot(a, b, out=None):
            products.append(len(a))
            return real_dot(a, b, out=out)

    rng = np.random.default_rng(3)
    layer = bn.Dense(64).build((122,), rng=rng, dtype=np.float64)
    x = rng.standard_normal((300, 122))  # three blocks of 100 rows
    dz = rng.standard_normal((300, 64))
    z_one, cache = layer.forward(x)
    layer.backward(dz, cache, need_dx=False)
    gW_one = layer.grads["W"].copy()
    monkeypatch.setattr(layers, "np", CountingNumpy())
    with single_thread_products():
        z_blocks, cache = layer.forward(x)
        assert products == [100, 100, 100]  # really cut into row blocks
        layer.backward(dz, cache, need_dx=False)
        np.testing.assert_allclose(z_blocks, z_one, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.grads["W"], gW_one, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer.grads["W"], x.T @ dz, rtol=1e-12, atol=1e-12)
        errors = bn.check_gradients(layer, x[:260], directions=4)
    assert max(errors.values()) < 1e-6, errors
    products.clear()
    layer.forward(x)
    assert products == [300]  # outside the block: one product


def test_backward_overwrites_gradients_no_zero_grad_needed():
    layer = _dense()
    x = np.array([[1.0, 2.0]])
    _, cache = layer.forward(x)
    layer.backward(np.ones((1, 3)), cache)
    layer.backward(np.ones((1, 3)), cache)  # a second call must not accumulate
    np.testing.assert_allclose(layer.grads["W"], [[1, 1, 1], [2, 2, 2]])


def test_cache_is_explicit_so_an_interleaved_forward_cannot_corrupt_a_gradient():
    layer = _dense()
    x1, x2 = np.array([[1.0, 2.0]]), np.array([[5.0, -3.0]])
    _, cache1 = layer.forward(x1, training=True)
    layer.forward(x2, training=False)  # e.g. a validation pass between forward and backward
    layer.backward(np.ones((1, 3)), cache1)
    np.testing.assert_allclose(layer.grads["W"], x1.T @ np.ones((1, 3)))


def test_dense_penalty_value_and_gradient():
    layer = _dense(l1=0.1, l2=0.2, bias_l1=0.3, bias_l2=0.4)
    W, b = layer.params["W"], layer.params["b"]
    expected = 0.2 * (W**2).sum() + 0.1 * np.abs(W).sum() + 0.4 * (b**2).sum() + 0.3 * np.abs(b).sum()
    assert layer.penalty() == pytest.approx(expected, rel=1e-12)
    x = np.array([[1.0, 2.0]])
    _, cache = layer.forward(x)
    layer.backward(np.zeros((1, 3)), cache)  # zero loss gradient: only the penalty gradient remains
    np.testing.assert_allclose(layer.grads["W"], 2 * 0.2 * W + 0.1 * np.sign(W))
    np.testing.assert_allclose(layer.grads["b"], 2 * 0.4 * b + 0.3 * np.sign(b))
    assert _dense().penalty() == 0.0


@pytest.mark.parametrize("kwargs, match", [({"units": 0}, "positive integer"), ({"units": 2.5}, "positive integer"),
                                           ({"units": 3, "l2": -1.0}, "l2 must be >= 0"),
                                           ({"units": 3, "bias_l1": -0.1}, "bias_l1 must be >= 0")])
def test_dense_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bn.Dense(**kwargs)


def test_dense_needs_flat_samples():
    with pytest.raises(ValueError, match="Dense expects 1-D samples"):
        bn.Dense(3).param_shapes((4, 4))


def test_dropout_is_the_identity_at_inference():
    x = np.random.default_rng(0).standard_normal((20, 10))
    y, cache = bn.Dropout(0.5).forward(x, training=False, rng=np.random.default_rng(0))
    assert y is x and cache is None
    dy = np.ones_like(x)
    assert bn.Dropout(0.5).backward(dy, cache) is dy
    y0, _ = bn.Dropout(0.0).forward(x, training=True, rng=np.random.default_rng(0))
    assert y0 is x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_in_training_zeroes_about_rate_and_scales_the_rest(dtype):
    rate = 0.3
    x = np.ones((400, 250), dtype=dtype)
    y, mask = bn.Dropout(rate).forward(x, training=True, rng=np.random.default_rng(1))
    assert y.dtype == dtype
    dropped = np.mean(y == 0)
    assert abs(dropped - rate) < 0.01
    np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / (1.0 - rate)], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout keeps E[y] = x
    dx = bn.Dropout(rate).backward(np.full_like(x, 2.0), mask)
    np.testing.assert_array_equal(dx == 0, y == 0)  # the same mask flows backward


def test_dropout_mask_comes_from_the_generator_passed_in():
    x = np.ones((10, 10))
    a, _ = bn.Dropout(0.5).forward(x, training=True, rng=np.random.default_rng(5))
    b, _ = bn.Dropout(0.5).forward(x, training=True, rng=np.random.default_rng(5))
    c, _ = bn.Dropout(0.5).forward(x, training=True, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dropout_errors():
    for rate in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\)"):
            bn.Dropout(rate)
    with pytest.raises(ValueError, match="needs the model's random generator"):
        bn.Dropout(0.5).forward(np.ones((2, 2)), training=True, rng=None)


def test_network_dropout_only_in_training():
    net = bn.Sequential([bn.Dense(50), bn.ReLU(), bn.Dropout(0.5), bn.Dense(3)], n_inputs=4, seed=0)
    X = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    inference1, _ = net.forward(X, training=False)
    inference2, _ = net.forward(X, training=False)
    train, _ = net.forward(X, training=True)
    np.testing.assert_array_equal(inference1, inference2)
    assert not np.allclose(train, inference1)


def test_layer_registry_round_trip_and_refusal():
    layers = [bn.Dense(4, init="he_normal", l2=0.1), bn.Dropout(0.25), bn.LeakyReLU(0.2), bn.ELU(0.5), bn.Softmax()]
    for layer in layers:
        entry = {"class": type(layer).__name__, "config": layer.get_config()}
        twin = layer_from_config(entry)
        assert type(twin) is type(layer) and twin.get_config() == layer.get_config()
    assert {"Dense", "Dropout", "ReLU", "Softmax", "Identity"} <= set(LAYER_REGISTRY)
    with pytest.raises(ValueError, match="unknown layer type 'os.system'"):
        layer_from_config({"class": "os.system", "config": {}})


def test_repr_shows_configuration():
    assert repr(bn.Dense(3, l2=0.5)) == "Dense(units=3, init=None, bias_init='zeros', l2=0.5)"
    assert repr(bn.Dropout(0.1)) == "Dropout(rate=0.1)"
