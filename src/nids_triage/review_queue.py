"""A durable queue of flows the model deferred to a human analyst.

Storage is one SQLite file (stdlib sqlite3):

* WAL journal + synchronous=FULL: once a call returns, its rows survive a
  killed process or a power cut;
* each item has a ``flow_key`` = SHA-256 of (model id, raw features) with a
  UNIQUE constraint, so scoring the same file twice queues nothing twice;
* every change of an item is recorded in ``history``, which triggers make
  append-only (UPDATE or DELETE aborts), and items themselves cannot be
  deleted, so the audit trail cannot be rewritten through this database;
* every place a deferred flow was seen (file, line) is a row of ``sightings``
  (append-only too): identical flows share one item, and the analyst sees how
  many times and where it recurred. Scoring the same file again records nothing
  new, as the key is (item, file, line).

Item lifecycle: new -> in_review (``start``) -> closed (``label``, with a verdict).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import barenet as bn

STATUSES = ("new", "in_review", "closed")
_ITEM_KEYS = {"model_id", "features", "source_file", "line", "predicted_label",
              "confidence", "reasons"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    flow_key        TEXT NOT NULL UNIQUE,
    model_id        TEXT NOT NULL,
    source_file     TEXT,
    line            INTEGER,
    predicted_label TEXT,
    confidence      REAL CHECK (confidence IS NULL OR confidence BETWEEN 0 AND 1),
    reasons         TEXT NOT NULL,          -- JSON list of strings
    features        TEXT NOT NULL,          -- JSON of the raw features
    status          TEXT NOT NULL CHECK (status IN ('new', 'in_review', 'closed')),
    verdict         TEXT,
    analyst_note    TEXT,
    created_at      TEXT NOT NULL,          -- UTC ISO 8601
    updated_at      TEXT NOT NULL,
    CHECK ((status = 'closed') = (verdict IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS items_by_status ON items (status, id);
CREATE TABLE IF NOT EXISTS history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id    INTEGER NOT NULL REFERENCES items (id),
    timestamp  TEXT NOT NULL,
    action     TEXT NOT NULL,
    old_status TEXT,
    new_status TEXT,
    verdict    TEXT,
    note       TEXT
);
CREATE TRIGGER IF NOT EXISTS history_no_update BEFORE UPDATE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS history_no_delete BEFORE DELETE ON history
BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS items_no_delete BEFORE DELETE ON items
BEGIN SELECT RAISE(ABORT, 'review items cannot be deleted'); END;
CREATE TABLE IF NOT EXISTS sightings (
    item_id     INTEGER NOT NULL REFERENCES items (id),
    source_file TEXT NOT NULL,              -- '' when the caller gave none
    line        INTEGER NOT NULL,           -- -1 when the caller gave none
    seen_at     TEXT NOT NULL,
    PRIMARY KEY (item_id, source_file, line)
);
CREATE TRIGGER IF NOT EXISTS sightings_no_update BEFORE UPDATE ON sightings
BEGIN SELECT RAISE(ABORT, 'sightings are append-only'); END;
CREATE TRIGGER IF NOT EXISTS sightings_no_delete BEFORE DELETE ON sightings
BEGIN SELECT RAISE(ABORT, 'sightings are append-only'); END;
"""

#: ``PRAGMA user_version`` of a queue this code wrote. 0: before sightings (its items get their first sighting,
#: the file and line they were added from, when it is first opened here).
SCHEMA_VERSION = 1

_SELECT_ITEMS = ("SELECT items.*, (SELECT count(*) FROM sightings WHERE sightings.item_id = items.id) "
                 "AS n_sightings FROM items")


class ReviewStateError(ValueError):
    """The requested transition is not allowed from the item's current status."""


@dataclass(frozen=True)
class ReviewItem:
    id: int
    flow_key: str
    model_id: str
    source_file: str | None
    line: int | None
    predicted_label: str | None
    confidence: float | None
    reasons: list
    features: object
    status: str
    verdict: str | None
    analyst_note: str | None
    created_at: str
    updated_at: str
    n_sightings: int = 1  # how many (file, line) places this flow was deferred at (``ReviewQueue.sightings``)

    def to_dict(self) -> dict:
        return asdict(self)


def flow_key(model_id: str, features) -> str:
    """Stable identity of a deferred flow: same raw row + same model = same key."""
    canonical = json.dumps([model_id, features], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class ReviewQueue:
    """Durable review queue in the SQLite file at ``path``.

    ``verdicts``: optional collection of allowed verdict labels; ``label`` rejects
    anything else (e.g. pass schema.CATEGORIES).
    """

    def __init__(self, path, *, verdicts=None, timeout=10.0):
        self.path = str(path)
        self.verdicts = None if verdicts is None else frozenset(verdicts)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is
        # exactly one transaction and nothing is left open implicitly.
        self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]  # read before writing anything
        except sqlite3.DatabaseError as exc:
            self._refuse(exc)
        if version > SCHEMA_VERSION:
            self._conn.close()
            raise sqlite3.DatabaseError(f"{self.path}: review queue version {version} is newer than this "
                                        f"nids-triage understands ({SCHEMA_VERSION})")
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._refuse(exc)
        if version < 1:
            with self._transaction() as conn:  # a queue from before sightings: each item was seen where it was added
                conn.execute("INSERT OR IGNORE INTO sightings (item_id, source_file, line, seen_at) "
                             "SELECT id, COALESCE(source_file, ''), COALESCE(line, -1), created_at FROM items")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _refuse(self, exc: sqlite3.DatabaseError):
        """Close and re-raise an opening error with the file's name in it."""
        self._conn.close()
        if isinstance(exc, sqlite3.OperationalError):  # locked, read-only, unreadable: a real queue, a real problem
            raise sqlite3.OperationalError(f"{self.path}: {exc}") from None
        raise sqlite3.DatabaseError(f"{self.path}: not a review queue ({exc})") from None  # e.g. a CSV as --queue

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def _transaction(self, mode="IMMEDIATE"):
        # IMMEDIATE takes the write lock up front, so a read-check-write sequence
        # cannot interleave with another writer.
        self._conn.execute(f"BEGIN {mode}")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ------------------------------------------------------------- writing ---

    def add_many(self, items) -> int:
        """Queue deferred flows in one transaction; returns how many were new.

        Each item is a mapping with "model_id" and "features" (the raw row: a list
        or dict of the original text fields, JSON-serialisable, no NaN floats) and
        optionally "source_file", "line", "predicted_label", "confidence" (0..1)
        and "reasons" (list of str). A flow already queued is not queued again;
        its (source_file, line) is recorded as one more sighting if it is new.
        """
        rows = [_item_row(i, item) for i, item in enumerate(items)]  # validate before writing
        now = _now()
        added = 0
        with self._transaction() as conn:
            for row in rows:
                known = conn.execute("SELECT id FROM items WHERE flow_key = ?", (row[0],)).fetchone()
                if known is None:  # looked up first: an ignored INSERT would still use up an AUTOINCREMENT id
                    item_id = conn.execute(
                        "INSERT INTO items (flow_key, model_id, source_file, line, predicted_label, confidence, "
                        "reasons, features, status, created_at, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'new', ?, ?)", (*row, now, now)).lastrowid
                    added += 1
                    _log(conn, item_id, now, "added", None, "new", None, None)
                else:
                    item_id = known[0]
                conn.execute("INSERT OR IGNORE INTO sightings (item_id, source_file, line, seen_at) "
                             "VALUES (?, COALESCE(?, ''), COALESCE(?, -1), ?)", (item_id, row[2], row[3], now))
        return added

    def start(self, item_id: int, note=None) -> ReviewItem:
        """An analyst picks the item up: new -> in_review."""
        return self._transition(item_id, ("new",), "in_review", "start", None, note)

    def label(self, item_id: int, verdict: str, note=None) -> ReviewItem:
        """Record the analyst's verdict and close the item (from new or in_review)."""
        if not isinstance(verdict, str) or not verdict.strip():
            raise ValueError("verdict must be a non-empty string")
        if self.verdicts is not None and verdict not in self.verdicts:
            raise ValueError(f"verdict {verdict!r} not allowed; expected one of {sorted(self.verdicts)}")
        return self._transition(item_id, ("new", "in_review"), "closed", "label", verdict, note)

    def _transition(self, item_id, allowed_from, new_status, action, verdict, note):
        now = _now()
        with self._transaction() as conn:
            row = conn.execute("SELECT status FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise KeyError(f"no review item with id {item_id}")
            if row["status"] not in allowed_from:
                raise ReviewStateError(
                    f"item {item_id} is {row['status']!r}; {action} needs one of {allowed_from}")
            # The item keeps the verdict's note; a note given on start lives in history only.
            conn.execute(
                "UPDATE items SET status = ?, verdict = ?, analyst_note = ?, updated_at = ? "
                "WHERE id = ?",
                (new_status, verdict, note if action == "label" else None, now, item_id))
            _log(conn, item_id, now, action, row["status"], new_status, verdict, note)
        return self.get(item_id)

    # ------------------------------------------------------------- reading ---

    def get(self, item_id: int) -> ReviewItem:
        row = self._conn.execute(f"{_SELECT_ITEMS} WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise KeyError(f"no review item with id {item_id}")
        return _to_item(row)

    def sightings(self, item_id: int) -> list:
        """Where the item's flow was deferred, oldest first: dicts with source_file, line, seen_at."""
        rows = self._conn.execute(
            "SELECT source_file, line, seen_at FROM sightings WHERE item_id = ? ORDER BY rowid",
            (item_id,)).fetchall()
        return [dict(r) for r in rows]

    def list(self, status=None, limit=100, offset=0, model_id=None) -> list:
        """Items in queue order (oldest first), optionally of one status and of the models whose id starts with
        ``model_id`` (one queue can hold the items of a model and of its retrained successors)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        prefix = None if model_id is None else str(model_id)
        rows = self._conn.execute(
            f"{_SELECT_ITEMS} WHERE (? IS NULL OR status = ?) AND (? IS NULL OR substr(model_id, 1, length(?)) = ?) "
            "ORDER BY id LIMIT ? OFFSET ?",
            (status, status, prefix, prefix, prefix, int(limit), int(offset))).fetchall()
        return [_to_item(r) for r in rows]

    def history(self, item_id: int) -> list:
        """The item's audit trail, oldest first, as dicts."""
        rows = self._conn.execute(
            "SELECT * FROM history WHERE item_id = ? ORDER BY id", (item_id,)).fetchall()
        return [dict(r) for r in rows]

    def counts(self) -> dict:
        """{status: number of items} for every status (zeros included)."""
        out = dict.fromkeys(STATUSES, 0)
        for row in self._conn.execute("SELECT status, count(*) AS n FROM items GROUP BY status"):
            out[row["status"]] = row["n"]
        return out

    def closed_verdicts(self) -> list:
        """Analyst-labelled flows for retraining: dicts with id, model_id,
        features, predicted_label and verdict, oldest first."""
        rows = self._conn.execute(
            "SELECT id, model_id, features, predicted_label, verdict FROM items "
            "WHERE status = 'closed' ORDER BY id").fetchall()
        return [{**dict(r), "features": json.loads(r["features"])} for r in rows]

    def export_jsonl(self, path_or_file) -> int:
        """Write every item, with its history and its sightings, as one JSON object per line.

        A path is written atomically; a text file object is written to as is.
        Returns the number of items written.
        """
        with self._transaction("DEFERRED") as conn:  # one consistent snapshot
            items = [_to_item(r) for r in conn.execute(f"{_SELECT_ITEMS} ORDER BY id")]
            history, seen = {}, {}
            for r in conn.execute("SELECT * FROM history ORDER BY id"):
                history.setdefault(r["item_id"], []).append(dict(r))
            for r in conn.execute("SELECT * FROM sightings ORDER BY rowid"):
                seen.setdefault(r["item_id"], []).append({k: r[k] for k in ("source_file", "line", "seen_at")})
        text = "".join(json.dumps({**item.to_dict(), "history": history.get(item.id, []),
                                   "sightings": seen.get(item.id, [])}, sort_keys=True) + "\n" for item in items)
        if hasattr(path_or_file, "write"):
            path_or_file.write(text)
        else:
            bn.atomic_write_bytes(path_or_file, text.encode("utf-8"))
        return len(items)


# ------------------------------------------------------------------ helpers ---

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _log(conn, item_id, now, action, old, new, verdict, note):
    conn.execute(
        "INSERT INTO history (item_id, timestamp, action, old_status, new_status, verdict, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", (item_id, now, action, old, new, verdict, note))


def _item_row(index, item) -> tuple:
    """Validate one item for add_many; returns the column values to insert."""
    def fail(msg):
        raise ValueError(f"review item {index}: {msg}")

    if not hasattr(item, "keys"):
        fail("must be a mapping")
    unknown = set(item.keys()) - _ITEM_KEYS
    if unknown:
        fail(f"unknown keys {sorted(unknown)}; allowed: {sorted(_ITEM_KEYS)}")
    model_id, features = item.get("model_id"), item.get("features")
    if not isinstance(model_id, str) or not model_id:
        fail("model_id must be a non-empty string")
    try:
        key = flow_key(model_id, features)
        features_json = json.dumps(features, allow_nan=False)
    except (TypeError, ValueError) as exc:
        fail(f"features must be JSON-serialisable without NaN/Inf ({exc})")
    confidence = item.get("confidence")
    if confidence is not None:
        confidence = float(confidence)
        if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
            fail(f"confidence must be within [0, 1], got {confidence!r}")
    reasons = item.get("reasons") or []
    reasons = [reasons] if isinstance(reasons, str) else list(reasons)
    if not all(isinstance(r, str) for r in reasons):
        fail("reasons must be strings")
    for name in ("source_file", "predicted_label"):
        if item.get(name) is not None and not isinstance(item[name], str):
            fail(f"{name} must be a string or None")
    line = item.get("line")
    return (key, model_id, item.get("source_file"), None if line is None else int(line),
            item.get("predicted_label"), confidence, json.dumps(reasons), features_json)


def _to_item(row) -> ReviewItem:
    data = dict(row)
    data["reasons"] = json.loads(data["reasons"])
    data["features"] = json.loads(data["features"])
    return ReviewItem(**data)
