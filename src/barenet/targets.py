"""Targets: mapping class labels of any type (ints, strings such as attack names) to what a loss needs.

* ``"multiclass"``  labels (n,) -> integer indices into ``classes_`` (softmax cross-entropy)
* ``"binary"``      labels (n,) with two classes -> a 0/1 column (sigmoid cross-entropy, one output)
* ``"multilabel"``  a 0/1 indicator matrix (n, k) -> itself, as floats
* ``"continuous"``  regression targets (n,) or (n, k) -> floats of shape (n, k)
"""
from __future__ import annotations

import numpy as np


class TargetEncoder:
    def __init__(self, kind: str, classes=None, y_ndim: int = 1):
        if kind not in ("multiclass", "binary", "multilabel", "continuous"):
            raise ValueError(f"unknown target kind {kind!r}")
        self.kind = kind
        self.classes_ = None if classes is None else np.asarray(classes)
        self.y_ndim = y_ndim

    @classmethod
    def fit(cls, y, kind: str, classes=None):
        y = np.asarray(y)
        if y.size == 0:
            raise ValueError("y is empty")
        if kind == "continuous":
            return cls(kind, None, y.ndim)
        if kind == "multilabel":
            if y.ndim != 2 or not np.isin(y, (0, 1)).all():
                raise ValueError("multi-label targets must be a 2-D 0/1 indicator matrix (n_samples, n_labels)")
            return cls(kind, np.arange(y.shape[1]), 2)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(_not_1d_message("y", y))
        _reject_missing_labels(y)
        y = _strings_as_str(y)
        found = np.unique(y)
        if classes is None:
            classes = found
        else:
            classes = np.unique(_strings_as_str(np.asarray(classes)))
            missing = np.setdiff1d(found, classes)
            if missing.size:
                raise ValueError(f"y has labels {missing.tolist()[:10]} that are not in classes={classes.tolist()}")
        if kind == "binary" and len(classes) != 2:
            raise ValueError(f"binary targets need exactly 2 classes, got {len(classes)}: {classes.tolist()[:10]}")
        if len(classes) < 2:
            raise ValueError(f"classification needs at least 2 classes in y; got only {classes.tolist()}")
        return cls(kind, classes, 1)

    @property
    def n_outputs(self) -> int:
        if self.kind == "binary":
            return 1
        return len(self.classes_)

    def encode(self, y, dtype=np.float32, *, what="y") -> np.ndarray:
        """Labels -> loss targets; labels outside ``classes_`` raise a ValueError naming them (and ``what``)."""
        y = np.asarray(y)
        if self.kind == "continuous":
            t = np.asarray(y, dtype=dtype)
            if not np.isfinite(t).all():
                raise ValueError(f"{what} contains NaN or infinity")
            return t.reshape(len(t), -1)
        if self.kind == "multilabel":
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(f"multi-label {what} must have shape (n, {len(self.classes_)}), got {y.shape}")
            return y.astype(dtype)
        y = _strings_as_str(y.ravel() if y.ndim == 2 and y.shape[1] == 1 else y)
        if y.ndim != 1:
            raise ValueError(_not_1d_message(what, y))
        try:
            index = np.searchsorted(self.classes_, y)
        except TypeError:
            raise ValueError(f"{what} labels of type {y.dtype} cannot be compared with classes "
                             f"{self.classes_.tolist()[:10]}") from None
        index = np.minimum(index, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            bad = np.unique(y[unknown]).tolist()[:10]
            raise ValueError(f"{what} has labels {bad} that are not among the training classes "
                             f"{self.classes_.tolist()[:20]}")
        if self.kind == "binary":
            return index.astype(dtype).reshape(-1, 1)
        return index.astype(np.intp)

    def class_index(self, y) -> np.ndarray:
        """Integer class index per row (for stratified splits and class weights)."""
        t = self.encode(y)
        if self.kind == "binary":
            return t.ravel().astype(np.intp)
        return t

    def decode(self, proba_or_values: np.ndarray) -> np.ndarray:
        """Predictions in the user's label space from probabilities (or regression values)."""
        p = proba_or_values
        if self.kind == "continuous":
            return p.ravel() if self.y_ndim == 1 and p.shape[1] == 1 else p
        if self.kind == "multilabel":
            return (p > 0.5).astype(np.int64)
        if self.kind == "binary":
            return self.classes_[(p[:, 1] > 0.5).astype(np.intp)]
        return self.classes_[np.argmax(p, axis=1)]

    def get_config(self):
        classes = None if self.classes_ is None else self.classes_.tolist()
        classes_dtype = None if self.classes_ is None else self.classes_.dtype.str
        return {"kind": self.kind, "classes": classes, "classes_dtype": classes_dtype, "y_ndim": self.y_ndim}

    @classmethod
    def from_config(cls, cfg):
        classes = cfg.get("classes")
        if classes is not None:
            classes = np.asarray(classes, dtype=np.dtype(cfg["classes_dtype"]))
            if classes.dtype == object:
                raise ValueError("object-dtype class labels cannot be loaded")
            if classes.ndim != 1 or not np.array_equal(classes, np.unique(classes)):
                raise ValueError("classes must be a sorted list of distinct labels (label lookup relies on it)")
        return cls(cfg["kind"], classes, cfg.get("y_ndim", 1))


def _not_1d_message(what, y) -> str:
    message = f"class labels must be 1-D (n_samples,); {what} has shape {y.shape}"
    if y.ndim == 2 and y.dtype.kind in "biuf" and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        message += (f". These look like one-hot rows: pass the class indices {what}.argmax(axis=1) (the loss "
                    "never needs a one-hot matrix)")
    return message


def _is_missing(value) -> bool:
    """None, NaN, or a marker whose self-comparison is neither true nor false (pandas.NA)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN is the one float unequal to itself
    except TypeError:  # pandas.NA: "boolean value of NA is ambiguous"
        return True


def _reject_missing_labels(y: np.ndarray) -> None:
    """NaN or None is a missing label, not a class: say so instead of failing later in a sort or lookup."""
    if y.dtype.kind == "f":
        missing = np.isnan(y)
    elif y.dtype == object:
        missing = np.array([_is_missing(v) for v in y.ravel()])
    else:
        return
    if missing.any():
        raise ValueError(f"y has {int(missing.sum())} missing labels (NaN, None or NA), first at row "
                         f"{int(np.flatnonzero(missing)[0])}; drop or label those rows first")


def _strings_as_str(y: np.ndarray) -> np.ndarray:
    """Object arrays of Python strings (e.g. from pandas) become a fixed-width str array we can save."""
    if y.dtype == object and y.size and all(isinstance(v, str) for v in y.ravel()):
        return y.astype(str)
    return y


def infer_target_kind(y, loss_link: str) -> str:
    y = np.asarray(y)
    if loss_link == "identity":
        return "continuous"
    if loss_link == "sigmoid":
        return "multilabel" if y.ndim == 2 and y.shape[1] > 1 else "binary"
    return "multiclass"
