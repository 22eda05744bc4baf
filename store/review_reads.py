"""Read queries behind the weekly review: one short read connection for a week and the week before it."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from store.connection import Source, reading


def review_frames(db_path: Source, start: datetime, end: datetime, prev_start: datetime) -> dict[str, pd.DataFrame]:
    """Frames for [prev_start, end): usage per key/day, credits per model/day, keys, runs, failures and gaps; and
    when the first collection ever ran ("first_run_at") and the first day any daily totals were collected for
    ("first_day": before it nothing is known, so nothing compares).

    `start` splits the current week from the previous one; callers split the frames by day.
    """
    with reading(db_path) as con:
        usage = con.execute(
            """
            SELECT u.key_name, k.environment, u.day, u.calls, u.jobs, u.failed, u.credits
            FROM key_daily_usage u JOIN keys k USING (key_name)
            WHERE u.day >= ?::DATE AND u.day < ?::DATE
            ORDER BY u.day, u.key_name
            """,
            [prev_start, end],
        ).df()
        models = con.execute(
            """
            SELECT CAST(j.created_at AS DATE) AS day, coalesce(lower(j.model), 'unknown') AS model,
                   count(*) AS jobs, coalesce(sum(j.credits_charged), 0) AS credits
            FROM jobs j
            WHERE j.created_at >= ? AND j.created_at < ?
            GROUP BY ALL ORDER BY day, model
            """,
            [prev_start, end],
        ).df()
        keys = con.execute(
            "SELECT key_name, environment, owner, created_at, rotated_at FROM keys ORDER BY key_name"
        ).df()
        runs = con.execute(
            """
            SELECT run_id, started_at, finished_at, status, mode, keys_total, keys_ok, message
            FROM collector_runs WHERE started_at >= ? AND started_at < ? ORDER BY run_id
            """,
            [start, end],
        ).df()
        failed = con.execute(
            """
            SELECT i.run_id, i.key_name, i.endpoint, i.status, i.error_code, i.message, i.finished_at
            FROM collector_run_items i JOIN collector_runs r USING (run_id)
            WHERE i.status NOT IN ('ok', 'disabled') AND r.started_at >= ? AND r.started_at < ?
            ORDER BY i.finished_at, i.key_name, i.endpoint
            """,
            [start, end],
        ).df()
        gaps = con.execute(
            """
            SELECT key_name, endpoint, gap_start, gap_end, detected_at FROM coverage_gaps
            WHERE gap_start < ? AND gap_end >= ? ORDER BY gap_start, key_name, endpoint
            """,
            [end, start],
        ).df()
        first = con.execute("SELECT min(started_at) FROM collector_runs").fetchone()
        first_day = con.execute("SELECT min(day) FROM key_daily_usage").fetchone()
    return {
        "usage": usage,
        "models": models,
        "keys": keys,
        "runs": runs,
        "failed_items": failed,
        "gaps": gaps,
        "first_run_at": first[0] if first else None,
        "first_day": first_day[0] if first_day else None,
    }
