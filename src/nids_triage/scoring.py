"""Scoring a flow file: the scored CSV and the review-queue items of ``nids-triage score``.

Pure apart from reading the input file; the caller writes the CSV text (atomically) and adds the items
to a ReviewQueue. Every input row yields exactly one output row, in input order.

Scored CSV columns (docs/nids-triage.md, "score"):
    row, line, predicted_label, confidence, p_<class> (one per class), needs_review (1/0),
    reasons (";"-separated), risk, novelty, burst, flow_key (deferred rows only), error (bad rows only)
"""
from __future__ import annotations

import csv
import gzip
import io
import math
from pathlib import Path

import numpy as np

from .flows import is_header_row, read_flow_csv
from .review_queue import flow_key
from .schema import DIFFICULTY_COLUMN, FEATURE_COLUMNS, LABEL_COLUMN

RAW_FIELDS_KEY = "_fields"  # features of a row whose field count does not match the file's columns


def score_file(model, path, *, on_bad_row: str = "error", mc_samples: int = 0):
    """(table, scored, column names) for the flow CSV at ``path``; raises FlowFileError on a malformed
    file when ``on_bad_row="error"``."""
    table = read_flow_csv(path, on_bad_row=on_bad_row, keep_raw=True)
    scored = model.score(table, mc_samples=mc_samples)
    return table, scored, file_columns(path)


def file_columns(path) -> list:
    """Names of a flow file's fields by position: its header, or NSL-KDD order for headerless files."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        for fields in csv.reader(fh):
            if fields and (len(fields) > 1 or fields[0].strip()):
                break
        else:
            return list(FEATURE_COLUMNS)
    if is_header_row(fields):
        return [f.strip() for f in fields]
    extra = [LABEL_COLUMN, DIFFICULTY_COLUMN][: max(0, len(fields) - len(FEATURE_COLUMNS))]
    return list(FEATURE_COLUMNS) + extra


def raw_features(raw_row, columns) -> dict:
    """The flow's raw text fields keyed by feature name (labels left out: they are not the flow)."""
    if len(raw_row) != len(columns):
        return {RAW_FIELDS_KEY: list(raw_row)}
    wanted = set(FEATURE_COLUMNS)
    return {name: value for name, value in zip(columns, raw_row, strict=True) if name in wanted}


def review_items(model_id, table, scored, columns) -> list:
    """ReviewQueue items for the deferred flows (flow_key = model id + raw features)."""
    items, source = [], str(Path(table.source).resolve())
    for i in np.flatnonzero(scored.needs_review):
        conf = float(scored.confidence[i])
        items.append({"model_id": model_id, "features": raw_features(table.raw[i], columns),
                      "source_file": source, "line": int(table.line[i]),
                      "predicted_label": scored.labels[i] or None,
                      "confidence": conf if math.isfinite(conf) else None,
                      "reasons": list(scored.reasons[i])})
    return items


def scored_csv_text(model_id, table, scored, columns) -> str:
    """The scored CSV (header + one line per input row) as text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    classes = list(scored.classes)
    writer.writerow(["row", "line", "predicted_label", "confidence", *[f"p_{c}" for c in classes],
                     "needs_review", "reasons", "risk", "novelty", "burst", "flow_key", "error"])
    proba = np.asarray(scored.proba, dtype=np.float64)
    for i in range(len(scored)):
        valid = scored.labels[i] != ""
        key = flow_key(model_id, raw_features(table.raw[i], columns)) if scored.needs_review[i] else ""
        probs = [_fmt(p) for p in proba[i]] if valid else [""] * len(classes)
        writer.writerow([i + 1, int(table.line[i]), scored.labels[i], _fmt(scored.confidence[i]) if valid else "",
                         *probs, int(bool(scored.needs_review[i])), ";".join(scored.reasons[i]),
                         _fmt(scored.risk[i]) if valid else "", _fmt(scored.novelty[i]) if valid else "",
                         _fmt(scored.burst[i]) if valid and scored.burst is not None else "",
                         key, table.bad_message[i] or (_invalid_detail(table, i) if not valid else "")])
    return buf.getvalue()


def _invalid_detail(table, i) -> str:
    """Why a row that parsed is still invalid: its first NaN, infinite or negative value."""
    values = np.asarray(table.numeric[i], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if not bad.size:
        return ""
    column = table.numeric_columns[bad[0]]
    return (f"{table.source}: line {int(table.line[i])}, column {column!r}: value {values[bad[0]]!r} "
            "is NaN, infinite or negative")


def _fmt(x) -> str:
    x = float(x)
    return f"{x:.6g}" if math.isfinite(x) else ""
