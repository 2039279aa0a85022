"""A public gradient checker: analytic gradients against central differences, in float64.

For each parameter array theta (and the input), compare the backward pass with

    dL/dtheta_i  ~  (L(theta + eps e_i) - L(theta - eps e_i)) / (2 eps)

The error reported per array is  max_i |analytic_i - numeric_i| / max(max|analytic|, max|numeric|, tiny):
the worst entry relative to the scale of that gradient (entry-wise ratios are meaningless where a true
gradient is ~0). Correct float64 code gives ~1e-9 or less; a wrong derivative gives ~1e-1.

``directions=k`` switches to the random-direction mode for big networks: instead of one pair of
evaluations per entry, compare the directional derivatives along k random unit directions,
(L(theta + eps d) - L(theta - eps d)) / (2 eps)  vs  <grad, d>.
"""
from __future__ import annotations

import copy

import numpy as np

from .layers import Layer
from .validation import check_consistent_length, check_features, check_sample_weight


def _relative_error(analytic, numeric):
    scale = max(float(np.max(np.abs(analytic), initial=0.0)), float(np.max(np.abs(numeric), initial=0.0)), 1e-12)
    return float(np.max(np.abs(analytic - numeric), initial=0.0)) / scale


def _numeric(f, theta, eps, directions, rng):
    """Central differences of scalar f() w.r.t. array theta (perturbed in place and restored)."""
    flat = theta.reshape(-1)
    if directions is None:
        grad = np.zeros_like(flat)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = f()
            flat[i] = old - eps
            minus = f()
            flat[i] = old
            grad[i] = (plus - minus) / (2 * eps)
        return grad, None
    dirs = rng.standard_normal((directions, flat.size))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    slopes = np.zeros(directions)
    original = flat.copy()
    for k, d in enumerate(dirs):
        flat[...] = original + eps * d
        plus = f()
        flat[...] = original - eps * d
        minus = f()
        slopes[k] = (plus - minus) / (2 * eps)
    flat[...] = original
    return slopes, dirs


def _compare(analytic, numeric, dirs):
    if dirs is None:
        return _relative_error(analytic.reshape(-1), numeric)
    return _relative_error(dirs @ analytic.reshape(-1), numeric)


def check_gradients(target, X, y=None, *, loss=None, sample_weight=None, eps=1e-6, directions=None,
                    seed=0, input_grad=True) -> dict:
    """Return ``{name: max relative error}`` for every parameter (and ``"input"``) of ``target``.

    ``target`` is a built :class:`Sequential` (checked with its own loss on ``X, y``) or a single built
    :class:`Layer` (checked on L = sum(layer(X) * R) + layer.penalty() for a fixed random R). Work happens on a
    float64 copy.
    Dropout masks are made repeatable by resetting the generator to the same state before each evaluation.
    """
    rng = np.random.default_rng(seed)
    if isinstance(target, Layer):
        X = np.array(check_features(X, dtype=np.float64), copy=True)  # ours: perturbed in place
        return _check_layer(target, X, eps, directions, rng, input_grad)
    if not getattr(target, "built", False):
        raise ValueError("build or fit the network before checking its gradients")
    X = np.array(check_features(X, dtype=np.float64, n_features=target.n_inputs), copy=True)
    if y is None:
        raise ValueError("check_gradients on a network needs the targets y (its loss depends on them)")
    check_consistent_length(X, y)
    sample_weight = check_sample_weight(sample_weight, len(X))
    return _check_network(target, X, y, loss, sample_weight, eps, directions, rng, input_grad)


def _check_layer(layer, X, eps, directions, rng, input_grad):
    if layer.param_shapes(X.shape[1:]) and not layer.params:
        raise ValueError(f"{type(layer).__name__} has no parameters yet: build it first, "
                         f"e.g. layer.build(({X.shape[1]},))")
    layer = copy.deepcopy(layer)
    for d in (layer.params, layer.grads):
        for k in d:
            d[k] = d[k].astype(np.float64)
    dropout_state = np.random.default_rng(seed=12345).bit_generator.state

    def run(x):
        g = np.random.default_rng()
        g.bit_generator.state = dropout_state  # same dropout mask every evaluation
        return layer.forward(x, training=True, rng=g)

    out, cache = run(X)
    R = rng.standard_normal(out.shape)  # L = sum(out * R), so dL/dout = R
    results = {}
    dx = layer.backward(R, cache)
    analytic = {k: v.copy() for k, v in layer.grads.items()}

    def objective():  # backward adds the L1/L2 penalty gradients, so the objective includes the penalty
        return float(np.sum(run(X)[0] * R)) + layer.penalty()

    for name, theta in layer.params.items():
        numeric, dirs = _numeric(objective, theta, eps, directions, rng)
        results[name] = _compare(analytic[name], numeric, dirs)
    if input_grad:
        numeric, dirs = _numeric(objective, X, eps, directions, rng)
        results["input"] = _compare(dx, numeric, dirs)
    return results


def _loss_targets(net, y):
    """``y`` for a built but never fitted network: the loss's own targets, checked against the output layer
    (class indices 0..k-1, one-hot or probability rows, 0/1 values, or regression values)."""
    last = net.layers[-1]
    n_out = last.output_shape((None,))[0] if hasattr(last, "units") else None
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y of type {y.dtype}: a network that was built but never fitted is checked against its "
                         "loss's own targets (class indices 0..k-1, one-hot rows or values); fit it first to "
                         "check it with your labels")
    if net.loss.link == "softmax" and y.ndim == 1:
        if n_out is not None and (np.any(y != np.round(y)) or y.min() < 0 or y.max() >= n_out):
            raise ValueError(f"class indices in y must be integers in 0..{n_out - 1} (the output layer has "
                             f"{n_out} units); got values from {y.min()} to {y.max()}")
        return y
    if y.ndim == 2 and n_out is not None and y.shape[1] != n_out:
        raise ValueError(f"y has {y.shape[1]} columns, but the output layer has {n_out} units")
    return y


def _check_network(net, X, y, loss, sample_weight, eps, directions, rng, input_grad):
    net = net.clone(dtype="float64")
    if loss is not None:
        from .losses import get_loss

        net.loss = get_loss(loss)
    y = np.asarray(y)
    Y = _loss_targets(net, y) if net.targets is None else net.targets.encode(y, np.float64)
    if Y.dtype.kind == "f" and net.loss.link == "softmax" and Y.ndim == 1:
        Y = Y.astype(np.intp)
    w = sample_weight
    state = net.rng.bit_generator.state

    def forward():
        net.rng.bit_generator.state = state  # the same dropout masks on every evaluation
        return net.forward(X, training=True)  # X and the parameters are perturbed in place by _numeric

    def total_loss():
        return net.loss.value(forward()[0], Y, w) + net.penalty()

    out, caches = forward()
    _, dout = net.loss.value_and_grad(out, Y, w)
    dx = net.backward(dout, caches, input_grad=True)
    analytic = {k: v.copy() for k, v in net.gradients().items()}
    results = {}
    for name, theta in net.parameters().items():
        numeric, dirs = _numeric(total_loss, theta, eps, directions, rng)
        results[name] = _compare(analytic[name], numeric, dirs)
    if input_grad:
        numeric, dirs = _numeric(total_loss, X, eps, directions, rng)
        results["input"] = _compare(dx, numeric, dirs)
    return results
