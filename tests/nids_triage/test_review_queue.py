"""ReviewQueue: idempotent adds, lifecycle, append-only history, crash durability."""

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import nids_triage
from nids_triage.review_queue import ReviewQueue, ReviewStateError


def item(i, model="model-a", **extra):
    return {"model_id": model, "features": {"src_bytes": str(i), "service": "http"},
            "source_file": "flows.csv", "line": i + 1, "predicted_label": "attack",
            "confidence": 0.55, "reasons": ["low_confidence"], **extra}


@pytest.fixture
def queue(tmp_path):
    with ReviewQueue(tmp_path / "queue.db", verdicts=("normal", "attack")) as q:
        yield q


def test_add_is_idempotent(queue):
    assert queue.add_many([item(0), item(1), item(1)]) == 2
    assert queue.add_many([item(0), item(1), item(2)]) == 1  # same file scored twice
    assert queue.add_many([item(0, model="model-b")]) == 1  # another model: another item
    assert queue.counts() == {"new": 4, "in_review": 0, "closed": 0}
    first = queue.get(1)
    assert first.features == {"src_bytes": "0", "service": "http"} and first.reasons == ["low_confidence"]
    assert first.status == "new" and first.created_at.endswith("+00:00")


def test_list_filters_by_model_id_prefix(queue):
    queue.add_many([item(0, model="a1b2c3d4e5f60718"), item(1, model="a1b2ffff00001111"), item(2, model="9f9f")])
    assert [it.id for it in queue.list(model_id="a1b2")] == [1, 2]
    assert [it.id for it in queue.list(model_id="a1b2c3")] == [1]
    assert [it.id for it in queue.list(model_id="9f9f", status="new")] == [3]
    assert queue.list(model_id="%") == [] and queue.list(model_id="a1b2", status="closed") == []  # no LIKE wildcards
    assert len(queue.list()) == 3


def test_invalid_batch_adds_nothing(queue):
    with pytest.raises(ValueError, match="review item 1: features"):
        queue.add_many([item(0), {"model_id": "m", "features": [float("nan")]}])
    with pytest.raises(ValueError, match="confidence"):
        queue.add_many([item(0, confidence=1.5)])
    with pytest.raises(ValueError, match="unknown keys"):
        queue.add_many([item(0, verdikt="x")])
    assert queue.counts()["new"] == 0


def test_lifecycle_and_history(queue):
    queue.add_many([item(0), item(1)])
    assert queue.start(1, note="mine").status == "in_review"
    with pytest.raises(ReviewStateError):
        queue.start(1)
    with pytest.raises(ValueError, match="not allowed"):
        queue.label(1, "maybe")
    closed = queue.label(1, "normal", note="backup job")
    assert (closed.status, closed.verdict, closed.analyst_note) == ("closed", "normal", "backup job")
    with pytest.raises(ReviewStateError):
        queue.label(1, "attack")
    queue.label(2, "attack")  # straight from new
    with pytest.raises(KeyError):
        queue.get(99)
    assert [h["action"] for h in queue.history(1)] == ["added", "start", "label"]
    assert [(h["old_status"], h["new_status"]) for h in queue.history(1)] == [
        (None, "new"), ("new", "in_review"), ("in_review", "closed")]
    assert [i.id for i in queue.list(status="closed")] == [1, 2]
    assert queue.list(status="new") == [] and len(queue.list(limit=1)) == 1
    assert queue.closed_verdicts() == [
        {"id": 1, "model_id": "model-a", "features": item(0)["features"],
         "predicted_label": "attack", "verdict": "normal"},
        {"id": 2, "model_id": "model-a", "features": item(1)["features"],
         "predicted_label": "attack", "verdict": "attack"}]


def test_history_and_items_cannot_be_rewritten(queue):
    queue.add_many([item(0)])
    queue.label(1, "attack")
    conn = sqlite3.connect(queue.path)
    for sql in ("UPDATE history SET verdict = 'normal'", "DELETE FROM history",
                "DELETE FROM items"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only|cannot be deleted"):
            conn.execute(sql)
    conn.close()
    assert len(queue.history(1)) == 2


def test_durability_settings(queue):
    assert queue._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert queue._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_export_jsonl(queue, tmp_path):
    queue.add_many([item(0), item(1)])
    queue.label(2, "normal")
    out = tmp_path / "export" / "queue.jsonl"
    assert queue.export_jsonl(out) == 2
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [1, 2] and records[1]["verdict"] == "normal"
    assert [h["action"] for h in records[1]["history"]] == ["added", "label"]
    assert os.listdir(out.parent) == ["queue.jsonl"]
    buffer = io.StringIO()
    assert queue.export_jsonl(buffer) == 2 and buffer.getvalue() == out.read_text()


CHILD = """
import sys
from nids_triage.review_queue import ReviewQueue
queue = ReviewQueue(sys.argv[1])
i = 0
while True:
    queue.add_many([{"model_id": "m", "features": {"i": i}}])
    print(i, flush=True)  # acknowledged only after the commit returned
    i += 1
"""


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_acknowledged_adds_survive_kill_9(tmp_path):
    db = tmp_path / "queue.db"
    src = str(Path(nids_triage.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    watchdog = threading.Timer(30, proc.kill)  # never hang the test run
    watchdog.start()
    acked = []
    try:
        for line in proc.stdout:
            acked.append(int(line))
            if len(acked) == 40:
                os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the child is already adding the next one
                break
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
    assert len(acked) == 40, proc.stderr.read()
    with ReviewQueue(db) as queue:
        assert queue._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {it.features["i"] for it in queue.list(limit=10_000)}
    assert set(acked) <= stored


def test_identical_flows_share_an_item_that_counts_where_it_was_seen(queue):
    assert queue.add_many([item(0), item(0, line=7)]) == 1  # the same flow on two lines of one run
    assert queue.add_many([item(0), item(0, line=7)]) == 0  # the same file scored again: nothing new
    assert queue.get(1).n_sightings == 2
    assert queue.add_many([item(0, source_file="next-hour.csv", line=3)]) == 0  # it recurs in another file
    assert queue.get(1).n_sightings == 3 and queue.list()[0].n_sightings == 3
    assert [(s["source_file"], s["line"]) for s in queue.sightings(1)] == [
        ("flows.csv", 1), ("flows.csv", 7), ("next-hour.csv", 3)]
    queue.add_many([{"model_id": "m", "features": [1]}, {"model_id": "m", "features": [1]}])  # no place given
    assert queue.get(2).n_sightings == 1
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        queue._conn.execute("UPDATE sightings SET line = 99")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        queue._conn.execute("DELETE FROM sightings")
    buffer = io.StringIO()
    queue.export_jsonl(buffer)
    first = json.loads(buffer.getvalue().splitlines()[0])
    assert first["n_sightings"] == 3 and [s["line"] for s in first["sightings"]] == [1, 7, 3]


def _sql(db, script):
    """Run ``script`` on the SQLite file ``db`` directly, as another program would; return how many schema
    objects (tables, indexes, triggers) it then holds."""
    conn = sqlite3.connect(db)
    try:
        conn.executescript(script)
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    finally:
        conn.close()


def test_a_queue_from_before_sightings_is_upgraded_in_place(tmp_path):
    db = tmp_path / "old.db"
    with ReviewQueue(db) as q:
        q.add_many([item(0), item(1)])
        q.label(1, "normal")
    # make it what an older nids-triage wrote: no sightings table, version 0
    _sql(db, "DROP TRIGGER sightings_no_delete; DROP TABLE sightings; PRAGMA user_version = 0;")
    with ReviewQueue(db) as q:
        assert [it.n_sightings for it in q.list()] == [1, 1]
        assert q.sightings(2) == [{"source_file": "flows.csv", "line": 2, "seen_at": q.get(2).created_at}]
        assert q.get(1).verdict == "normal"  # nothing else touched
        assert q._conn.execute("PRAGMA user_version").fetchone()[0] == 1
    _sql(db, "PRAGMA user_version = 99;")
    with pytest.raises(sqlite3.DatabaseError, match="version 99 is newer"):
        ReviewQueue(db)
    newer = tmp_path / "newer.db"
    _sql(newer, "PRAGMA user_version = 2;")
    with pytest.raises(sqlite3.DatabaseError, match="version 2 is newer"):
        ReviewQueue(newer)
    assert _sql(newer, "") == 0  # refused before anything (tables, triggers) was written into it
