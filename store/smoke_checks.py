"""Smoke-check results: appended once per check path, read per key, for the daily credit cap, and as the set of
job ids whose credits and failures are tests rather than traffic."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from store.connection import read_connection, write_transaction
from store.results import first_row

COLUMNS = (
    "run_id", "trigger", "key_name", "fingerprint", "path", "started_at", "finished_at", "ok", "job_id",
    "request_id", "status", "error_code", "credits_charged", "credits_expected", "output_ok", "listed", "seconds",
    "model", "video_url", "detail",
)  # fmt: skip
HISTORY = (
    "checked_at", "path", "ok", "status", "error_code", "job_id", "request_id", "credits_charged",
    "credits_expected", "output_ok", "listed", "seconds", "model", "trigger", "detail",
)  # fmt: skip
# The job ids of smoke checks, for reads that keep them out of traffic (anomaly baselines, budgets).
SMOKE_JOB_IDS = "SELECT job_id FROM smoke_check_log WHERE job_id IS NOT NULL"


def record(db_path: str | Path, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Append checks (one transaction); returns their ids."""
    if not rows:
        return []
    ids = []
    placeholders = ", ".join("?" for _ in COLUMNS)
    with write_transaction(db_path) as con:
        for row in rows:
            found = con.execute(
                f"INSERT INTO smoke_check_log (check_id, {', '.join(COLUMNS)}) "
                f"VALUES (nextval('smoke_check_seq'), {placeholders}) RETURNING check_id",
                [row.get(name) for name in COLUMNS],
            ).fetchall()
            ids.append(int(found[0][0]))
    return ids


def history(db_path: str | Path, key_name: str | None = None, limit: int = 100) -> pd.DataFrame:
    """Checks newest first (one key's, or every key's with its name), from the public view."""
    where, params = ("WHERE key_name = ?", [key_name]) if key_name else ("", [])
    columns = HISTORY if key_name else ("key_name", *HISTORY)
    with read_connection(db_path) as con:
        return con.execute(
            f"SELECT {', '.join(columns)} FROM smoke_checks {where} ORDER BY checked_at DESC, check_id DESC LIMIT ?",
            [*params, int(limit)],
        ).df()


def credits_since(db_path: str | Path, since: datetime) -> float:
    """Credits smoke checks were charged since `since` (the daily cap); 0 before the first check."""
    if not Path(db_path).exists():
        return 0.0
    with read_connection(db_path) as con:
        row = first_row(
            con.execute("SELECT coalesce(sum(credits_charged), 0) FROM smoke_check_log WHERE started_at >= ?", [since])
        )
    return float(row[0]) if row else 0.0


def last_cost(db_path: str | Path, video_url: str, model: str) -> float | None:
    """What the newest charged success path with this clip and model cost."""
    if not Path(db_path).exists():
        return None
    with read_connection(db_path) as con:
        row = first_row(
            con.execute(
                """
                SELECT credits_charged FROM smoke_check_log
                WHERE path = 'success' AND video_url = ? AND model = ? AND credits_charged > 0
                ORDER BY started_at DESC LIMIT 1
                """,
                [video_url, model],
            )
        )
    return float(row[0]) if row else None


def listed_jobs(db_path: str | Path, job_ids: Sequence[str]) -> set[str]:
    """Which of these job ids the collected jobs list holds."""
    if not job_ids:
        return set()
    with read_connection(db_path) as con:
        rows = con.execute("SELECT job_id FROM jobs WHERE list_contains(?, job_id)", [list(job_ids)]).fetchall()
    return {str(r[0]) for r in rows}


def smoke_job_ids(db_path: str | Path) -> set[str]:
    """Every job a smoke check created (their credits are tests, not traffic)."""
    with read_connection(db_path) as con:
        return {str(r[0]) for r in con.execute(SMOKE_JOB_IDS).fetchall()}
