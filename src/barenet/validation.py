"""Input checks that turn bad input into a clear ``ValueError`` instead of silently wrong numbers."""
from __future__ import annotations

import numpy as np


def check_features(X, *, dtype=None, n_features=None, what="X", allow_empty=False, check_finite=True) -> np.ndarray:
    """Return ``X`` as a 2-D float array of ``dtype``, or raise a ValueError that says what is wrong."""
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas DataFrame / Series
        X = X.to_numpy()
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists etc.
        raise ValueError(f"{what} could not be read as an array: {exc}") from None
    if arr.dtype == object or arr.dtype.kind in "USV":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be numeric; got values of type {arr.dtype} that are not numbers") from None
    if arr.dtype.kind == "c":
        raise ValueError(f"{what} must be real-valued; complex numbers are not supported")
    if arr.ndim != 2:
        hint = " (reshape a single feature with X.reshape(-1, 1), one sample with X.reshape(1, -1))" if arr.ndim == 1 else ""
        raise ValueError(f"{what} must be 2-D (n_samples, n_features); got an array of shape {arr.shape}{hint}")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{what} is empty: 0 samples (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} has 0 features (shape {arr.shape})")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{what} has {arr.shape[1]} features, but the model was built for {n_features}")
    if dtype is not None:
        arr = np.asarray(arr, dtype=dtype)
    if check_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{what} contains NaN or infinity (first at row {bad[0]}, column {bad[1]}: {arr[bad[0], bad[1]]}); "
            "clean or impute it before training or prediction"
        )
    return arr


def check_sample_weight(sample_weight, n: int, what="sample_weight") -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{what} must be finite and >= 0")
    return w


def check_consistent_length(X, y, what="y"):
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but {what} has {len(y)}")
