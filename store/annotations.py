"""Annotations (deploys, rotations, decisions, notes) entered by people, kept in the dashboard's own state file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from store.state_file import state_read, state_write

COLUMNS = ["annotation_id", "key_name", "marked_at", "kind", "text", "created_by", "created_at"]
_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS annotation_seq START 1;
CREATE TABLE IF NOT EXISTS annotations (
    annotation_id BIGINT PRIMARY KEY DEFAULT nextval('annotation_seq'),
    key_name      VARCHAR,
    marked_at     TIMESTAMP NOT NULL,
    kind          VARCHAR NOT NULL,
    text          VARCHAR NOT NULL,
    created_by    VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
"""


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def add(path: str | Path, key_name: str | None, at: datetime, kind: str, text: str, who: str, now: datetime) -> int:
    """Store one annotation (key_name None: it concerns every key); returns its id."""
    with state_write(path, _SCHEMA) as con:
        rows = con.execute(
            "INSERT INTO annotations (key_name, marked_at, kind, text, created_by, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING annotation_id",
            [key_name, _naive(at), kind, text, who, _naive(now)],
        ).fetchall()
    return int(rows[0][0])


def between(path: str | Path, start: datetime, end: datetime) -> pd.DataFrame:
    """Annotations whose instant lies in [start, end], oldest first (empty before the first one)."""
    with state_read(path, "annotations") as con:
        if con is None:
            return pd.DataFrame(columns=COLUMNS)
        return con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM annotations WHERE marked_at BETWEEN ? AND ? "
            "ORDER BY marked_at, annotation_id",
            [_naive(start), _naive(end)],
        ).df()
