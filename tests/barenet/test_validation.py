"""The finiteness check in ``check_features``: exact, and O(1) memory however large X is."""
from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

from barenet.validation import SCAN_CELLS, check_features, first_non_finite


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, 0), (3, 7), (2999, 49)])  # the last one is many scan chunks in
def test_non_finite_cells_are_found_with_their_row_and_column(dtype, bad, where):
    X = np.random.default_rng(0).standard_normal((3000, 50)).astype(dtype)
    X[where] = bad
    with pytest.raises(ValueError, match=rf"X contains NaN or infinity \(first at row {where[0]}, column {where[1]}:"):
        check_features(X)
    assert first_non_finite(X) == where


def test_the_first_bad_cell_in_row_major_order_is_reported():
    X = np.zeros((5000, 20), dtype=np.float32)
    X[4000, 1] = np.nan
    X[1234, 19] = -np.inf
    X[1234, 18] = np.inf
    with warnings.catch_warnings(), pytest.raises(ValueError, match=r"first at row 1234, column 18: inf"):
        warnings.simplefilter("ignore", RuntimeWarning)  # inf + -inf in the fast sum: "invalid value"
        check_features(X)


@pytest.mark.parametrize("dtype, huge", [(np.float32, 3e38), (np.float64, 1.7e308)])
def test_huge_finite_values_that_overflow_the_sum_are_not_a_false_alarm(dtype, huge):
    X = np.full((1000, 30), huge, dtype=dtype)
    X[::2, ::3] = -huge
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow of the fast sum itself
        assert np.isinf(np.add.reduce(X, axis=None))  # the fast path alone would have said "not finite"
        out = check_features(X)
    assert out is X
    X[999, 29] = np.nan  # and behind those huge values a real NaN is still found
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=r"first at row 999, column 29: nan"):
            check_features(X)


def test_the_check_takes_bounded_memory():
    X = np.ones((20_000, 100), dtype=np.float32)  # 8 MB; an n x d boolean mask would be 2 MB
    X[:, 0] = 3e38  # overflow the fast sum, so the chunked scan runs too
    X[:, 1] = 3e38
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            check_features(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * SCAN_CELLS, peak


def test_check_finite_false_and_integer_input_skip_the_check():
    X = np.array([[np.nan, 1.0]])
    assert np.isnan(check_features(X, check_finite=False)[0, 0])
    assert check_features(np.arange(6).reshape(3, 2)).dtype.kind == "i"
