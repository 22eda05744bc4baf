"""Read queries behind the Keys, Key detail and Traffic pages and the keys CLI (aggregation stays in DuckDB)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from store.anomaly_reads import EVENTS_COVERAGE_SQL
from store.connection import Source, reading
from store.results import arrow_frame

# 429 is its own class: the vendor asks for backoff on it, so it must not hide among the other 4xx.
_STATUS_CLASS = """CASE
    WHEN status_code = 429 THEN '429'
    WHEN status_code BETWEEN 200 AND 299 THEN '2xx'
    WHEN status_code BETWEEN 300 AND 399 THEN '3xx'
    WHEN status_code BETWEEN 400 AND 499 THEN '4xx'
    WHEN status_code >= 500 THEN '5xx'
    ELSE 'unknown' END"""
BREAKDOWNS = {
    "endpoint": "coalesce(method || ' ', '') || coalesce(endpoint, '?')",
    "status_class": _STATUS_CLASS,
    "model": "coalesce(model, '—')",
}

_INVENTORY_SQL = """
    SELECT k.key_name, k.environment, k.owner, k.owner_status, k.fingerprint, k.masked_key,
           k.created_at, k.rotated_at, l.last_used_at, j.last_job_at, u.last_call_day, u.first_call_day,
           a.created_at AS admin_created_at, a.enabled AS admin_enabled, a.last_used_at AS admin_last_used_at
    FROM keys k
    LEFT JOIN key_last_used l USING (key_name)
    LEFT JOIN (SELECT key_name, max(created_at) AS last_job_at FROM jobs GROUP BY key_name) j USING (key_name)
    LEFT JOIN (
        SELECT key_name, max(day) FILTER (WHERE calls > 0) AS last_call_day,
               min(day) FILTER (WHERE calls > 0) AS first_call_day
        FROM key_daily_usage GROUP BY key_name
    ) u USING (key_name)
    LEFT JOIN admin_keys a ON a.key_fingerprint = k.fingerprint{where}
    ORDER BY k.key_name
"""


def _df(db_path: Source, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    with reading(db_path) as con:
        return con.execute(sql, params or []).df()


def _key_filter(keys: list[str] | None, envs: list[str] | None, alias: str) -> tuple[str, list[Any]]:
    where, params = "", []
    if keys:
        where += f" AND list_contains(?, {alias}.key_name)"
        params.append(list(keys))
    if envs:
        where += " AND list_contains(?, k.environment)"
        params.append(list(envs))
    return where, params


def key_names(db_path: Source) -> list[str]:
    return _df(db_path, "SELECT key_name FROM keys ORDER BY key_name")["key_name"].tolist()


def key_inventory(db_path: Source, key_name: str | None = None) -> pd.DataFrame:
    """Every configured key (or only `key_name`) with identity and all last-use evidence (events/inventory,
    jobs, daily usage)."""
    if key_name is None:
        return _df(db_path, _INVENTORY_SQL.format(where=""))
    return _df(db_path, _INVENTORY_SQL.format(where=" WHERE k.key_name = ?"), [key_name])


def _only(keys: list[str] | None, column: str = "key_name", joiner: str = "AND") -> tuple[str, list[Any]]:
    """A filter to the key group `keys` (None: every key), and its parameter."""
    if keys is None:
        return "", []
    return f" {joiner} list_contains(?, {column})", [list(keys)]


def refresh_key_names(db_path: Source) -> list[str]:
    """Every key name a results refresh computes for, sorted: the configured keys, and any other key that jobs
    or events were stored for (a reconciliation judges those too)."""
    return _df(
        db_path,
        """
        SELECT key_name FROM keys
        UNION SELECT DISTINCT key_name FROM jobs
        UNION SELECT DISTINCT key_name FROM usage_events
        ORDER BY key_name
        """,
    )["key_name"].tolist()


def _hourly_sql(where: str) -> str:
    return f"""
        WITH ev AS (
            SELECT e.key_name, date_trunc('hour', e.occurred_at) AS hour, count(*) AS calls
            FROM usage_events e JOIN keys k USING (key_name)
            WHERE e.occurred_at >= ? AND e.occurred_at < ?{where.replace("{a}", "e")}
            GROUP BY ALL
        ), jb AS (
            SELECT j.key_name, date_trunc('hour', j.created_at) AS hour, count(*) AS jobs,
                   count(*) FILTER (WHERE j.status = 'failed') AS failed,
                   coalesce(sum(j.credits_charged), 0) AS credits
            FROM jobs j JOIN keys k USING (key_name)
            WHERE j.created_at >= ? AND j.created_at < ?{where.replace("{a}", "j")}
            GROUP BY ALL
        )
        SELECT key_name, k.environment, hour, coalesce(ev.calls, 0) AS calls, coalesce(jb.jobs, 0) AS jobs,
               coalesce(jb.failed, 0) AS failed, coalesce(jb.credits, 0) AS credits
        FROM ev FULL OUTER JOIN jb USING (key_name, hour) JOIN keys k USING (key_name)
        ORDER BY hour, key_name
    """


def hourly_activity(
    db_path: Source, start: datetime, end: datetime, keys: list[str] | None = None, envs: list[str] | None = None
) -> pd.DataFrame:
    """Per key and UTC hour in [start, end): calls seen in events, and jobs created / failed / credits charged."""
    with reading(db_path) as con:
        return _hourly(con, start, end, keys, envs)


def _hourly(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, keys: list[str] | None, envs: list[str] | None
) -> pd.DataFrame:
    where, params = _key_filter(keys, envs, "{a}")
    # A fleet's hours are hundreds of thousands of rows: through Arrow (no Python string per row).
    return arrow_frame(con, _hourly_sql(where), [start, end, *params, start, end, *params])


def daily_activity(
    db_path: Source, start: date, end: date, keys: list[str] | None = None, envs: list[str] | None = None
) -> pd.DataFrame:
    """Per key and UTC day in [start, end] (inclusive) from the usage summary: calls, jobs, failed, credits."""
    where, params = _key_filter(keys, envs, "u")
    return _df(
        db_path,
        f"""
        SELECT u.key_name, k.environment, u.day, u.calls, u.jobs, u.failed, u.credits
        FROM key_daily_usage u JOIN keys k USING (key_name)
        WHERE u.day BETWEEN ? AND ?{where}
        ORDER BY u.day, u.key_name
    """,
        [start, end, *params],
    )


def event_coverage(db_path: Source, since: datetime) -> pd.DataFrame:
    with reading(db_path) as con:
        return _coverage(con, since)


def _coverage(con: duckdb.DuckDBPyConnection, since: datetime, keys: list[str] | None = None) -> pd.DataFrame:
    where, params = _only(keys, "k.key_name", "WHERE")
    events, events_params = _only(keys, "key_name", "WHERE")
    return con.execute(
        f"""
        SELECT k.key_name, e.first_event_at, e.last_event_at, coalesce(e.events, 0) AS events,
               coalesce(g.gaps, 0) AS gaps
        FROM keys k
        LEFT JOIN (SELECT key_name, min(occurred_at) AS first_event_at, max(occurred_at) AS last_event_at,
                          count(*) AS events
                   FROM usage_events{events} GROUP BY key_name) e USING (key_name)
        LEFT JOIN (SELECT key_name, count(*) AS gaps FROM coverage_gaps WHERE gap_end >= ? GROUP BY key_name) g
               USING (key_name){where}
        ORDER BY k.key_name
    """,
        [*events_params, since, *params],
    ).df()


def hourly_calls_coverage(db_path: Source, keys: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """Where hourly calls are known, per key: "since" [key_name, covered_since] (when event polling began;
    NaT for a key never polled) and "gaps" [key_name, gap_start, gap_end] (the events window overflowed)."""
    with reading(db_path) as con:
        return _calls_coverage(con, keys)


def _calls_coverage(con: duckdb.DuckDBPyConnection, keys: list[str] | None) -> dict[str, pd.DataFrame]:
    where, params = ("WHERE list_contains(?, key_name)", [list(keys)]) if keys else ("", [])
    since = con.execute(
        f"SELECT key_name, covered_since FROM ({EVENTS_COVERAGE_SQL}) {where} ORDER BY key_name", params
    ).df()
    gaps = con.execute(
        f"SELECT key_name, gap_start, gap_end FROM coverage_gaps {where}{' AND' if where else ' WHERE'} "
        "endpoint = 'events' ORDER BY key_name, gap_start",
        params,
    ).df()
    return {"since": since, "gaps": gaps}


def admin_inventory(db_path: Source) -> pd.DataFrame:
    """The vendor's key inventory with the configured key each entry matches (by fingerprint), if any."""
    with reading(db_path) as con:
        return _admin(con)


def _admin(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute("""
        SELECT a.key_fingerprint, a.client_id, a.name, a.note, a.enabled, a.created_at, a.last_used_at,
               a.fetched_at, k.key_name AS configured_as
        FROM admin_keys a LEFT JOIN keys k ON k.fingerprint = a.key_fingerprint
        ORDER BY a.name
    """).df()


def governance_facts(
    db_path: Source,
    now: datetime,
    daily_days: int,
    hourly_days: int,
    spark_days: int = 0,
    keys: list[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Everything the key rules read, in one short connection (fields of analytics.keys.KeyFacts).

    With `spark_days`, also "activity": the Keys page's 7/30-day calls and sparkline (see key_activity).
    With `keys`, the rows of those keys only (a key group), but the whole upstream inventory ("admin").
    """
    hour_end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    hour_start = hour_end - timedelta(days=hourly_days, hours=1)
    inventory, inventory_params = _only(keys, "k.key_name", "WHERE")
    group, group_params = _only(keys)
    with reading(db_path) as con:
        inventory_frame = con.execute(_INVENTORY_SQL.format(where=inventory), inventory_params).df()
        daily = con.execute(
            f"SELECT key_name, day, calls FROM key_daily_usage WHERE day BETWEEN ? AND ?{group} ORDER BY key_name, day",
            [now.date() - timedelta(days=daily_days), now.date(), *group_params],
        ).df()
        hourly = _hourly(con, hour_start, hour_end, keys, None)[["key_name", "hour", "calls", "jobs"]]
        coverage = _coverage(con, hour_start, keys)[["key_name", "first_event_at", "gaps"]]
        admin = _admin(con)
        frames = {"keys": inventory_frame, "daily": daily, "hourly": hourly, "event_coverage": coverage, "admin": admin}
        if spark_days:
            frames["activity"] = _activity(con, now.date(), spark_days)
    return frames


def key_activity(db_path: Source, today: date, spark_days: int = 30) -> pd.DataFrame:
    """Per key: calls over the last 7 and 30 days and the daily calls of the last `spark_days` days (a list)."""
    with reading(db_path) as con:
        return _activity(con, today, spark_days)


def _activity(con: duckdb.DuckDBPyConnection, today: date, spark_days: int) -> pd.DataFrame:
    start = today - timedelta(days=spark_days - 1)
    return con.execute(
        """
        WITH spine AS (
            SELECT k.key_name, d.day::DATE AS day
            FROM keys k, range(?::DATE, ?::DATE + INTERVAL 1 DAY, INTERVAL 1 DAY) d(day)
        ), filled AS (
            SELECT s.key_name, s.day, coalesce(u.calls, 0) AS calls
            FROM spine s LEFT JOIN key_daily_usage u USING (key_name, day)
        )
        SELECT key_name,
               sum(calls) FILTER (WHERE day > ?::DATE - 7) AS calls_7d,
               sum(calls) FILTER (WHERE day > ?::DATE - 30) AS calls_30d,
               list(calls ORDER BY day) AS daily_calls
        FROM filled GROUP BY key_name ORDER BY key_name
    """,
        [start, today, today, today],
    ).df()


def events_breakdowns(db_path: Source, key_name: str, start: datetime, end: datetime) -> dict[str, pd.DataFrame]:
    """The key's seen events in [start, end) counted by endpoint, status class (2xx/4xx/429/5xx) and model."""
    with reading(db_path) as con:
        return _breakdowns(con, key_name, start, end)


def _breakdowns(con: duckdb.DuckDBPyConnection, key_name: str, start: datetime, end: datetime) -> dict[str, Any]:
    out = {}
    for name, expression in BREAKDOWNS.items():
        out[name] = con.execute(
            f"""
            SELECT {expression} AS {name}, count(*) AS calls, coalesce(sum(credits), 0) AS credits
            FROM usage_events
            WHERE key_name = ? AND occurred_at >= ? AND occurred_at < ?
            GROUP BY ALL ORDER BY calls DESC
        """,
            [key_name, start, end],
        ).df()
    return out


def key_traffic(db_path: Source, key_name: str, start: datetime, end: datetime) -> dict[str, Any]:
    """One key's traffic in [start, end) in one connection: "daily" and "hourly" series, its events "coverage"
    (first event seen, gaps) and the events "breakdowns" by endpoint, status class and model."""
    with reading(db_path) as con:
        daily = con.execute(
            """
            SELECT key_name, day, calls, jobs, failed, credits FROM key_daily_usage
            WHERE key_name = ? AND day >= ?::DATE AND day < ?::DATE ORDER BY day
        """,
            [key_name, start, end],
        ).df()
        return {
            "daily": daily,
            "hourly": _hourly(con, start, end, [key_name], None),
            "coverage": _coverage(con, start).query("key_name == @key_name"),
            "calls_coverage": _calls_coverage(con, [key_name]),
            "breakdowns": _breakdowns(con, key_name, start, end),
        }


def traffic_overview(
    db_path: Source, current: tuple[date, date], previous: tuple[date, date], envs: list[str] | None
) -> dict[str, Any]:
    """The explorer's frames in one connection: every key's days of this period ("current"), each key's totals
    of the previous period ("previous": the movers compare totals), every key name and each key's environment."""
    where = "u.day BETWEEN ? AND ? AND (?::VARCHAR[] IS NULL OR list_contains(?, k.environment))"
    with reading(db_path) as con:
        # Every key's days (10,000 keys: ~300,000 rows a month) through Arrow; the day a TIMESTAMP, as .df() gives.
        days = arrow_frame(
            con,
            f"""
            SELECT u.key_name, k.environment, u.day::TIMESTAMP AS day, u.calls, u.jobs, u.failed, u.credits
            FROM key_daily_usage u JOIN keys k USING (key_name) WHERE {where} ORDER BY u.day, u.key_name
        """,
            [*current, envs, envs],
        )
        totals = con.execute(
            f"""
            SELECT u.key_name, k.environment, sum(u.calls)::BIGINT AS calls, sum(u.jobs)::BIGINT AS jobs,
                   sum(u.failed)::BIGINT AS failed, sum(u.credits) AS credits
            FROM key_daily_usage u JOIN keys k USING (key_name) WHERE {where} GROUP BY ALL ORDER BY u.key_name
        """,
            [*previous, envs, envs],
        ).df()
        keys = con.execute("SELECT key_name, environment FROM keys ORDER BY key_name").df()
    return {
        "current": days,
        "previous": totals,
        "names": keys["key_name"].tolist(),
        "environment_of": dict(zip(keys["key_name"], keys["environment"], strict=True)),
    }


def key_jobs(db_path: Source, key_name: str, search: str | None = None, limit: int = 500) -> pd.DataFrame:
    """The key's newest jobs with their request ids; `search` matches part of a job_id or of a request_id.

    The newest matching jobs are chosen first and only their events grouped: a busy key's every job
    (tens of thousands) would otherwise have its request ids gathered for a page that shows 200.
    """
    term = (search or "").strip().lower() or None
    # Without a search the newest jobs are a top-N of the key's jobs; with one, its matches by either id.
    chosen = "SELECT job_id FROM jobs WHERE key_name = ?"
    params: list[Any] = [key_name]
    if term is not None:
        chosen = """
            SELECT job_id FROM jobs WHERE key_name = ? AND contains(lower(job_id), ?)
            UNION
            SELECT job_id FROM usage_events
            WHERE key_name = ? AND job_id IS NOT NULL AND contains(lower(coalesce(request_id, '')), ?)
        """
        params = [key_name, term, key_name, term]
    return _df(
        db_path,
        f"""
        WITH newest AS (
            SELECT j.job_id, j.created_at, j.status, j.model, j.output_format, j.duration_seconds,
                   j.credits_charged, j.billing_status, j.output_url, j.error
            FROM jobs j
            WHERE j.key_name = ? AND j.job_id IN ({chosen})
            ORDER BY j.created_at DESC LIMIT ?
        ), req AS (
            SELECT job_id, string_agg(DISTINCT request_id, ', ' ORDER BY request_id) AS request_ids
            FROM usage_events
            WHERE key_name = ? AND request_id IS NOT NULL AND job_id IN (SELECT job_id FROM newest)
              -- a job's calls come after it was created (an hour's margin for clocks): the scan reads recent
              -- row groups only, not a busy fleet's every event
              AND occurred_at >= (SELECT min(created_at) FROM newest) - INTERVAL 1 HOUR
            GROUP BY job_id
        )
        SELECT n.*, req.request_ids FROM newest n LEFT JOIN req USING (job_id)
        ORDER BY n.created_at DESC
    """,
        [key_name, *params, limit, key_name],
    )


def job_history(db_path: Source, job_id: str) -> pd.DataFrame:
    """A job's observed status transitions, oldest first."""
    return _df(
        db_path,
        "SELECT job_id, status, observed_at FROM job_status_history WHERE job_id = ? ORDER BY observed_at, status",
        [job_id],
    )
