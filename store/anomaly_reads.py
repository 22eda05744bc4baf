"""Read queries behind anomaly detection: hourly per-key series of calls, failed jobs and credits.

Grain (DESIGN.md section 2): calls are hourly only from the events coverage start (the events
cursor's `covered_since`, else the oldest stored event), and hours inside a recorded events
coverage gap are NULL (unknown, not zero); before that the store only holds daily calls
(`daily_calls`).  Failed jobs and credits come from the jobs list by `created_at` hour over the
full history the store holds. Smoke checks' jobs, and the calls and charges tied to them, are left out of every
series: they are tests the product made, not the key's traffic, and must not move its baseline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from store.connection import Source, reading
from store.results import arrow_frame, first_row
from store.smoke_checks import SMOKE_JOB_IDS

METRICS = ("calls", "failed_jobs", "credits")

EVENTS_COVERAGE_SQL = """
    SELECT r.key_name,
           coalesce(TRY_CAST(json_extract_string(s.cursor, '$.covered_since') AS TIMESTAMP), e.first_event_at)
               AS covered_since
    FROM keys r
    LEFT JOIN sync_state s ON s.key_name = r.key_name AND s.endpoint = 'events'
    LEFT JOIN (SELECT key_name, min(occurred_at) AS first_event_at FROM usage_events GROUP BY key_name) e
           ON e.key_name = r.key_name
"""  # per key: when hourly calls begin (the events cursor's covered_since, else the oldest stored event)


def _df(db_path: Source, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    with reading(db_path) as con:
        return con.execute(sql, params or []).df()


def hourly_series(
    db_path: Source,
    until: datetime,
    since: datetime | None = None,
    keys: list[str] | None = None,
    ordered: bool = True,
) -> pd.DataFrame:
    """Long frame [key_name, hour, metric, value] for hours in [since, until).

    calls: one row for every hour from the key's `hourly_from` to `until` (0 when no events, NULL
    inside an events coverage gap); jobs, failed_jobs and credits: only hours that had jobs (the
    detector fills the other hours with 0 from the key's first job on).
    Rows come sorted by metric, key and hour; `ordered=False` skips that sort (most of the query's time
    for a whole fleet) for callers that pivot anyway, such as the detector.
    """
    key_where, params_keys = "", []
    if keys:
        key_where = " AND list_contains(?, key_name)"
        params_keys = [list(keys)]
    lo = since if since is not None else datetime(1970, 1, 1)
    sql = f"""
        WITH cov AS (
            SELECT key_name, greatest(CASE WHEN covered_since = date_trunc('hour', covered_since) THEN covered_since
                         ELSE date_trunc('hour', covered_since) + INTERVAL 1 HOUR END, date_trunc('hour', ?::TIMESTAMP))
                       AS hourly_from
            FROM ({EVENTS_COVERAGE_SQL}) WHERE covered_since IS NOT NULL{key_where}
        ), grid AS (
            SELECT c.key_name, unnest(generate_series(c.hourly_from, ?::TIMESTAMP - INTERVAL 1 HOUR, INTERVAL 1 HOUR))
                   AS hour
            FROM cov c WHERE c.hourly_from < ?::TIMESTAMP
        ), ev AS (
            SELECT key_name, date_trunc('hour', occurred_at) AS hour, count(*) AS n
            FROM usage_events WHERE occurred_at >= ?::TIMESTAMP AND occurred_at < ?::TIMESTAMP{key_where}
{{smoke_events}}
            GROUP BY ALL
        ), gap AS (
            SELECT DISTINCT g.key_name, g.hour FROM grid g
            JOIN coverage_gaps c ON c.key_name = g.key_name AND c.endpoint = 'events'
             AND c.gap_start < g.hour + INTERVAL 1 HOUR AND c.gap_end > g.hour
        ), calls AS (
            SELECT g.key_name, g.hour, 'calls' AS metric,
                   CASE WHEN gap.hour IS NOT NULL THEN NULL ELSE coalesce(ev.n, 0) END::DOUBLE AS value
            FROM grid g
            LEFT JOIN ev ON ev.key_name = g.key_name AND ev.hour = g.hour
            LEFT JOIN gap ON gap.key_name = g.key_name AND gap.hour = g.hour
        ), jb AS (
            SELECT key_name, date_trunc('hour', created_at) AS hour,
                   count(*)::DOUBLE AS jobs, count(*) FILTER (WHERE status = 'failed')::DOUBLE AS failed_jobs,
                   -- in one order whatever else the scan reads (a key group, the fleet): the same last digit
                   coalesce(sum(credits_charged ORDER BY job_id), 0)::DOUBLE AS credits
            FROM jobs WHERE created_at >= ?::TIMESTAMP AND created_at < ?::TIMESTAMP
              AND key_name IN (SELECT key_name FROM keys){key_where}
{{smoke_jobs}}
            GROUP BY ALL
        )
        SELECT key_name, hour, metric, value FROM calls
        UNION ALL
        SELECT key_name, hour, 'failed_jobs', failed_jobs FROM jb
        UNION ALL
        SELECT key_name, hour, 'credits', credits FROM jb
        UNION ALL
        SELECT key_name, hour, 'jobs', jobs FROM jb
        {"ORDER BY metric, key_name, hour" if ordered else ""}
    """
    params = [lo, *params_keys, until, until, lo, until, *params_keys, lo, until, *params_keys]
    with reading(db_path) as con:  # millions of rows for a whole fleet: through Arrow
        # The exclusion costs ~0.1-0.2 s on 5.7 M events even when empty: only when there is something to exclude.
        smoke = _has_smoke_jobs(con)
        sql = sql.replace("{smoke_events}", _SMOKE_EVENTS if smoke else "").replace(
            "{smoke_jobs}", _SMOKE_JOBS if smoke else ""
        )
        return arrow_frame(con, sql, params)


_SMOKE_EVENTS = f"              AND (job_id IS NULL OR job_id NOT IN ({SMOKE_JOB_IDS}))"
_SMOKE_JOBS = f"              AND job_id NOT IN ({SMOKE_JOB_IDS})"


def _has_smoke_jobs(con: Any) -> bool:
    row = first_row(con.execute(f"SELECT count(*) FROM ({SMOKE_JOB_IDS})"))
    return bool(row and row[0])


def daily_calls(db_path: Source, until: datetime | None = None, keys: list[str] | None = None) -> pd.DataFrame:
    """Daily grain: [key_name, day, value, hourly_from] from the usage summary, days before `until`.

    `hourly_from` is the key's first whole hour of hourly calls (events coverage; NaT when events were
    never collected): a day that does not lie wholly after it has calls only at daily grain.
    """
    key_where, params = "", []
    if keys:
        key_where = " AND list_contains(?, u.key_name)"
        params = [list(keys)]
    until_where = ""
    if until is not None:
        until_where = " AND u.day < ?::TIMESTAMP"
        params = [*params, until]
    return _df(
        db_path,
        f"""
        SELECT u.key_name, u.day::TIMESTAMP AS day, greatest(u.calls - coalesce(s.n, 0), 0)::DOUBLE AS value,
               CASE WHEN c.covered_since = date_trunc('hour', c.covered_since) THEN c.covered_since
                    ELSE date_trunc('hour', c.covered_since) + INTERVAL 1 HOUR END AS hourly_from
        FROM key_daily_usage u LEFT JOIN ({EVENTS_COVERAGE_SQL}) c USING (key_name)
        LEFT JOIN (SELECT key_name, occurred_at::DATE AS day, count(*) AS n FROM usage_events
                   WHERE job_id IN ({SMOKE_JOB_IDS}) GROUP BY ALL) s ON s.key_name = u.key_name AND s.day = u.day
        WHERE TRUE{key_where}{until_where}
        ORDER BY u.key_name, u.day
        """,
        params,
    )


def key_recent(db_path: Source, key: str, metric: str, grain: str, since: datetime, until: datetime) -> pd.DataFrame:
    """[period, value, known] of one key's metric in [since, until), for a small chart beside an incident; one key's
    rows only (a fleet's coverage is not computed for it), smoke checks left out as the detector leaves them out.
    `known` is False for an hour of calls before the key's event polling began or inside an events coverage gap
    (unknown, not zero)."""
    with reading(db_path) as con:
        smoke = _has_smoke_jobs(con)
        smoke_events, smoke_jobs = (_SMOKE_EVENTS, _SMOKE_JOBS) if smoke else ("", "")
        if grain == "day":
            return con.execute(
                f"""
                SELECT u.day::TIMESTAMP AS period, greatest(u.calls - coalesce(s.n, 0), 0)::DOUBLE AS value,
                       TRUE AS known
                FROM key_daily_usage u
                LEFT JOIN (SELECT occurred_at::DATE AS day, count(*) AS n FROM usage_events
                           WHERE key_name = ? AND {"job_id IN (" + SMOKE_JOB_IDS + ")" if smoke else "FALSE"}
                           GROUP BY ALL) s ON s.day = u.day
                WHERE u.key_name = ? AND u.day >= ?::DATE AND u.day < ?::DATE ORDER BY u.day
                """,
                [key, key, since, until],
            ).df()
        hours = (
            "SELECT unnest(generate_series(date_trunc('hour', ?::TIMESTAMP), ?::TIMESTAMP - INTERVAL 1 HOUR, "
            "INTERVAL 1 HOUR)) AS period"
        )
        if metric == "calls":
            return con.execute(
                f"""
                WITH hours AS ({hours}),
                cov AS (
                    SELECT coalesce(
                        (SELECT TRY_CAST(json_extract_string(cursor, '$.covered_since') AS TIMESTAMP)
                         FROM sync_state WHERE key_name = ? AND endpoint = 'events'),
                        (SELECT min(occurred_at) FROM usage_events WHERE key_name = ?)) AS since
                ),
                ev AS (
                    SELECT date_trunc('hour', occurred_at) AS period, count(*) AS n FROM usage_events
                    WHERE key_name = ? AND occurred_at >= ? AND occurred_at < ?{smoke_events} GROUP BY 1
                )
                SELECT h.period, coalesce(ev.n, 0)::DOUBLE AS value,
                       (cov.since IS NOT NULL AND h.period >= date_trunc('hour', cov.since + INTERVAL 1 HOUR
                                                                        - INTERVAL 1 MICROSECOND)
                        AND NOT EXISTS (SELECT 1 FROM coverage_gaps g WHERE g.key_name = ? AND g.endpoint = 'events'
                                        AND g.gap_start < h.period + INTERVAL 1 HOUR AND g.gap_end > h.period)) AS known
                FROM hours h CROSS JOIN cov LEFT JOIN ev USING (period)
                ORDER BY h.period
                """,
                [since, until, key, key, key, since, until, key],
            ).df()
        value = "count(*) FILTER (WHERE status = 'failed')" if metric == "failed_jobs" else "sum(credits_charged)"
        return con.execute(
            f"""
            WITH hours AS ({hours}),
            jb AS (
                SELECT date_trunc('hour', created_at) AS period, {value} AS v FROM jobs
                WHERE key_name = ? AND created_at >= ? AND created_at < ?{smoke_jobs} GROUP BY 1
            )
            SELECT h.period, coalesce(jb.v, 0)::DOUBLE AS value, TRUE AS known
            FROM hours h LEFT JOIN jb USING (period) ORDER BY h.period
            """,
            [since, until, key, since, until],
        ).df()
