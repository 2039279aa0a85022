"""Flow files: the ``FlowTable`` every reader returns, and ``read_flow_csv`` for files handed in for scoring.

``read_flow_csv(path)`` parses a CSV of flows and validates every row against the schema. It never drops
a row: a malformed row either stops the read with a ``FlowFileError`` naming file, line and column, or
(with ``on_bad_row="review"``) stays in place, marked with a ``bad_reason``. The stdlib ``csv`` module
does the CSV parsing.
"""

from __future__ import annotations

import array
import csv
import gzip
import itertools
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .schema import CATEGORICAL, DIFFICULTY_COLUMN, FEATURE_COLUMNS, LABEL_COLUMN

LABEL_ALIASES = (LABEL_COLUMN, "label")


class FlowFileError(ValueError):
    """A flow file does not match the schema. Carries path, line (1-based), column, reason."""

    def __init__(self, message, *, path=None, line=None, column=None, reason=None):
        super().__init__(message)
        self.path, self.line, self.column, self.reason = path, line, column, reason


@dataclass
class FlowTable:
    """Parsed flows, one entry per data row, in file order.

    numeric      float64 (n, len(numeric_columns)), columns in ``numeric_columns`` order
    categorical  {"protocol_type"|"service"|"flag": str array (n,)}
    attack       str array (n,), or None if the file has no label column
    difficulty   int64 array (n,), or None if the file has no difficulty column
    line         int64 array (n,): 1-based line of each row in ``source``
    bad_reason   object array (n,): None for a good row, else a short code
                 ("field_count", "unparsable_number", "empty_value")
    bad_message  object array (n,): None or the full human-readable message
    raw          list of the raw field lists (None when not kept)
    A bad row holds NaN in every numeric column, "" in text columns and -1 as
    difficulty, so an encoder that forgets to check ``bad`` still flags it as
    invalid instead of scoring it; its original text is in ``raw``.
    """

    numeric: np.ndarray
    categorical: dict
    numeric_columns: tuple
    attack: np.ndarray | None
    difficulty: np.ndarray | None
    source: str
    line: np.ndarray
    bad_reason: np.ndarray
    bad_message: np.ndarray
    raw: list | None = None

    def __len__(self) -> int:
        return len(self.line)

    def subset(self, rows) -> "FlowTable":
        """The flows at ``rows`` (indices or a boolean mask), in that order, as a new table."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.intp)
        pick = lambda a: None if a is None else a[rows]  # noqa: E731
        return FlowTable(
            numeric=self.numeric[rows], categorical={k: v[rows] for k, v in self.categorical.items()},
            numeric_columns=self.numeric_columns, attack=pick(self.attack), difficulty=pick(self.difficulty),
            source=self.source, line=self.line[rows], bad_reason=self.bad_reason[rows],
            bad_message=self.bad_message[rows], raw=None if self.raw is None else [self.raw[i] for i in rows])

    @property
    def bad(self) -> np.ndarray:
        """Boolean mask of rows that failed validation."""
        return np.array([r is not None for r in self.bad_reason], dtype=bool)


def read_flow_csv(path, columns=FEATURE_COLUMNS, *, categorical=CATEGORICAL,
                  has_header=None, on_bad_row="error", keep_raw=True) -> FlowTable:
    """Read and validate a CSV (or .csv.gz) of flows.

    Headerless files use NSL-KDD order with len(columns), +1 (attack label) or
    +2 (label, difficulty) fields; the first row fixes which. A header row (auto-
    detected when has_header is None) must name every column exactly once, may
    add "attack"/"label" and "difficulty", and nothing else. Header problems and
    broken CSV quoting always raise FlowFileError; row problems raise with
    on_bad_row="error" or mark the row with on_bad_row="review". Undecodable
    bytes become U+FFFD, so they surface as unparsable numbers or unseen categories.
    """
    if on_bad_row not in ("error", "review"):
        raise ValueError(f"on_bad_row must be 'error' or 'review', not {on_bad_row!r}")
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
            return _parse_rows(fh, str(path), tuple(columns), tuple(categorical),
                               has_header, on_bad_row, keep_raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # decompression fails mid-read: nothing is trusted
        raise FlowFileError(f"{path}: cannot decompress ({exc}): the file is truncated or not gzip data",
                            path=str(path), reason="malformed_gzip") from None


@dataclass
class _Layout:
    """Where each value sits in a row of one particular file."""

    names: list          # column name at each field position
    num: list            # (name, position) of numeric columns, in schema order
    cat: list            # (name, position) of categorical columns
    attack: int | None
    difficulty: int | None


class _RowError(Exception):
    def __init__(self, reason, column, detail):
        super().__init__(detail)
        self.reason, self.column, self.detail = reason, column, detail


def _parse_rows(fh, source, columns, categorical, has_header, on_bad_row, keep_raw):
    records = _records(fh, source)
    first = next(records, None)
    if first is None:  # an empty file is an empty table, laid out like NSL-KDD
        layout = _positional_layout(len(columns) + 2, columns, categorical, source, 1)
    elif has_header or (has_header is None and is_header_row(first[1], columns)):
        layout = _header_layout(first[1], columns, categorical, source, first[0])
    else:
        layout = _positional_layout(len(first[1]), columns, categorical, source, first[0])
        records = itertools.chain([first], records)  # the first row is data: parse it too
    return _collect(records, layout, source, on_bad_row, keep_raw)


def _collect(records, layout, source, on_bad_row, keep_raw) -> FlowTable:
    # Values go straight into flat per-column buffers: keeping one list per row
    # alive would make the garbage collector rescan ~10^5 lists again and again.
    numeric = array.array("d")
    cats = {name: [] for name, _ in layout.cat}
    attack, diff, lines, reasons, messages = [], array.array("q"), array.array("q"), [], []
    raw = [] if keep_raw else None
    for line, fields in records:
        values, cat_values, label, difficulty, reason, msg = _checked_row(
            line, fields, layout, source, on_bad_row)
        numeric.extend(values)
        for (name, _), value in zip(layout.cat, cat_values, strict=True):
            cats[name].append(value)
        attack.append(label)
        diff.append(difficulty)
        lines.append(line)
        reasons.append(reason)
        messages.append(msg)
        if raw is not None:
            raw.append(fields)
    return FlowTable(
        numeric=np.frombuffer(numeric, dtype=np.float64).reshape(len(lines), len(layout.num)).copy(),
        categorical={name: np.array(values, dtype=str) for name, values in cats.items()},
        numeric_columns=tuple(name for name, _ in layout.num),
        attack=np.array(attack, dtype=str) if layout.attack is not None else None,
        difficulty=np.array(diff, dtype=np.int64) if layout.difficulty is not None else None,
        source=source,
        line=np.array(lines, dtype=np.int64),
        bad_reason=_object_array(reasons),
        bad_message=_object_array(messages),
        raw=raw,
    )


def _checked_row(line, fields, layout, source, on_bad_row):
    """(values, categorical values, attack, difficulty, reason, message) of one row."""
    try:
        return (*_parse_row(fields, layout), None, None)
    except _RowError as err:
        msg = f"{source}: line {line}, column {err.column!r}: {err.detail}"
        if on_bad_row == "error":
            raise FlowFileError(msg, path=source, line=line, column=err.column,
                                reason=err.reason) from None
        # Placeholders that no later step can mistake for real values.
        return [np.nan] * len(layout.num), [""] * len(layout.cat), "", -1, err.reason, msg


def _object_array(items) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def _records(fh, source):
    """Yield (1-based line, fields) for each non-blank CSV record."""
    reader = csv.reader(fh)
    while True:
        start = reader.line_num + 1  # the line this record starts on
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # broken quoting or an oversized field: rows after it are unreliable
            raise FlowFileError(f"{source}: line {reader.line_num}: malformed CSV ({exc})",
                                path=source, line=reader.line_num, reason="malformed_csv") from None
        if reader.line_num != start and any("\n" in f or "\r" in f for f in fields):
            # legal CSV, but no flow field holds a line break: an unterminated quote swallowed the lines after it
            raise FlowFileError(f"{source}: line {start}: malformed CSV (a quoted field runs on to line "
                                f"{reader.line_num}: unterminated quote?)",
                                path=source, line=start, reason="malformed_csv")
        # Skip only truly blank lines; a row of empty fields is a row (and is bad).
        if fields and (len(fields) > 1 or fields[0].strip()):
            yield reader.line_num, fields


def is_header_row(fields, columns=FEATURE_COLUMNS) -> bool:
    """True if this first row of a file names columns rather than holding a flow."""
    # Data rows hold numbers and values like "tcp"/"http"; only a header names columns. A data row can
    # contain a column name too ("land" is both a feature and an attack label), but never without numbers.
    known = set(columns) | set(LABEL_ALIASES) | {DIFFICULTY_COLUMN}
    return any(f.strip() in known for f in fields) and not any(_is_number(f) for f in fields)


def _is_number(text) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_columns(names, columns, categorical):
    pos = {name: i for i, name in enumerate(names)}
    num = [(c, pos[c]) for c in columns if c not in categorical]
    cat = [(c, pos[c]) for c in columns if c in categorical]
    return num, cat


def _positional_layout(n, columns, categorical, source, line) -> _Layout:
    k = len(columns)
    if n not in (k, k + 1, k + 2):
        raise FlowFileError(
            f"{source}: line {line}: expected {k}, {k + 1} or {k + 2} fields "
            f"(features, then optional attack label and difficulty), got {n}",
            path=source, line=line, reason="field_count")
    names = list(columns) + [LABEL_COLUMN, DIFFICULTY_COLUMN][: n - k]
    num, cat = _split_columns(names, columns, categorical)
    return _Layout(names, num, cat, k if n > k else None, k + 1 if n > k + 1 else None)


def _header_layout(fields, columns, categorical, source, line) -> _Layout:
    names = [f.strip() for f in fields]

    def fail(column, detail):
        raise FlowFileError(f"{source}: line {line}, column {column!r}: {detail}",
                            path=source, line=line, column=column, reason="header")

    known = set(columns) | set(LABEL_ALIASES) | {DIFFICULTY_COLUMN}
    for i, name in enumerate(names):
        if name not in known:
            fail(name, "unexpected column in header")
        if name in names[:i]:
            fail(name, "column named twice in header")
    for name in columns:
        if name not in names:
            fail(name, "missing column in header")
    labels = [i for i, n in enumerate(names) if n in LABEL_ALIASES]
    if len(labels) > 1:
        fail(names[labels[1]], f"more than one label column ({LABEL_ALIASES})")
    num, cat = _split_columns(names, columns, categorical)
    diff = names.index(DIFFICULTY_COLUMN) if DIFFICULTY_COLUMN in names else None
    return _Layout(names, num, cat, labels[0] if labels else None, diff)


def _parse_row(fields, layout):
    """(numeric values, categorical values, attack, difficulty), or raise _RowError."""
    n = len(layout.names)
    if len(fields) < n:
        raise _RowError("field_count", layout.names[len(fields)],
                        f"expected {n} fields, got {len(fields)}; this column and later ones are missing")
    if len(fields) > n:
        raise _RowError("field_count", layout.names[-1],
                        f"expected {n} fields, got {len(fields)}; extra fields after this column")
    try:
        values = [float(fields[p]) for _, p in layout.num]
    except ValueError:
        values = [_number(fields[p], name, float) for name, p in layout.num]
    cats = [_text(fields[p], name) for name, p in layout.cat]
    attack = _text(fields[layout.attack], LABEL_COLUMN) if layout.attack is not None else ""
    diff = -1
    if layout.difficulty is not None:
        diff = _number(fields[layout.difficulty], DIFFICULTY_COLUMN, int)
    return values, cats, attack, diff


def _number(text, column, kind):
    # float() accepts "nan"/"inf": those parse here and the encoder rules on them.
    try:
        return kind(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise _RowError("unparsable_number", column, f"cannot parse {shown!r} as a number") from None


def _text(text, column):
    value = text.strip()
    if not value:
        raise _RowError("empty_value", column, "empty value")
    return value
