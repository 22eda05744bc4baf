"""Review decisions in the dashboard's own DuckDB file (never the collector's): short transactions, durable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from store.state_file import state_read, state_write

DECISIONS = ("keep", "rotate", "disable", "delete", "investigate")
_LOCK_SECONDS = 10.0
_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS review_decision_seq START 1;
CREATE TABLE IF NOT EXISTS review_decisions (
    decision_id BIGINT PRIMARY KEY DEFAULT nextval('review_decision_seq'),
    key_name VARCHAR NOT NULL,
    decision VARCHAR NOT NULL,
    decided_by VARCHAR NOT NULL,
    note VARCHAR NOT NULL DEFAULT '',
    decided_at TIMESTAMP NOT NULL,
    week VARCHAR NOT NULL
);
"""
COLUMNS = ["decision_id", "key_name", "decision", "decided_by", "note", "decided_at", "week"]


@dataclass(frozen=True)
class Decision:
    key_name: str
    decision: str
    decided_by: str
    note: str
    week: str


def record(path: str | Path, item: Decision, now: datetime | None = None) -> int:
    """Store one decision in its own short transaction; returns its id."""
    if item.decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {item.decision!r}")
    who = item.decided_by.strip()
    if not who:
        raise ValueError("say who decided")
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    with state_write(path, _SCHEMA, deadline_s=_LOCK_SECONDS) as con:
        rows = con.execute(
            """
            INSERT INTO review_decisions (key_name, decision, decided_by, note, decided_at, week)
            VALUES (?, ?, ?, ?, ?, ?) RETURNING decision_id
            """,
            [item.key_name, item.decision, who, item.note.strip(), moment, item.week],
        ).fetchall()
    return int(rows[0][0])


def all_decisions(path: str | Path) -> pd.DataFrame:
    """Every decision, oldest first (an empty frame when nothing was ever decided)."""
    with state_read(path, "review_decisions", deadline_s=_LOCK_SECONDS) as con:
        if con is None:
            return pd.DataFrame(columns=COLUMNS)
        return con.execute(f"SELECT {', '.join(COLUMNS)} FROM review_decisions ORDER BY decided_at, decision_id").df()


def last_decisions(path: str | Path, until: datetime | None = None) -> pd.DataFrame:
    """The newest decision per key (decided before `until` when given)."""
    frame = all_decisions(path)
    if until is not None and not frame.empty:
        frame = frame[pd.to_datetime(frame["decided_at"]) < pd.Timestamp(until)]
    if frame.empty:
        return frame.reset_index(drop=True)
    return frame.groupby("key_name", as_index=False).tail(1).sort_values("key_name").reset_index(drop=True)
