"""scikit-learn estimators over barenet's MLP: ``NeuralNetClassifier`` and ``NeuralNetRegressor``.

The only barenet module that imports scikit-learn (``pip install barenet[sklearn]``); ``import barenet``
never loads it. scikit-learn's rules hold: ``__init__`` only stores its arguments, ``fit`` checks them and
builds ``network_`` (a :class:`barenet.Sequential`), fitted attributes end in ``_``. See docs/estimator.md.

>>> from barenet.estimator import NeuralNetClassifier
>>> clf = NeuralNetClassifier((64, 32), dropout=0.2, random_state=0).fit(X, y)   # doctest: +SKIP
>>> clf.save("clf.npz"); clf = NeuralNetClassifier.load("clf.npz")              # doctest: +SKIP
"""
from __future__ import annotations

import copy
import json
import numbers
import warnings
from dataclasses import dataclass, field, fields

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
    from sklearn.utils import Tags
    from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, check_random_state, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(f"barenet.estimator needs scikit-learn >= 1.6: pip install 'barenet[sklearn]' ({exc})") from exc

from .callbacks import EarlyStopping
from .network import build_mlp
from .optimizers import Optimizer, get_optimizer, optimizer_name
from .serialization import load as load_network

__all__ = ["BarenetTags", "NeuralNetClassifier", "NeuralNetRegressor"]

#: checks that demand agreement to 1e-7, which float32 (the default dtype) meets only to 1 ulp (~1.2e-7)
_FLOAT32_EXPECTED_FAILURES = {
    "check_methods_subset_invariance":
        "float32 matrix products may round differently for other batch shapes (1 ulp); float64 passes",
    "check_sample_weight_equivalence_on_dense_data":
        "weighted and repeated rows agree to 1 float32 ulp (~1.2e-7), the check wants 1e-7; float64 passes",
}


@dataclass(slots=True)
class BarenetTags(Tags):
    """scikit-learn's Tags plus two ``{check name: one-line reason}`` dicts: ``expected_failed_checks``, which the
    tests hand to ``parametrize_with_checks`` (scikit-learn 1.6 replaced the ``_xfail_checks`` tag by that
    argument), and ``skipped_checks``, the checks scikit-learn itself skips for these estimators."""

    expected_failed_checks: dict = field(default_factory=dict)
    skipped_checks: dict = field(default_factory=dict)


_UNSTORABLE = object()


def _json_param(name, value):
    """A parameter as JSON for the model file's metadata, or ``_UNSTORABLE`` (left out; its default returns)."""
    if name == "dtype":
        return np.dtype(value).name
    if name == "optimizer" and isinstance(value, Optimizer):
        return optimizer_name(value)
    if name == "class_weight" and isinstance(value, dict):  # JSON keys are strings: keep (label, weight) pairs
        return [[k.item() if isinstance(k, np.generic) else k, float(v)] for k, v in value.items()]
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return _UNSTORABLE  # a RandomState (the seed it drew is in the network's config), a schedule object


class _NeuralNetBase(BaseEstimator):
    def __init__(self, hidden_layer_sizes=(100,), *, activation="relu", dropout=0.0, init=None, optimizer="adam",
                 learning_rate=1e-3, batch_size="auto", max_epochs=200, alpha=1e-4, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, random_state=None, dtype="float32",
                 verbose=0, warm_start=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.init = init
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.alpha = alpha
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train for up to ``max_epochs`` epochs: from scratch, or from the current weights if ``warm_start``."""
        reset = not (self.warm_start and hasattr(self, "network_"))
        return self._fit(X, y, sample_weight, reset=reset, partial=False)

    def _fit(self, X, y, sample_weight, *, reset, partial, classes=None):
        X, y = validate_data(self, X, y, reset=reset, multi_output=True, dtype=(np.float64, np.float32),
                             y_numeric=not is_classifier(self))
        if y.ndim == 2 and y.shape[1] == 1 and is_classifier(self):
            warnings.warn("A column-vector y was passed when a 1d array was expected; it was raveled.",
                          DataConversionWarning, stacklevel=3)
            y = y.ravel()
        self._check_params()
        sw = None if sample_weight is None else _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        # scikit-learn divides by the weight sum, barenet by the row count: weights of mean 1 make the two agree
        mass = 1.0 if sw is None else float(sw.mean())
        sw = None if sw is None else sw / mass
        loss, n_outputs, classes = self._targets(y, reset, classes)
        batch = min(200 if self.batch_size == "auto" else int(self.batch_size), len(X))  # sklearn's "auto"
        if reset:
            self.network_ = self._build(X.shape[1], n_outputs, loss, batch * mass)
        validation = self.validation_fraction if self.early_stopping and not partial else 0.0
        stopper = EarlyStopping("val_loss" if validation else "loss", mode="min", patience=self.n_iter_no_change,
                                min_delta=self.tol, restore_best_weights=bool(validation))
        history = self.network_.fit(
            X, y, epochs=1 if partial else int(self.max_epochs), batch_size=batch, validation_fraction=validation,
            sample_weight=sw, class_weight=getattr(self, "class_weight", None), classes=classes,
            callbacks=() if partial else [stopper], verbose=2 if self.verbose is True else int(self.verbose))
        self._set_fitted_attributes()
        if not partial and history.stop_reason == "completed" and self.max_epochs > 0:
            warnings.warn(f"maximum epochs ({self.max_epochs}) reached before the {stopper.monitor} stopped improving "
                          f"(by tol={self.tol} within {self.n_iter_no_change} epochs): not converged",
                          ConvergenceWarning, stacklevel=3)
        return self

    def _check_params(self) -> None:
        """Each hyper-parameter checked by its own name, before it can surface as some other error deep down."""
        def need(ok, name, what):
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}")

        def integer(value):
            return isinstance(value, numbers.Integral) and not isinstance(value, bool)

        def real(value):
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)

        need(self.batch_size == "auto" or (integer(self.batch_size) and self.batch_size >= 1), "batch_size",
             '"auto" or a positive integer')
        need(integer(self.max_epochs) and self.max_epochs >= 1, "max_epochs", "a positive integer")
        need(real(self.alpha) and self.alpha >= 0, "alpha", "a finite number >= 0")
        need(real(self.tol) and self.tol >= 0, "tol", "a finite number >= 0")
        need(integer(self.n_iter_no_change) and self.n_iter_no_change >= 1, "n_iter_no_change", "a positive integer")
        if self.early_stopping:
            need(real(self.validation_fraction) and 0 < self.validation_fraction < 1, "validation_fraction",
                 "in (0, 1) with early_stopping=True")

    def _build(self, n_features, n_outputs, loss, batch_weight):
        hidden = tuple(int(h) for h in np.atleast_1d(self.hidden_layer_sizes))
        if isinstance(self.optimizer, Optimizer):  # an instance is copied (clone shares it) and keeps its own lr
            opt = copy.deepcopy(self.optimizer)
        else:
            opt = get_optimizer(self.optimizer, learning_rate=self.learning_rate)
        # scikit-learn adds 0.5 * alpha * ||W||^2 / (a batch's weight sum) to the loss; barenet adds l2 * ||W||^2
        l2 = float(self.alpha) / (2.0 * batch_weight)
        return build_mlp(n_features, hidden, n_outputs, activation=self.activation, dropout=self.dropout,
                         init=self.init, l2=l2, loss=loss, optimizer=opt, seed=self._seed(), dtype=self.dtype)

    def _seed(self) -> int:
        """An int ``random_state`` is the network's seed; None or a RandomState draws one (sklearn's rule)."""
        if isinstance(self.random_state, numbers.Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _set_fitted_attributes(self):
        history = self.network_.history_
        self.history_ = history
        self.n_iter_ = len(history)
        self.loss_curve_ = history["loss"] if len(history) else []
        self.validation_loss_curve_ = history["val_loss"] if "val_loss" in history else None

    # ------------------------------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------------------------------
    def _validated(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=(np.float64, np.float32))

    def predict(self, X):
        """Class labels (in the type given to fit; a 0/1 matrix for multi-label) or regression values."""
        X = self._validated(X)
        return self.network_.predict(X)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "network_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        values = {f.name: getattr(tags, f.name) for f in fields(tags)}
        float32 = np.dtype(self.dtype) == np.float32
        expected = dict(_FLOAT32_EXPECTED_FAILURES) if float32 else {}
        skipped = {"check_array_api_input": "scikit-learn runs it only with SCIPY_ARRAY_API=1; barenet is NumPy-only"}
        return BarenetTags(**values, expected_failed_checks=expected, skipped_checks=skipped)

    # ------------------------------------------------------------------------------------------
    # persistence: barenet's pickle-free model file (pickle works too, as scikit-learn requires)
    # ------------------------------------------------------------------------------------------
    def save(self, path):
        """Write the fitted network and this estimator's parameters to one barenet model file (no pickle)."""
        check_is_fitted(self)
        names = getattr(self, "feature_names_in_", None)
        params = {k: _json_param(k, v) for k, v in self.get_params().items()}
        info = {"class": type(self).__name__, "params": {k: v for k, v in params.items() if v is not _UNSTORABLE},
                "feature_names_in": None if names is None else [str(n) for n in names]}
        self.network_.save(path, metadata={"estimator": info})

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` (with barenet's integrity checks) into a fitted estimator."""
        network = load_network(path)
        info = network.metadata.get("estimator") or {}
        if info.get("class") != cls.__name__:
            raise ValueError(f"{path} holds a {info.get('class') or 'plain barenet model'}, not a {cls.__name__}; "
                             "use barenet.load for a Sequential")
        params = {k: tuple(v) if isinstance(v, list) and k != "class_weight" else v
                  for k, v in info["params"].items() if k in cls._get_param_names()}
        if isinstance(params.get("class_weight"), list):
            params["class_weight"] = {k: v for k, v in params["class_weight"]}
        est = cls(**params)
        est.network_, est.n_features_in_ = network, network.n_inputs
        if info.get("feature_names_in") is not None:
            est.feature_names_in_ = np.asarray(info["feature_names_in"], dtype=object)
        if is_classifier(est):
            est.classes_ = network.classes_
        est._set_fitted_attributes()
        return est


class NeuralNetClassifier(ClassifierMixin, _NeuralNetBase):
    """A barenet MLP classifier with scikit-learn's interface: multiclass (softmax cross-entropy), binary
    (one sigmoid output) and multi-label (a 0/1 indicator matrix y; one sigmoid per label)."""

    def __init__(self, hidden_layer_sizes=(100,), *, activation="relu", dropout=0.0, init=None, optimizer="adam",
                 learning_rate=1e-3, batch_size="auto", max_epochs=200, alpha=1e-4, class_weight=None,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, random_state=None,
                 dtype="float32", verbose=0, warm_start=False):
        super().__init__(hidden_layer_sizes, activation=activation, dropout=dropout, init=init, optimizer=optimizer,
                         learning_rate=learning_rate, batch_size=batch_size, max_epochs=max_epochs, alpha=alpha,
                         early_stopping=early_stopping, validation_fraction=validation_fraction,
                         n_iter_no_change=n_iter_no_change, tol=tol, random_state=random_state, dtype=dtype,
                         verbose=verbose, warm_start=warm_start)
        self.class_weight = class_weight

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over ``X, y``; the first call needs ``classes`` (every label) unless y is multi-label."""
        first = not hasattr(self, "network_")
        if first and classes is None and type_of_target(y) != "multilabel-indicator":
            raise ValueError("classes must be passed on the first call to partial_fit")
        if not first and classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"classes={list(classes)} differs from classes_={self.classes_.tolist()} "
                             "of the first call")
        return self._fit(X, y, sample_weight, reset=first, partial=True, classes=classes)

    def _targets(self, y, reset, classes):
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"{type(self).__name__} supports binary, multiclass and multi-label targets, not {kind}")
        if kind == "multilabel-indicator":
            if self.class_weight is not None:
                raise ValueError("class_weight applies to binary and multiclass targets; for multi-label y use "
                                 "sample_weight")
            if not reset and self.network_.targets.kind != "multilabel":
                raise ValueError("this classifier was fitted on class labels, not a multi-label indicator matrix")
            return "sigmoid_binary_cross_entropy", y.shape[1], None
        if not reset:
            return None, None, self.classes_
        classes = unique_labels(y) if classes is None else unique_labels(classes)
        if len(classes) < 2:
            raise ValueError(f"classification needs samples of at least 2 classes; got 1 class: {classes.tolist()}")
        if len(classes) == 2:
            return "sigmoid_binary_cross_entropy", 1, classes
        return "softmax_cross_entropy", len(classes), classes

    def _set_fitted_attributes(self):
        super()._set_fitted_attributes()
        self.classes_ = self.network_.classes_

    def predict_proba(self, X):
        """(n, n_classes) probabilities; for multi-label, the probability of each label on its own."""
        X = self._validated(X)
        return self.network_.predict_proba(X)

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``: -inf where a probability underflowed to 0 in the network's dtype."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.skipped_checks["check_classifiers_multilabel_output_format_decision_function"] = (
            "no decision_function, like MLPClassifier (logits: network_.decision_function(X))")
        return tags


class NeuralNetRegressor(RegressorMixin, _NeuralNetBase):
    """A barenet MLP regressor with scikit-learn's interface (mean squared error; y (n,) or (n, k))."""

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``X, y``, continuing from the current weights (building the network on the first call)."""
        return self._fit(X, y, sample_weight, reset=not hasattr(self, "network_"), partial=True)

    def predict(self, X):
        """Predicted values, (n,) or (n, n_outputs) as y was, in float64 (scikit-learn's convention)."""
        return super().predict(X).astype(np.float64, copy=False)

    def _targets(self, y, reset, classes):
        return "mean_squared_error", 1 if y.ndim == 1 else y.shape[1], None
