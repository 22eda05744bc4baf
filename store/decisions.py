"""Review decisions in the dashboard's own DuckDB file (never the collector's): short transactions, durable."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from store.connection import StoreError, _is_lock_error

DECISIONS = ("keep", "rotate", "disable", "delete", "investigate")
STATE_ENV = "RBV_STATE_DB"
_LOCK_SECONDS = 10.0
_lock = threading.RLock()
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


def state_path(collector_db: str | Path | None) -> Path:
    """RBV_STATE_DB, or `<collector db>.dashboard.duckdb` beside the collector's database."""
    override = os.environ.get(STATE_ENV)
    if override:
        return Path(override)
    if collector_db is None:
        raise StoreError("no state database: set RBV_STATE_DB or give the collector database path")
    base = Path(collector_db)
    return base.with_name(base.name + ".dashboard.duckdb")


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + _LOCK_SECONDS
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            # Only a lock is worth waiting for; a file that is not a database fails at once.
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                raise StoreError(f"cannot open the dashboard state {path}: {exc}") from exc
        time.sleep(0.05)


def record(path: str | Path, item: Decision, now: datetime | None = None) -> int:
    """Store one decision in its own short transaction; returns its id."""
    if item.decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {item.decision!r}")
    who = item.decided_by.strip()
    if not who:
        raise ValueError("say who decided")
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        con = _connect(target, read_only=False)
        try:
            con.execute(_SCHEMA)
            con.execute("BEGIN TRANSACTION")
            rows = con.execute(
                """
                INSERT INTO review_decisions (key_name, decision, decided_by, note, decided_at, week)
                VALUES (?, ?, ?, ?, ?, ?) RETURNING decision_id
                """,
                [item.key_name, item.decision, who, item.note.strip(), moment, item.week],
            ).fetchall()
            con.execute("COMMIT")
        finally:
            con.close()
    return int(rows[0][0])


def all_decisions(path: str | Path) -> pd.DataFrame:
    """Every decision, oldest first (an empty frame when nothing was ever decided)."""
    target = Path(path)
    if not target.exists():
        return pd.DataFrame(columns=COLUMNS)
    with _lock:
        con = _connect(target, read_only=True)
        try:
            known = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'review_decisions'").fetchall()
            if not known[0][0]:
                return pd.DataFrame(columns=COLUMNS)
            return con.execute(
                f"SELECT {', '.join(COLUMNS)} FROM review_decisions ORDER BY decided_at, decision_id"
            ).df()
        finally:
            con.close()


def last_decisions(path: str | Path, until: datetime | None = None) -> pd.DataFrame:
    """The newest decision per key (decided before `until` when given)."""
    frame = all_decisions(path)
    if until is not None and not frame.empty:
        frame = frame[pd.to_datetime(frame["decided_at"]) < pd.Timestamp(until)]
    if frame.empty:
        return frame.reset_index(drop=True)
    return frame.groupby("key_name", as_index=False).tail(1).sort_values("key_name").reset_index(drop=True)
