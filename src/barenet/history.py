"""History: what ``fit`` returns, one record (a dict) per epoch, Keras-style access by key."""
from __future__ import annotations

import json
import math


class History:
    """``history["val_loss"]`` is a list over epochs; ``history.records`` the per-epoch dicts.

    Every record has ``epoch``, ``loss``, ``lr`` and ``time`` (seconds), plus the metrics (``accuracy``,
    ...) and, with validation data, ``val_loss`` and ``val_<metric>``.
    """

    def __init__(self, records=None, *, stop_reason: str | None = None):
        self.records: list[dict] = list(records or [])
        self.stop_reason = stop_reason  # "completed", "early_stopping", "interrupted", "non_finite", ...

    def append(self, record: dict) -> None:
        self.records.append(dict(record))

    def extend(self, other: "History") -> None:
        self.records.extend(dict(r) for r in other.records)
        self.stop_reason = other.stop_reason

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def __getitem__(self, key: str) -> list:
        if key not in self.keys():
            raise KeyError(f"history has no {key!r}; keys are {self.keys()}")
        return [r.get(key) for r in self.records]

    def __contains__(self, key):
        return key in self.keys()

    def __len__(self):
        return len(self.records)

    def __eq__(self, other):
        return isinstance(other, History) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict:
        # JSON has no NaN/Inf: store them as strings so a record of a diverged run survives the round trip
        def clean(v):
            return repr(v) if isinstance(v, float) and not math.isfinite(v) else v

        return {"records": [{k: clean(v) for k, v in r.items()} for r in self.records], "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        def restore(v):
            return float(v) if v in ("nan", "inf", "-inf") else v

        return cls([{k: restore(v) for k, v in r.items()} for r in data.get("records", [])],
                   stop_reason=data.get("stop_reason"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "History":
        return cls.from_dict(json.loads(text))

    def table(self, keys=None, *, digits: int = 4) -> str:
        """The records as an aligned text table (what the examples print)."""
        keys = keys or [k for k in self.keys()]
        rows = [keys] + [[_fmt(r.get(k), digits) for k in keys] for r in self.records]
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(keys))]
        return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(row, widths)) for row in rows)

    def __repr__(self):
        return f"History({len(self.records)} epochs, keys={self.keys()}, stop_reason={self.stop_reason!r})"


def _fmt(v, digits):
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
    return "" if v is None else str(v)
