"""Reading flow records: the NSL-KDD splits and any flow CSV handed in for scoring.

Two entry points:

* ``load_nsl_kdd(split)`` finds (or downloads) one NSL-KDD file, checks its
  SHA-256 against the pinned value and parses it.
* ``read_flow_csv(path)`` parses a file of flows to be scored and validates
  every row against the schema. It never drops a row: a malformed row either
  stops the read with a ``FlowFileError`` naming file, line and column, or (with
  ``on_bad_row="review"``) stays in place, marked with a ``bad_reason``.

Both return a ``FlowTable``. No pickle is used anywhere; files are written
atomically (temp file in the same folder, fsync, os.replace).
"""

from __future__ import annotations

import array
import csv
import gzip
import hashlib
import http.client
import io
import itertools
import os
import tempfile
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .schema import CATEGORICAL, DIFFICULTY_COLUMN, FEATURE_COLUMNS, LABEL_COLUMN

SPLIT_FILES = {"train": "KDDTrain+", "test+": "KDDTest+", "test-21": "KDDTest-21"}

# SHA-256 of the *decompressed* .txt files (dataset README; the same values are
# pinned by public loaders), so .txt and .txt.gz copies verify alike.
SHA256 = {
    "KDDTrain+": "1b86d2f957b33082081bba410fe129b475efebcc13c9014c3f447c8271aadf95",
    "KDDTest+": "fa46b0935342616aa83b7c2578db355b6a7aaabbc492248172c7a1e8b7ab8f84",
    "KDDTest-21": "746993ac9e25868827cacf09eab450050a2a1056e1ce48a1ad39f5dc801d531d",
}

# Tried in order. The second is pinned to a commit so it cannot drift.
MIRRORS = (
    "https://raw.githubusercontent.com/defcom17/NSL_KDD/master/",
    "https://raw.githubusercontent.com/jmnwong/NSL-KDD-Dataset/"
    "9d544d0eb9b87d7e2f43ff65733bdb644631d12f/",
)

# The largest file is 19 MB; the cap stops a hostile mirror or gzip bomb from exhausting memory.
MAX_BYTES = 256 * 2**20
LABEL_ALIASES = (LABEL_COLUMN, "label")


class DataNotFoundError(FileNotFoundError):
    """No usable copy of a dataset file; the message lists every place tried."""


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


# ----------------------------------------------------------------- NSL-KDD ---

def load_nsl_kdd(split, data_dir=None, *, download=True, cache_dir=None,
                 verify=True, opener=None, timeout=30.0) -> FlowTable:
    """Load one NSL-KDD split: "train", "test+" or "test-21".

    Looks in order at: ``data_dir`` (the files themselves or ``data_dir/nsl-kdd``),
    ``$BARENET_DATA/nsl-kdd``, the cache folder (``cache_dir``, else
    ``$XDG_CACHE_HOME/barenet/nsl-kdd`` or ``~/.cache/barenet/nsl-kdd``), then the
    mirrors. Each place may hold ``<name>.txt`` or ``<name>.txt.gz``. A local
    copy failing its checksum is skipped with a warning (``verify=False`` skips
    the ~0.1 s check); downloads are always verified before being cached.
    ``opener(url, timeout=...)`` returns a binary file object (default urlopen);
    tests inject a fake one. Raises DataNotFoundError listing every attempt.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_FILES)}")
    stem = SPLIT_FILES[split]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    failures = []
    for folder, origin in _local_folders(data_dir, cache):
        data, path = _try_folder(folder, origin, stem, verify, failures)
        if data is not None:
            return _parse_nsl_kdd(data, str(path))
    if not download:
        failures.append("download: skipped (download=False)")
    else:
        for url in (base + stem + ".txt" for base in MIRRORS):
            try:
                data = _verified(_fetch(url, opener or urllib.request.urlopen, timeout), stem)
            except (OSError, ValueError, EOFError, http.client.HTTPException) as exc:
                failures.append(f"{url}: {exc}")
                continue
            return _parse_nsl_kdd(data, _cache_download(data, cache / f"{stem}.txt", url))
    raise DataNotFoundError(_not_found_message(stem, failures))


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/barenet/nsl-kdd, else ~/.cache/barenet/nsl-kdd."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "barenet" / "nsl-kdd"


def _local_folders(data_dir, cache):
    if data_dir is not None:
        yield Path(data_dir), "data_dir"
        yield Path(data_dir) / "nsl-kdd", "data_dir"
    if os.environ.get("BARENET_DATA"):
        yield Path(os.environ["BARENET_DATA"]) / "nsl-kdd", "$BARENET_DATA"
    else:
        yield None, "$BARENET_DATA"
    yield cache, "cache"


def _try_folder(folder, origin, stem, verify, failures):
    """Return (bytes, path) of the first usable copy in folder, recording why others failed."""
    if folder is None:
        failures.append(f"{origin}: not set")
        return None, None
    candidates = [folder / f"{stem}.txt", folder / f"{stem}.txt.gz"]
    found = [p for p in candidates if p.is_file()]
    if not found:
        failures.append(f"{folder} ({origin}): no {stem}.txt or {stem}.txt.gz")
    for path in found:
        try:
            data = _read_local(path)
            return (_verified(data, stem) if verify else data), path
        except (OSError, ValueError, EOFError, zlib.error) as exc:  # zlib.error: corrupt .gz
            failures.append(f"{path} ({origin}): {exc}")
            warnings.warn(f"skipping {path}: {exc}", stacklevel=3)
    return None, None


def _read_local(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        return _read_capped(fh, str(path))


def _fetch(url, opener, timeout) -> bytes:
    with opener(url, timeout=timeout) as response:
        return _read_capped(response, url)


def _read_capped(fh, name) -> bytes:
    data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"{name} is larger than {MAX_BYTES} bytes; refusing to load it")
    return data


def _verified(data: bytes, stem: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[stem]:
        raise ValueError(f"checksum mismatch: sha256 {digest}, expected {SHA256[stem]}")
    return data


def _cache_download(data: bytes, target: Path, url: str) -> str:
    """Cache verified bytes; an unwritable cache costs a warning, not the data."""
    try:
        atomic_write_bytes(target, data)
        return str(target)
    except OSError as exc:
        warnings.warn(f"could not cache {url} at {target}: {exc}", stacklevel=3)
        return url


def _parse_nsl_kdd(data: bytes, source: str) -> FlowTable:
    # Parse the very bytes that were verified (no second read of the file).
    table = _parse_rows(io.StringIO(data.decode("utf-8")), source, FEATURE_COLUMNS,
                        CATEGORICAL, has_header=False, on_bad_row="error", keep_raw=False)
    if table.attack is None or table.difficulty is None:
        raise FlowFileError(f"{source}: expected 43 fields (features, attack, difficulty)",
                            path=source, line=1, reason="field_count")
    return table


def _not_found_message(stem, failures) -> str:
    places = "\n".join(f"  - {f}" for f in failures)
    return (
        f"NSL-KDD file {stem} not found. Places tried:\n{places}\n"
        f"To provide it: put {stem}.txt or {stem}.txt.gz in a folder and pass "
        "data_dir=<folder>, or set BARENET_DATA to a folder holding nsl-kdd/, "
        "or allow download=True with network access. Files must match the pinned "
        "SHA-256 (see nids_triage.datasets.SHA256); origin: "
        "https://www.unb.ca/cic/datasets/nsl.html"
    )


def atomic_write_bytes(path, data: bytes) -> None:
    """Write data so that readers see the old file or the complete new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; POSIX only (Windows cannot open folders).
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -------------------------------------------------------------- flow CSVs ---

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
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        return _parse_rows(fh, str(path), tuple(columns), tuple(categorical),
                           has_header, on_bad_row, keep_raw)


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
    elif has_header or (has_header is None and _looks_like_header(first[1], columns)):
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
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # broken quoting or an oversized field: rows after it are unreliable
            raise FlowFileError(f"{source}: line {reader.line_num}: malformed CSV ({exc})",
                                path=source, line=reader.line_num, reason="malformed_csv") from None
        # Skip only truly blank lines; a row of empty fields is a row (and is bad).
        if fields and (len(fields) > 1 or fields[0].strip()):
            yield reader.line_num, fields


def _looks_like_header(fields, columns) -> bool:
    # Data rows hold numbers and values like "tcp"/"http"; only a header names columns.
    known = set(columns) | set(LABEL_ALIASES) | {DIFFICULTY_COLUMN}
    return any(f.strip() in known for f in fields)


def _split_columns(names, columns, categorical):
    pos = {name: i for i, name in enumerate(names)}
    num = [(c, pos[c]) for c in columns if c not in categorical]
    cat = [(c, pos[c]) for c in columns if c in categorical]
    return num, cat


def _positional_layout(n, columns, categorical, source, line) -> _Layout:
    k = len(columns)
    if n not in (k, k + 1, k + 2):
        raise FlowFileError(
            f"{source}: line {line}, column None: expected {k}, {k + 1} or {k + 2} fields "
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
