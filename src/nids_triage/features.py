"""Turning parsed flows into the numeric matrix a model consumes.

``FeatureEncoder`` is fitted on training flows only and then applied unchanged
to anything scored later:

1. numeric columns: heavy-tailed counts get log1p (schema.LOG1P_COLUMNS), then
   every numeric column is standardised with the training mean and std;
2. categorical columns: one-hot over the categories seen in training. A value
   never seen in training encodes as an all-zero block and its row is flagged in
   ``unseen_category``: the model has no evidence about it, so the caller should
   defer such flows to an analyst rather than trust the score;
3. NaN, infinite or negative numeric values are never imputed: with
   ``invalid="review"`` (default) the row is flagged in ``invalid_value`` and its
   whole feature vector is zeros; with ``invalid="error"`` transform raises.

The fitted state is plain JSON data (``to_dict``/``from_dict``), so it can live
in a manifest next to the model weights; a round trip reproduces transforms
bit for bit because floats survive JSON exactly (repr is shortest round-trip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .schema import CATEGORICAL, LOG1P_COLUMNS, NUMERIC_COLUMNS

FORMAT = "nids_triage.FeatureEncoder"
VERSION = 1

# A training std below this is "constant": dividing by it would blow float
# rounding noise up into large values, so its scale is 1 and the column maps to
# (x - mean), i.e. 0 for every value seen in training. (num_outbound_cmds is
# always 0 in NSL-KDD.)
MIN_STD = 1e-8

_DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass
class EncodedFlows:
    """Output of FeatureEncoder.transform; all arrays have one entry per input row.

    X               (n, n_features) matrix in the encoder's dtype
    unseen_category bool (n,): some categorical value was not seen in training
    invalid_value   bool (n,): some numeric value was NaN, infinite or negative;
                    the row of X is all zeros and must not be scored
    unknown_counts  {column: number of rows with an unseen value}
    unknown_values  {column: {unseen value: count}}, for the analyst report
    """

    X: np.ndarray
    unseen_category: np.ndarray
    invalid_value: np.ndarray
    unknown_counts: dict
    unknown_values: dict

    @property
    def needs_review(self) -> np.ndarray:
        """Rows a model must not decide on alone."""
        return self.unseen_category | self.invalid_value


class FeatureEncoder:
    """log1p + standardisation for numeric columns, one-hot for categoricals."""

    def __init__(self, *, numeric_columns=NUMERIC_COLUMNS, categorical=CATEGORICAL,
                 log1p_columns=LOG1P_COLUMNS, dtype="float32", invalid="review"):
        self.numeric_columns = tuple(numeric_columns)
        self.categorical = tuple(categorical)
        self.log1p_columns = tuple(log1p_columns)
        self.dtype = np.dtype(dtype).name
        self.invalid = invalid
        _check_config(self)
        self.mean_ = self.scale_ = self.categories_ = None

    # ------------------------------------------------------------- fitting ---

    def fit(self, table) -> "FeatureEncoder":
        """Learn means, scales and categories from training flows.

        ``table`` is a FlowTable (or anything with ``numeric``, ``numeric_columns``
        and ``categorical``). Invalid values raise: statistics learnt from exporter
        sentinels would silently skew every later transform.
        """
        values = self._numeric(table)
        bad = _invalid_cells(values)
        if bad.any():
            raise ValueError("cannot fit on invalid values: " + _describe_first(bad, values, table, self))
        z = self._log1p(values)
        self.mean_ = z.mean(axis=0) if len(z) else np.zeros(z.shape[1])
        std = z.std(axis=0) if len(z) else np.zeros(z.shape[1])
        self.scale_ = np.where(std < MIN_STD, 1.0, std)
        self.categories_ = {c: [str(v) for v in np.unique(table.categorical[c])] for c in self.categorical}
        return self

    def fit_transform(self, table, **kwargs) -> EncodedFlows:
        return self.fit(table).transform(table, **kwargs)

    @property
    def feature_names_(self) -> list:
        """Names of the output columns: numeric names, then "column=category"."""
        self._check_fitted()
        names = list(self.numeric_columns)
        for column in self.categorical:
            names += [f"{column}={cat}" for cat in self.categories_[column]]
        return names

    # ----------------------------------------------------------- transform ---

    def transform(self, table, *, invalid=None) -> EncodedFlows:
        """Encode flows; see the module docstring for the unknown/invalid policy."""
        self._check_fitted()
        invalid = self.invalid if invalid is None else invalid
        if invalid not in ("review", "error"):
            raise ValueError(f"invalid must be 'review' or 'error', not {invalid!r}")
        values = self._numeric(table)
        bad = _invalid_cells(values)
        if invalid == "error" and bad.any():
            raise ValueError("invalid numeric value: " + _describe_first(bad, values, table, self))
        # Zero the bad cells first only so log1p sees no NaN/negatives; the whole
        # row is zeroed below anyway.
        z = (self._log1p(np.where(bad, 0.0, values)) - self.mean_) / self.scale_
        X = np.zeros((len(values), len(self.feature_names_)), dtype=np.float64)
        X[:, : len(self.numeric_columns)] = z
        unseen, counts, unknown = self._one_hot(table, X)
        invalid_rows = bad.any(axis=1)
        X[invalid_rows] = 0.0
        return EncodedFlows(X.astype(_DTYPES[self.dtype]), unseen, invalid_rows, counts, unknown)

    def _one_hot(self, table, X):
        """Set one-hot entries in X in place; return (unseen mask, counts, values)."""
        unseen = np.zeros(len(X), dtype=bool)
        counts, unknown = {}, {}
        offset = len(self.numeric_columns)
        for column in self.categorical:
            cats = self.categories_[column]
            col = np.asarray(table.categorical[column], dtype=str)
            # One dict lookup per distinct value, broadcast back through the inverse.
            uniq, inverse = np.unique(col, return_inverse=True)
            lookup = {cat: i for i, cat in enumerate(cats)}
            codes = np.array([lookup.get(str(u), -1) for u in uniq], dtype=np.int64)[inverse.ravel()]
            known = codes >= 0
            X[np.flatnonzero(known), offset + codes[known]] = 1.0
            unseen |= ~known
            counts[column] = int((~known).sum())
            per_value = np.bincount(inverse.ravel(), minlength=len(uniq))
            unknown[column] = {str(u): int(per_value[i]) for i, u in enumerate(uniq)
                               if str(u) not in lookup}
            offset += len(cats)
        return unseen, counts, unknown

    def _numeric(self, table) -> np.ndarray:
        if tuple(table.numeric_columns) != self.numeric_columns:
            raise ValueError("numeric columns of the table differ from the encoder's: "
                             f"{tuple(table.numeric_columns)} != {self.numeric_columns}")
        return np.asarray(table.numeric, dtype=np.float64)

    def _log1p(self, values: np.ndarray) -> np.ndarray:
        out = values.copy()
        idx = [self.numeric_columns.index(c) for c in self.log1p_columns]
        out[:, idx] = np.log1p(out[:, idx])
        return out

    def _check_fitted(self):
        if self.mean_ is None:
            raise RuntimeError("FeatureEncoder is not fitted; call fit() on training flows first")

    # ------------------------------------------------------- serialisation ---

    def to_dict(self) -> dict:
        """Fitted state as JSON-safe lists, floats and strings."""
        self._check_fitted()
        return {
            "format": FORMAT, "version": VERSION,
            "numeric_columns": list(self.numeric_columns),
            "log1p_columns": list(self.log1p_columns),
            "categorical": [{"column": c, "categories": list(self.categories_[c])}
                            for c in self.categorical],
            "mean": [float(v) for v in self.mean_],
            "scale": [float(v) for v in self.scale_],
            "dtype": self.dtype, "invalid": self.invalid,
        }

    @classmethod
    def from_dict(cls, state: dict) -> "FeatureEncoder":
        """Rebuild an encoder from to_dict() output, validating every field
        (a manifest is input like any other and may be corrupted or edited)."""
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} state")
        try:
            return cls._from_checked_dict(state)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"encoder state is malformed: {exc!r}") from None

    @classmethod
    def _from_checked_dict(cls, state: dict) -> "FeatureEncoder":
        cat_specs = state["categorical"]
        enc = cls(numeric_columns=_str_list(state["numeric_columns"], "numeric_columns"),
                  categorical=[_str(s["column"], "categorical column") for s in cat_specs],
                  log1p_columns=_str_list(state["log1p_columns"], "log1p_columns"),
                  dtype=_str(state["dtype"], "dtype"), invalid=state["invalid"])
        n = len(enc.numeric_columns)
        enc.mean_ = _float_array(state["mean"], n, "mean")
        enc.scale_ = _float_array(state["scale"], n, "scale")
        if (enc.scale_ <= 0).any():
            raise ValueError("encoder state: scale values must be positive")
        enc.categories_ = {s["column"]: _str_list(s["categories"], s["column"]) for s in cat_specs}
        return enc


# ------------------------------------------------------------------ helpers ---

def _invalid_cells(values: np.ndarray) -> np.ndarray:
    # Every numeric NSL-KDD column is a count, size, duration, flag or rate, so a
    # negative number is an exporter sentinel (e.g. -1 = unknown), not data.
    return ~np.isfinite(values) | (values < 0)


def _describe_first(bad, values, table, enc) -> str:
    row, col = map(int, np.argwhere(bad)[0])
    lines = getattr(table, "line", None)
    where = f" (line {int(lines[row])} of {getattr(table, 'source', '?')})" if lines is not None else ""
    return (f"row {row}{where}, column {enc.numeric_columns[col]!r}: {values[row, col]!r} "
            f"(NaN, infinite or negative); {int(bad.any(axis=1).sum())} row(s) affected")


def _check_config(enc: FeatureEncoder) -> None:
    if enc.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, not {enc.dtype!r}")
    if enc.invalid not in ("review", "error"):
        raise ValueError(f"invalid must be 'review' or 'error', not {enc.invalid!r}")
    if not set(enc.log1p_columns) <= set(enc.numeric_columns):
        raise ValueError("log1p_columns must be a subset of numeric_columns")
    for names, what in ((enc.numeric_columns, "numeric"), (enc.categorical, "categorical")):
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate {what} column names")


def _str(value, what) -> str:
    if not isinstance(value, str):
        raise ValueError(f"encoder state: {what} must be a string, got {value!r}")
    return value


def _str_list(values, what) -> list:
    if not isinstance(values, list):
        raise ValueError(f"encoder state: {what} must be a list")
    out = [_str(v, what) for v in values]
    if len(set(out)) != len(out):
        raise ValueError(f"encoder state: duplicate entries in {what}")
    return out


def _float_array(values, n, what) -> np.ndarray:
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f"encoder state: {what} must be a list of {n} numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"encoder state: {what} must hold only numbers")
    out = np.array(values, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ValueError(f"encoder state: {what} must be finite")
    return out
