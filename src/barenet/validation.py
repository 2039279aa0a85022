"""Input checks that turn bad input into a clear ``ValueError`` instead of silently wrong numbers."""
from __future__ import annotations

import math

import numpy as np

#: Cells of ``X`` tested at once when a non-finite value must be located: the scan's boolean mask (64 KiB) is
#: all the memory the finiteness check ever takes, however large ``X`` is.
SCAN_CELLS = 1 << 16


def check_features(X, *, dtype=None, n_features=None, what="X", allow_empty=False, check_finite=True,
                   row_offset=0) -> np.ndarray:
    """Return ``X`` as a 2-D float array of ``dtype``, or raise a ValueError that says what is wrong.

    ``row_offset``: where ``X`` starts in the caller's array (a batch of a larger X), so errors name the row
    the user knows.
    """
    if not isinstance(X, np.ndarray) and hasattr(X, "to_numpy"):  # pandas DataFrame / Series
        frame, X = X, X.to_numpy()
        if X.dtype == object:  # nullable columns (Float64, Int64, ...) come out as objects, pd.NA included
            try:
                X = frame.to_numpy(dtype=np.float64, na_value=np.nan)  # NA -> NaN, named by row and column below
            except (TypeError, ValueError):
                pass  # text columns: the object path below says what is wrong
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists etc.
        raise ValueError(f"{what} could not be read as an array: {exc}") from None
    kind = arr.dtype.kind
    if kind in "OUSV":  # objects, strings, bytes
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be numeric; got values of type {arr.dtype} that are not numbers") from None
        kind = "f"
    if kind == "c":
        raise ValueError(f"{what} must be real-valued; complex numbers are not supported")
    if arr.ndim != 2:
        hint = (" (reshape a single feature with X.reshape(-1, 1), one sample with X.reshape(1, -1))"
                if arr.ndim == 1 else "")
        raise ValueError(f"{what} must be 2-D (n_samples, n_features); got an array of shape {arr.shape}{hint}")
    n, d = arr.shape
    if n == 0 and not allow_empty:
        raise ValueError(f"{what} is empty: 0 samples (shape {arr.shape})")
    if d == 0:
        raise ValueError(f"{what} has 0 features (shape {arr.shape})")
    if n_features is not None and d != n_features:
        raise ValueError(f"{what} has {d} features, but the model was built for {n_features}")
    if dtype is not None:
        arr = np.asarray(arr, dtype=dtype)
        kind = arr.dtype.kind
    # sum(X) is finite unless a cell is NaN or +-inf, or large finite cells overflowed the sum (|x| ~ 1e38 in
    # float32): only then are the cells scanned, a bounded chunk at a time, to find the first bad one (or clear
    # X). No n x d boolean array (np.isfinite(X).all() made one: 47 MiB for MNIST's training set).
    if check_finite and kind == "f" and not math.isfinite(np.add.reduce(arr, axis=None)):
        bad = first_non_finite(arr)
        if bad is not None:
            row, col = bad
            raise ValueError(
                f"{what} contains NaN or infinity (first at row {row + row_offset}, column {col}: {arr[row, col]})"
                f"{_overflow_hint(X, arr, row, col)}; clean or impute it before training or prediction"
            )
    return arr


def _overflow_hint(original, converted, row, col) -> str:
    """Say so when the bad cell was finite before the conversion to ``converted.dtype`` (e.g. 1e39 -> float32)."""
    source = original if isinstance(original, np.ndarray) else None
    if source is None or source.ndim != 2 or source.dtype.kind != "f" or source.dtype == converted.dtype:
        return ""
    value = source[row, col]
    if np.isfinite(value):
        return f" (it was {float(value)!r} before the conversion to {converted.dtype}, which cannot hold it)"
    return ""


def first_non_finite(arr: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first NaN or infinity in the 2-D ``arr`` (row-major order), or None if every cell
    is finite. Scans ``SCAN_CELLS`` cells' worth of whole rows at a time, so its memory is bounded."""
    rows = max(1, SCAN_CELLS // max(1, arr.shape[1]))
    for start in range(0, arr.shape[0], rows):
        finite = np.isfinite(arr[start:start + rows])
        if not finite.all():
            row, col = np.argwhere(~finite)[0]
            return start + int(row), int(col)
    return None


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
