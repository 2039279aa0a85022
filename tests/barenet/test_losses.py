"""Losses: closed-form values and fused gradients, weights, stability, bad names."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import barenet as bn
from barenet.losses import balanced_class_weight, class_weight_array


def _softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 4)), np.array([0, 3, 1, 1, 2, 0])


def test_softmax_cross_entropy_value_and_fused_gradient(logits):
    z, y = logits
    n = len(y)
    p = _softmax_rows(z)
    onehot = np.eye(4)[y]
    value, grad = bn.SoftmaxCrossEntropy().value_and_grad(z.copy(), y)
    assert value == pytest.approx(-np.mean(np.log(p[np.arange(n), y])), rel=1e-12)
    np.testing.assert_allclose(grad, (p - onehot) / n, rtol=1e-12, atol=1e-15)  # the fused (p - y)/n


def test_int_labels_and_one_hot_agree(logits):
    z, y = logits
    v1, g1 = bn.SoftmaxCrossEntropy().value_and_grad(z, y)
    v2, g2 = bn.SoftmaxCrossEntropy().value_and_grad(z, np.eye(4)[y])
    assert v1 == pytest.approx(v2, rel=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)


def test_loss_does_not_modify_its_inputs(logits):
    z, y = logits
    z_before = z.copy()
    bn.SoftmaxCrossEntropy().value_and_grad(z, y)
    bn.SigmoidBinaryCrossEntropy().value_and_grad(z, (z > 0).astype(float))
    bn.MeanSquaredError().value_and_grad(z, np.zeros_like(z))
    np.testing.assert_array_equal(z, z_before)


def test_cross_entropy_is_exact_and_finite_at_extreme_logits():
    z = np.array([[1000.0, 0.0], [0.0, 1000.0], [-1000.0, 1000.0]])
    y = np.array([1, 1, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = bn.SoftmaxCrossEntropy().value_and_grad(z, y)
    # per row: -log p[y] = 1000, 0, 2000 (the underflowed probabilities use the exact log-sum-exp)
    assert value == pytest.approx((1000.0 + 0.0 + 2000.0) / 3, rel=1e-12)
    np.testing.assert_allclose(grad, np.array([[1.0, -1.0], [0.0, 0.0], [-1.0, 1.0]]) / 3, atol=1e-15)


def test_soft_targets_cross_entropy(logits):
    z, _ = logits
    t = np.full((6, 4), 0.25)
    value, grad = bn.SoftmaxCrossEntropy().value_and_grad(z, t)
    logp = np.log(_softmax_rows(z))
    assert value == pytest.approx(-(t * logp).sum(axis=1).mean(), rel=1e-12)
    np.testing.assert_allclose(grad, (_softmax_rows(z) - t) / 6, atol=1e-15)


@pytest.mark.parametrize("shape", [(5, 1), (5, 3)])
def test_sigmoid_bce_value_and_gradient(shape):
    rng = np.random.default_rng(1)
    z = rng.standard_normal(shape) * 3
    y = (rng.random(shape) > 0.5).astype(float)
    s = 1 / (1 + np.exp(-z))
    expected = -(y * np.log(s) + (1 - y) * np.log(1 - s)).sum() / shape[0]
    value, grad = bn.SigmoidBinaryCrossEntropy().value_and_grad(z, y)
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(grad, (s - y) / shape[0], rtol=1e-10, atol=1e-15)


def test_sigmoid_bce_extreme_logits_finite():
    z = np.array([[800.0], [-800.0], [800.0]])
    y = np.array([[1.0], [0.0], [0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = bn.SigmoidBinaryCrossEntropy().value_and_grad(z, y)
    assert value == pytest.approx(800.0 / 3, rel=1e-12)  # only the wrong row costs: softplus(800) = 800
    np.testing.assert_allclose(grad.ravel(), [0.0, 0.0, 1 / 3], atol=1e-15)


def test_mse_value_and_gradient():
    z = np.array([[1.0, 2.0], [3.0, 5.0]])
    y = np.array([[0.0, 2.0], [3.0, 3.0]])
    value, grad = bn.MeanSquaredError().value_and_grad(z, y)
    # diffs (1, 0, 0, 2): sum of squares 5 over n K = 4 entries
    assert value == pytest.approx(5.0 / 4)
    np.testing.assert_allclose(grad, 2 * (z - y) / 4)
    # a (n,) target is reshaped to the (n, 1) output
    v, g = bn.MeanSquaredError().value_and_grad(np.array([[1.0], [2.0]]), np.array([0.0, 0.0]))
    assert v == pytest.approx(2.5) and g.shape == (2, 1)


def test_sample_weight_scales_each_row(logits):
    z, y = logits
    w = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 3.0])
    per_row = -np.log(_softmax_rows(z)[np.arange(6), y])
    value, grad = bn.SoftmaxCrossEntropy().value_and_grad(z, y, sample_weight=w)
    assert value == pytest.approx(np.dot(w, per_row) / 6, rel=1e-12)
    np.testing.assert_allclose(grad, w[:, None] * (_softmax_rows(z) - np.eye(4)[y]) / 6, atol=1e-15)
    assert (grad[[0, 3]] == 0).all()  # zero weight, zero gradient


def test_sample_weight_for_bce_and_mse():
    z = np.array([[0.5], [-1.0], [2.0]])
    y = np.array([[1.0], [0.0], [0.0]])
    w = np.array([2.0, 0.0, 1.0])
    base = bn.SigmoidBinaryCrossEntropy()
    v_w, g_w = base.value_and_grad(z, y, sample_weight=w)
    _, g = base.value_and_grad(z, y)
    elem = np.log1p(np.exp(-z)) + (1 - y) * z  # softplus(z) - y z
    assert v_w == pytest.approx(float((w[:, None] * elem).sum()) / 3, rel=1e-12)
    np.testing.assert_allclose(g_w, w[:, None] * g)
    v, g = bn.MeanSquaredError().value_and_grad(z, np.zeros_like(z), sample_weight=w)
    assert v == pytest.approx((2 * 0.25 + 0 + 1 * 4.0) / 3)


def test_balanced_class_weight_formula():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])  # counts 6, 2, 1; n = 9, 3 classes
    np.testing.assert_allclose(balanced_class_weight(y, 3), [9 / 18, 9 / 6, 9 / 3])
    # each class then contributes the same total weight
    totals = np.bincount(y, weights=balanced_class_weight(y, 3)[y])
    np.testing.assert_allclose(totals, [3.0, 3.0, 3.0])
    # an absent class keeps weight 1 rather than dividing by zero
    np.testing.assert_allclose(balanced_class_weight(np.array([0, 0, 2]), 3), [3 / 6, 1.0, 3 / 3])


def test_class_weight_dict_and_errors():
    y = np.array([0, 1, 1])
    np.testing.assert_allclose(class_weight_array({1: 3.0}, y, 2), [1.0, 3.0])
    assert class_weight_array(None, y, 2) is None
    with pytest.raises(ValueError, match="not a class index"):
        class_weight_array({5: 1.0}, y, 2)
    with pytest.raises(ValueError, match="finite number >= 0"):
        class_weight_array({0: -1.0}, y, 2)
    with pytest.raises(ValueError, match="'balanced'"):
        class_weight_array("balance", y, 2)


def test_cross_entropy_with_class_weight(logits):
    z, y = logits
    cw = {0: 2.0, 3: 0.5}
    w = np.array([cw.get(int(c), 1.0) for c in y])
    v_cw, g_cw = bn.SoftmaxCrossEntropy(class_weight=cw).value_and_grad(z, y)
    v_sw, g_sw = bn.SoftmaxCrossEntropy().value_and_grad(z, y, sample_weight=w)
    assert v_cw == pytest.approx(v_sw, rel=1e-12)
    np.testing.assert_allclose(g_cw, g_sw)
    balanced = bn.SoftmaxCrossEntropy(class_weight="balanced")
    balanced.fit_class_weight(y)
    v_bal, _ = balanced.value_and_grad(z, y)
    w_bal = balanced_class_weight(y, 4)[y]
    per_row = -np.log(_softmax_rows(z)[np.arange(6), y])
    assert v_bal == pytest.approx(np.dot(w_bal, per_row) / 6, rel=1e-12)


def test_bce_balanced_weights_per_label():
    y = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # label 0: 1 positive of 4; label 1: 2 of 4
    z = np.zeros_like(y)
    loss = bn.SigmoidBinaryCrossEntropy(class_weight="balanced")
    loss.fit_class_weight(y)
    _, grad = loss.value_and_grad(z, y)
    # weight(1) = n / (2 n_pos), weight(0) = n / (2 n_neg): label 0 -> 2 and 2/3; label 1 -> 1 and 1
    w = np.array([[2.0, 1.0], [2 / 3, 1.0], [2 / 3, 1.0], [2 / 3, 1.0]])
    np.testing.assert_allclose(grad, w * (0.5 - y) / 4)


def test_mse_balanced_has_no_meaning_and_column_weights_work():
    with pytest.raises(ValueError, match="no meaning for regression"):
        bn.MeanSquaredError(class_weight="balanced").value_and_grad(np.zeros((2, 2)), np.ones((2, 2)))
    v, _ = bn.MeanSquaredError(class_weight={1: 3.0}).value_and_grad(np.zeros((2, 2)), np.ones((2, 2)))
    assert v == pytest.approx((1 + 3 + 1 + 3) / 4)


def test_float32_in_float32_out():
    z = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    _, g = bn.SoftmaxCrossEntropy().value_and_grad(z, np.array([0, 1, 2, 0]), sample_weight=np.ones(4))
    assert g.dtype == np.float32
    _, g = bn.SigmoidBinaryCrossEntropy().value_and_grad(z, np.ones((4, 3), np.float32), sample_weight=np.ones(4))
    assert g.dtype == np.float32


def test_get_loss_names_and_unknown():
    assert isinstance(bn.get_loss("cross_entropy"), bn.SoftmaxCrossEntropy)
    assert isinstance(bn.get_loss("BCE"), bn.SigmoidBinaryCrossEntropy)
    assert isinstance(bn.get_loss("mse"), bn.MeanSquaredError)
    assert bn.get_loss("mse", class_weight={0: 2.0}).class_weight == {0: 2.0}
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'.*'mse'"):
        bn.get_loss("hinge")


def test_prediction_links():
    z = np.array([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(bn.SoftmaxCrossEntropy().output_to_prediction(z), [[0.25, 0.75]])
    np.testing.assert_allclose(bn.SigmoidBinaryCrossEntropy().output_to_prediction(z), [[0.5, 0.75]])
    assert bn.MeanSquaredError().output_to_prediction(z) is z


def test_balanced_weights_come_from_the_training_set_not_the_batch():
    y_train = np.array([0, 0, 0, 1])  # class 1 is rare: weights 4/6 and 4/2
    loss = bn.SoftmaxCrossEntropy(class_weight="balanced")
    with pytest.raises(ValueError, match="needs the training set's class counts"):
        loss.value_and_grad(np.zeros((2, 2)), np.array([0, 1]))
    loss.fit_class_weight(y_train)
    # a batch with one row of each class keeps the training-set weights (a per-batch count would give 1 and 1)
    value, _ = loss.value_and_grad(np.zeros((2, 2)), np.array([0, 1]))
    assert value == pytest.approx((4 / 6 + 4 / 2) * np.log(2) / 2)
    clone = bn.get_loss("softmax_cross_entropy", class_weight="balanced")
    clone.set_balanced_weights(loss.get_config()["balanced_weights"])
    assert clone.value_and_grad(np.zeros((2, 2)), np.array([0, 1]))[0] == value
