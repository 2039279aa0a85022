"""Losses on the network's raw outputs (logits), each returning its value and its gradient together.

=========================  =====================================================  =======================
loss                       value L (w_i = sample weight, n = rows)                dL/dz
=========================  =====================================================  =======================
SoftmaxCrossEntropy        -1/n sum_i w_i log softmax(z_i)[y_i]                    w_i (softmax(z_i) - y_i) / n
SigmoidBinaryCrossEntropy  1/n sum_i w_i sum_k [softplus(z_ik) - y_ik z_ik]        w_i (sigmoid(z_ik) - y_ik) / n
MeanSquaredError           1/(n K) sum_i w_i sum_k (z_ik - y_ik)^2                  2 w_i (z_ik - y_ik) / (n K)
=========================  =====================================================  =======================

The softmax (or sigmoid) and the cross-entropy are fused: their product of derivatives collapses to
(p - y)/n, which is both cheaper and numerically safer than differentiating each on its own.

Weights: ``sample_weight`` multiplies each row; ``class_weight`` (a dict or ``"balanced"``) multiplies each
row by the weight of its class. "balanced" gives class c the weight n / (n_classes * count_c), counted
over the whole training set (``fit`` calls ``loss.fit_class_weight(y)``; the weights are saved with the
model), so every class contributes equally. For multi-label BCE the weight applies per (row, label) by that label's
0/1 value; for MSE a dict ``{output_column: weight}`` weights the outputs ("balanced" has no meaning there).
"""
from __future__ import annotations

import numpy as np

from .activations import log_softmax, sigmoid, softmax


def balanced_class_weight(y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """weight_c = n / (n_classes * count_c); a class absent from ``y_index`` (count 0) gets weight 1."""
    counts = np.bincount(y_index, minlength=n_classes).astype(np.float64)
    weights = np.ones(n_classes)
    present = counts > 0
    weights[present] = len(y_index) / (n_classes * counts[present])
    return weights


def class_weight_array(class_weight, y_index: np.ndarray, n_classes: int) -> np.ndarray | None:
    """Turn ``None``, ``"balanced"`` or ``{class_index: weight}`` into one weight per class index."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        return balanced_class_weight(y_index, n_classes)
    weights = np.ones(n_classes)
    for key, value in dict(class_weight).items():
        k = int(key)
        if not 0 <= k < n_classes:
            raise ValueError(f"class_weight key {key!r} is not a class index in [0, {n_classes})")
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"class_weight for {key!r} must be a finite number >= 0, got {value!r}")
        weights[k] = float(value)
    return weights


class Loss:
    """Base class. ``link`` maps raw outputs to predictions ("softmax", "sigmoid" or "identity")."""

    link = "identity"
    is_classifier = True

    def __init__(self, class_weight=None):
        self.class_weight = class_weight
        self.balanced_weights_ = None  # "balanced" resolved from a whole training set (fit_class_weight)

    def fit_class_weight(self, y) -> None:
        """Resolve ``class_weight="balanced"`` from the full training targets ``y`` (``fit`` calls this).

        Balanced weights are properties of the training set, not of a mini-batch: without this call a
        "balanced" loss refuses to run instead of re-deriving weights from each batch's labels.
        """

    def _balanced(self):
        if self.balanced_weights_ is None:
            raise ValueError("class_weight='balanced' needs the training set's class counts: call "
                             "loss.fit_class_weight(y_train) first (fit does this for you)")
        return self.balanced_weights_

    def get_config(self):
        cw = self.class_weight
        if isinstance(cw, dict):
            cw = {str(k): float(v) for k, v in cw.items()}
        config = {"class_weight": cw}
        if self.balanced_weights_ is not None:  # fitted state: a clone or a saved model weighs the same
            config["balanced_weights"] = np.asarray(self.balanced_weights_, dtype=np.float64).tolist()
        return config

    def set_balanced_weights(self, weights) -> None:
        """Restore fitted balanced weights (from ``get_config()["balanced_weights"]``)."""
        self.balanced_weights_ = None if weights is None else np.asarray(weights, dtype=np.float64)

    def value_and_grad(self, z, y, sample_weight=None):
        """Return (L, dL/dz) for raw outputs ``z`` (n, k) and targets ``y``."""
        raise NotImplementedError

    def value(self, z, y, sample_weight=None) -> float:
        return self.value_and_grad(z, y, sample_weight)[0]

    def output_to_prediction(self, z):
        """Probabilities (classification) or values (regression) from raw outputs."""
        return z


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy on logits. Targets: integer class indices (n,) or one-hot/probabilities (n, k)."""

    link = "softmax"

    def __init__(self, class_weight=None):
        super().__init__(class_weight)
        self._rows: np.ndarray = np.arange(0)

    def _row_index(self, n):
        if len(self._rows) < n:  # reused across batches: no arange per step
            self._rows = np.arange(max(n, 2 * len(self._rows)))
        return self._rows[:n]

    def fit_class_weight(self, y) -> None:
        if isinstance(self.class_weight, str):
            y = np.asarray(y)
            y_index = y if y.ndim == 1 else np.argmax(y, axis=1)
            n_classes = int(y_index.max()) + 1 if y.ndim == 1 else y.shape[1]
            self.balanced_weights_ = class_weight_array(self.class_weight, y_index, n_classes)

    def _weights(self, y, n_classes, sample_weight):
        w = sample_weight
        if self.class_weight is not None:
            y_index = y if y.ndim == 1 else np.argmax(y, axis=1)
            per_class = (self._balanced() if isinstance(self.class_weight, str)
                         else class_weight_array(self.class_weight, y_index, n_classes))
            if len(per_class) < n_classes:  # classes absent from the training set keep weight 1
                per_class = np.concatenate([per_class, np.ones(n_classes - len(per_class))])
            cw = per_class[y_index]
            w = cw if w is None else w * cw
        return w

    def value_and_grad(self, z, y, sample_weight=None):
        n, k = z.shape
        w = self._weights(y, k, sample_weight)
        if y.ndim == 1:  # integer labels: no one-hot matrix is ever built
            # with s = z - max_j z_j per row:  p = e^s / sum_j e^(s_j)  and  -log p_y = log sum_j e^(s_j) - s_y,
            # the log-sum-exp form, exact even where p_y underflows. As in ``softmax``, the work happens on a
            # transposed (k, n) copy (fast reductions down its first axis), where (y_i, i) is flat index y_i*n + i.
            t = z.T.copy()  # s^T, ours: updated in place below
            t -= np.maximum.reduce(t)  # max over the first axis (t.max(axis=0), without its Python wrapper)
            at_y = y * n + self._row_index(n)
            s_y = t.ravel()[at_y]
            np.exp(t, out=t)
            total = np.add.reduce(t)  # sum_j e^(s_j) (= t.sum(axis=0))
            t /= total  # softmax(z)^T
            nll = np.log(total)
            nll -= s_y
            t.ravel()[at_y] -= 1.0  # (p - onehot(y))^T
            p = t.T  # (n, k), a view
        else:
            p = softmax(z, axis=1)
            nll = -(y * log_softmax(z, axis=1)).sum(axis=1)
            p -= y
        if w is None:
            value = float(np.add.reduce(nll)) / n
            p *= 1.0 / n  # (p - y) / n
        else:
            value = float(np.dot(nll, w)) / n
            p *= (w / n).astype(p.dtype, copy=False)[:, None]  # w_i (p - y) / n
        return value, p

    def output_to_prediction(self, z):
        return softmax(z, axis=1)


class SigmoidBinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy on logits, for binary (n, 1) or multi-label (n, k) 0/1 targets."""

    link = "sigmoid"

    def fit_class_weight(self, y) -> None:
        cw = self.class_weight
        if isinstance(cw, str):
            if cw != "balanced":
                raise ValueError(f"class_weight must be a dict or 'balanced', got {cw!r}")
            y = np.asarray(y).reshape(len(y), -1)
            n = y.shape[0]
            pos = y.sum(axis=0)  # per label: weight(1) = n / (2 n_pos), weight(0) = n / (2 n_neg)
            w1 = np.where(pos > 0, n / (2.0 * np.maximum(pos, 1)), 1.0)
            w0 = np.where(pos < n, n / (2.0 * np.maximum(n - pos, 1)), 1.0)
            self.balanced_weights_ = (w0, w1)

    def _weights(self, y, sample_weight):
        w = None if sample_weight is None else np.asarray(sample_weight)[:, None]
        cw = self.class_weight
        if cw is None:
            return w
        if isinstance(cw, str):
            w0, w1 = self._balanced()
        else:
            cw = {int(k): float(v) for k, v in dict(cw).items()}
            w0, w1 = cw.get(0, 1.0), cw.get(1, 1.0)
        ew = np.where(y > 0.5, w1, w0)
        return ew if w is None else ew * w

    def value_and_grad(self, z, y, sample_weight=None):
        y = y.reshape(z.shape)
        n = z.shape[0]
        w = self._weights(y, sample_weight)
        # softplus(z) - y z  ==  max(z, 0) - y z + log1p(e^-|z|), stable for any z
        elem = np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))
        grad = sigmoid(z)
        grad -= y
        if w is None:
            value = float(elem.sum()) / n
            grad *= 1.0 / n
        else:
            value = float((elem * w).sum()) / n
            grad *= (w / n).astype(grad.dtype, copy=False)
        return value, grad

    def output_to_prediction(self, z):
        return sigmoid(z)


class MeanSquaredError(Loss):
    """Mean squared error over all rows and outputs, for regression."""

    is_classifier = False

    def _weights(self, k, sample_weight):
        w = None if sample_weight is None else np.asarray(sample_weight)[:, None]
        cw = self.class_weight
        if cw is None:
            return w
        if isinstance(cw, str):
            raise ValueError("class_weight='balanced' has no meaning for regression; give {output: weight}")
        col = np.ones(k)
        for key, value in dict(cw).items():
            if not 0 <= int(key) < k:
                raise ValueError(f"class_weight key {key!r} is not an output column in [0, {k})")
            col[int(key)] = float(value)
        return col[None, :] if w is None else w * col[None, :]

    def value_and_grad(self, z, y, sample_weight=None):
        y = y.reshape(z.shape)
        n, k = z.shape
        diff = z - y
        w = self._weights(k, sample_weight)
        if w is None:
            value = float(np.vdot(diff, diff)) / (n * k)
            diff *= 2.0 / (n * k)
        else:
            value = float((diff * diff * w).sum()) / (n * k)
            diff *= (2.0 * w / (n * k)).astype(diff.dtype, copy=False)
        return value, diff


LOSSES = {
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "categorical_crossentropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "sigmoid_binary_cross_entropy": SigmoidBinaryCrossEntropy,
    "binary_crossentropy": SigmoidBinaryCrossEntropy,
    "bce": SigmoidBinaryCrossEntropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
}
CANONICAL_NAMES = {SoftmaxCrossEntropy: "softmax_cross_entropy",
                   SigmoidBinaryCrossEntropy: "sigmoid_binary_cross_entropy",
                   MeanSquaredError: "mean_squared_error"}


def get_loss(spec, **kwargs) -> Loss:
    """Resolve a loss name (``"softmax_cross_entropy"``, ``"bce"``, ``"mse"``, ...) or instance."""
    if isinstance(spec, Loss):
        return spec
    key = str(spec).lower()
    if key not in LOSSES:
        raise ValueError(f"unknown loss {spec!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[key](**kwargs)


def loss_name(loss: Loss) -> str:
    return CANONICAL_NAMES[type(loss)]
