"""Read queries for pages and CLIs: aggregation happens in DuckDB, results come back as DataFrames."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from store.connection import Source, reading
from store.landing import unpack_body
from store.results import first_row


def _df(db_path: Source, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    with reading(db_path) as con:
        return con.execute(sql, params or []).df()


def _env_filter(environments: list[str] | None, column: str = "k.environment") -> tuple[str, list[Any]]:
    if not environments:
        return "", []
    return f" AND list_contains(?, {column})", [list(environments)]


@dataclass(frozen=True)
class Unreadable:
    """An endpoint whose latest answer (for `keys` keys, or globally) could not be read: since when, and why."""

    endpoint: str
    keys: int
    since: datetime
    reason: str | None


@dataclass(frozen=True)
class Freshness:
    last_success_at: datetime | None
    last_run_at: datetime | None
    last_run_status: str | None
    failed_items_last_run: int
    coverage_gaps: int
    quarantined: int
    keys: int
    unreadable: tuple[Unreadable, ...] = ()


# Per key and endpoint whose latest outcome was unreadable (every record quarantined, or a body of the wrong
# shape): when that streak began, i.e. the first such outcome after the last good one.
_UNREADABLE = """
    WITH items AS (
        SELECT key_name, endpoint, finished_at, status, message,
               (status = 'unreadable' OR coalesce(error_code, '') = 'contract') AS bad
        FROM run_item_log
    ),
    per AS (
        SELECT key_name, endpoint, arg_max(bad, finished_at) AS latest_bad, arg_max(message, finished_at) AS reason,
               max(finished_at) FILTER (WHERE status = 'ok') AS last_ok
        FROM items GROUP BY ALL
    ),
    streak AS (
        SELECT i.key_name, i.endpoint, min(i.finished_at) AS since, any_value(p.reason) AS reason
        FROM items i JOIN per p USING (key_name, endpoint)
        WHERE p.latest_bad AND i.bad AND (p.last_ok IS NULL OR i.finished_at > p.last_ok)
        GROUP BY ALL
    )
    SELECT endpoint, count(*) AS keys, min(since) AS since, min(reason) AS reason
    FROM streak GROUP BY endpoint ORDER BY endpoint
"""


def freshness(db_path: Source) -> Freshness:
    """How far to trust what is shown: last good collection, failures, gaps and quarantine."""
    with reading(db_path) as con:
        last_ok = first_row(
            con.execute("SELECT max(finished_at) FROM collector_runs WHERE status IN ('ok', 'partial')")
        )
        last = first_row(
            con.execute("SELECT run_id, started_at, status FROM collector_runs ORDER BY run_id DESC LIMIT 1")
        )
        failed = 0
        if last:
            row = first_row(
                con.execute(
                    "SELECT count(*) FROM collector_run_items WHERE run_id = ? AND status NOT IN ('ok', 'disabled')",
                    [last[0]],
                )
            )
            failed = int(row[0]) if row else 0
        gaps = first_row(con.execute("SELECT count(*) FROM coverage_gaps"))
        quarantined = first_row(con.execute("SELECT count(*) FROM quarantine"))
        keys = first_row(con.execute("SELECT count(*) FROM keys"))
        unreadable = unreadable_endpoints(con)
    return Freshness(
        last_success_at=last_ok[0] if last_ok else None,
        last_run_at=last[1] if last else None,
        last_run_status=last[2] if last else None,
        failed_items_last_run=failed,
        coverage_gaps=int(gaps[0]) if gaps else 0,
        quarantined=int(quarantined[0]) if quarantined else 0,
        keys=int(keys[0]) if keys else 0,
        unreadable=unreadable,
    )


def unreadable_endpoints(con: Any) -> tuple[Unreadable, ...]:
    """On an open read connection: the endpoints whose latest answers could not be read, and since when."""
    return tuple(Unreadable(*row) for row in con.execute(_UNREADABLE).fetchall())


def environments(db_path: Source) -> list[str]:
    frame = _df(db_path, "SELECT DISTINCT environment FROM keys ORDER BY environment")
    return frame["environment"].tolist()


def usage_totals(db_path: Source, start: date, end: date, envs: list[str] | None = None) -> dict[str, float]:
    """Calls, jobs, failed and credits summed over [start, end] days (inclusive)."""
    where, params = _env_filter(envs)
    with reading(db_path) as con:
        row = first_row(
            con.execute(
                f"""
            SELECT coalesce(sum(u.calls), 0), coalesce(sum(u.jobs), 0), coalesce(sum(u.failed), 0),
                   coalesce(sum(u.credits), 0)
            FROM key_daily_usage u JOIN keys k USING (key_name)
            WHERE u.day BETWEEN ? AND ?{where}
        """,
                [start, end, *params],
            )
        )
    calls, jobs, failed, credits = row if row else (0, 0, 0, 0.0)
    return {"calls": int(calls), "jobs": int(jobs), "failed": int(failed), "credits": float(credits)}


def daily_usage(
    db_path: Source, start: date, end: date, envs: list[str] | None = None, keys: list[str] | None = None
) -> pd.DataFrame:
    """One row per key and day in range: key_name, environment, day, calls, jobs, failed, credits."""
    where, params = _env_filter(envs)
    if keys:
        where += " AND list_contains(?, u.key_name)"
        params.append(list(keys))
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


def daily_top_keys(
    db_path: Source, start: date, end: date, envs: list[str] | None, top: int, rest: str
) -> pd.DataFrame:
    """Calls and credits per day in range for the `top` keys with most calls in range, each its own series
    (`rank` 1 = busiest), and every other key summed into one series named `rest` (rank top + 1): a chart's
    few series, summed in DuckDB instead of shipping every key's days (10,000 keys × 90 days)."""
    where, params = _env_filter(envs)
    return _df(
        db_path,
        f"""
        WITH d AS (
            SELECT u.key_name, u.day, u.calls, u.credits
            FROM key_daily_usage u JOIN keys k USING (key_name)
            WHERE u.day BETWEEN ? AND ?{where}
        ), ranked AS (
            SELECT key_name, row_number() OVER (ORDER BY sum(calls) DESC, key_name) AS rank
            FROM d GROUP BY key_name
        )
        SELECT d.day, CASE WHEN r.rank <= ? THEN d.key_name ELSE ? END AS series,
               least(r.rank, ? + 1) AS rank, sum(d.calls) AS calls, sum(d.credits) AS credits
        FROM d JOIN ranked r USING (key_name)
        GROUP BY ALL ORDER BY d.day, rank
    """,
        [start, end, *params, top, rest, top],
    )


def daily_by_environment(db_path: Source, start: date, end: date, envs: list[str] | None = None) -> pd.DataFrame:
    """Calls and credits per day and environment in range (configured keys, from the usage summary)."""
    where, params = _env_filter(envs)
    return _df(
        db_path,
        f"""
        SELECT u.day, k.environment, sum(u.calls) AS calls, sum(u.credits) AS credits
        FROM key_daily_usage u JOIN keys k USING (key_name)
        WHERE u.day BETWEEN ? AND ?{where}
        GROUP BY ALL ORDER BY u.day, k.environment
    """,
        [start, end, *params],
    )


def key_overview(db_path: Source, start: date, end: date, envs: list[str] | None = None) -> pd.DataFrame:
    """Every configured key with its identity, last use and activity in range."""
    where, params = _env_filter(envs)
    return _df(
        db_path,
        f"""
        SELECT k.key_name, k.environment, k.owner, k.masked_key, k.created_at, k.rotated_at,
               l.last_used_at,
               coalesce(r.calls, 0) AS calls, coalesce(r.jobs, 0) AS jobs,
               coalesce(r.failed, 0) AS failed, coalesce(r.credits, 0) AS credits
        FROM keys k
        LEFT JOIN key_last_used l USING (key_name)
        LEFT JOIN (
            SELECT key_name, sum(calls) AS calls, sum(jobs) AS jobs, sum(failed) AS failed,
                   sum(credits) AS credits
            FROM key_daily_usage WHERE day BETWEEN ? AND ? GROUP BY key_name
        ) r USING (key_name)
        WHERE TRUE{where}
        ORDER BY calls DESC, k.key_name
    """,
        [start, end, *params],
    )


def coverage_gaps(db_path: Source, since: datetime | None = None) -> pd.DataFrame:
    return _df(
        db_path,
        """
        SELECT g.key_name, g.endpoint, g.gap_start, g.gap_end, g.detected_at
        FROM coverage_gaps g
        WHERE ? IS NULL OR g.gap_end >= ?
        ORDER BY g.detected_at DESC
    """,
        [since, since],
    )


def quarantined_records(db_path: Source, limit: int = 500) -> pd.DataFrame:
    return _df(
        db_path,
        """
        SELECT quarantine_id, endpoint, key_name, fetched_at, request_id, reason, record
        FROM quarantine ORDER BY quarantine_id DESC LIMIT ?
    """,
        [limit],
    )


def recent_runs(db_path: Source, limit: int = 50) -> pd.DataFrame:
    return _df(
        db_path,
        """
        SELECT run_id, started_at, finished_at, status, mode, endpoints, keys_total, keys_ok,
               requests, retries, rows_written, message
        FROM collector_runs ORDER BY run_id DESC LIMIT ?
    """,
        [limit],
    )


def failed_run_items(db_path: Source, limit: int = 200) -> pd.DataFrame:
    return _df(
        db_path,
        """
        SELECT i.run_id, i.key_name, i.endpoint, i.status, i.error_code, i.message, i.request_id,
               i.finished_at
        FROM collector_run_items i WHERE i.status NOT IN ('ok', 'disabled')
        ORDER BY i.finished_at DESC LIMIT ?
    """,
        [limit],
    )


def disabled_upstream(db_path: Source) -> pd.DataFrame:
    """Keys whose latest usage read was rejected because the vendor's inventory lists them as disabled (expected,
    not a failure): key_name, last_tried_at."""
    return _df(
        db_path,
        """
        SELECT key_name, max(finished_at) AS last_tried_at
        FROM collector_run_items WHERE endpoint IN ('summary', 'events', 'jobs')
        GROUP BY key_name HAVING arg_max(status, finished_at) = 'disabled'
        ORDER BY key_name
    """,
    )


def table_counts(db_path: Source, views: list[str]) -> dict[str, int]:
    """Row counts of public views (names are checked against the catalogue, never interpolated blindly)."""
    with reading(db_path) as con:
        known = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        counts = {}
        for view in views:
            if view not in known:
                raise ValueError(f"{view} is not a public view")
            row = first_row(con.execute(f'SELECT count(*) FROM "{view}"'))
            counts[view] = int(row[0]) if row else 0
    return counts


@dataclass(frozen=True)
class Coverage:
    """What the store holds, in time: the usage summary's first day, and when each feed was last read."""

    first_day: date | None  # the first day the usage summary holds (days before it are unknown, not zero)
    summary_read_at: datetime | None  # the last successful usage-summary read: its day is still partial
    events_read_at: datetime | None
    jobs_read_at: datetime | None


def coverage(db_path: Source, envs: list[str] | None = None, now: datetime | None = None) -> Coverage:
    """How far back and how recently the daily totals, events and jobs were collected (for `envs`' keys).

    Reads are stamped with the wall clock; as seen at an earlier `now` (a pinned clock replaying a frozen
    world) a read stamped later counts as made at `now`: nothing after `now` is known.
    """
    where, params = _env_filter(envs)
    with reading(db_path) as con:
        first = first_row(
            con.execute(
                f"SELECT min(u.day) FROM key_daily_usage u JOIN keys k USING (key_name) WHERE TRUE{where}", params
            )
        )
        read_at = dict(
            con.execute(
                f"""
                SELECT i.endpoint, max(i.finished_at) FROM collector_run_items i JOIN keys k USING (key_name)
                WHERE i.status = 'ok' AND i.endpoint IN ('summary', 'events', 'jobs'){where}
                GROUP BY i.endpoint
                """,
                params,
            ).fetchall()
        )

    def seen(endpoint: str) -> datetime | None:
        moment = read_at.get(endpoint)
        return min(moment, now) if moment is not None and now is not None else moment

    return Coverage(
        first_day=first[0] if first else None,
        summary_read_at=seen("summary"),
        events_read_at=seen("events"),
        jobs_read_at=seen("jobs"),
    )


def key_scopes(db_path: Source) -> pd.DataFrame:
    """Every configured key with the scopes it belongs to: key_name, environment, owner (None when unowned)."""
    return _df(db_path, "SELECT key_name, environment, owner FROM keys ORDER BY key_name")


def daily_credits(db_path: Source, start: date, end: date) -> pd.DataFrame:
    """The usage summary's credits per configured key and day in [start, end]: key_name, day, credits."""
    return _df(
        db_path,
        "SELECT key_name, day, credits FROM key_daily_usage WHERE day BETWEEN ? AND ? ORDER BY key_name, day",
        [start, end],
    )


def scope_daily_credits(db_path: Source, start: date, end: date, key_names: list[str] | None = None) -> pd.DataFrame:
    """The usage summary's credits in [start, end] summed per scope and day, as `analytics.budgets.scope_daily`
    sums them (scope, name, day as a date, credits), in DuckDB: each key's own days (only `key_names` when given),
    each environment's, each owner's and the account's. The fleet's key-days never leave the database."""
    only = "" if key_names is None else " AND list_contains(?::VARCHAR[], key_name)"
    frame = _df(
        db_path,
        f"""
        WITH d AS (
            SELECT u.key_name, k.environment, k.owner, u.day, u.credits::DOUBLE AS credits
            FROM key_daily_usage u LEFT JOIN keys k USING (key_name)
            WHERE u.day BETWEEN ? AND ?
        )
        SELECT 'key' AS scope, key_name AS name, day, sum(credits) AS credits FROM d WHERE TRUE{only} GROUP BY ALL
        UNION ALL
        SELECT 'environment', environment, day, sum(credits) FROM d WHERE environment IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT 'owner', owner, day, sum(credits) FROM d WHERE owner IS NOT NULL GROUP BY ALL
        UNION ALL
        SELECT 'account', 'account', day, sum(credits) FROM d GROUP BY ALL
        ORDER BY scope, name, day
    """,
        [start, end] + ([list(key_names)] if key_names is not None else []),
    )
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    return frame


@dataclass(frozen=True)
class CollectionStatus:
    """What the collector had done by an instant: its first run's start, when it last collected anything (an
    endpoint answered), its last finished run."""

    first_started_at: datetime | None
    last_success_at: datetime | None
    last_run_id: int | None
    last_run_status: str | None
    last_run_at: datetime | None
    last_run_message: str | None


def collection_status(db_path: Source, until: datetime) -> CollectionStatus:
    """The collector's runs as they stood at `until` (runs started later are not counted)."""
    with reading(db_path) as con:
        first = first_row(con.execute("SELECT min(started_at) FROM collector_runs WHERE started_at <= ?", [until]))
        # Something was collected: a run in which an endpoint answered for a key (or a global one, like pricing).
        # A run's own status is not enough: a run of global endpoints only is 'partial' even when each of them
        # failed. The run's time, not its items': items are stamped with the wall clock even when the run is not.
        ok = first_row(
            con.execute(
                "SELECT max(r.finished_at) FROM collector_runs r WHERE r.finished_at <= ? AND EXISTS "
                "(SELECT 1 FROM collector_run_items i WHERE i.run_id = r.run_id AND i.status = 'ok')",
                [until],
            )
        )
        last = first_row(
            con.execute(
                "SELECT run_id, status, finished_at, message FROM collector_runs "
                "WHERE finished_at IS NOT NULL AND finished_at <= ? ORDER BY run_id DESC LIMIT 1",
                [until],
            )
        )
    return CollectionStatus(
        first_started_at=first[0] if first else None,
        last_success_at=ok[0] if ok else None,
        last_run_id=last[0] if last else None,
        last_run_status=last[1] if last else None,
        last_run_at=last[2] if last else None,
        last_run_message=last[3] if last else None,
    )


def rotations(db_path: Source) -> pd.DataFrame:
    """Each configured key's last rotation as the config records it: key_name, rotated_at (never rotated: left out)."""
    return _df(db_path, "SELECT key_name, rotated_at FROM keys WHERE rotated_at IS NOT NULL ORDER BY rotated_at")


def landed_bodies(db_path: Source, endpoint: str | None = None, key_name: str | None = None) -> pd.DataFrame:
    """Raw landings with their bodies as text, oldest first (what re-modelling reads): landing_id, endpoint,
    key_name, key_fingerprint, fetched_at, request_id, http_status, body_sha256, body."""
    frame = _df(
        db_path,
        """
        SELECT landing_id, endpoint, key_name, key_fingerprint, fetched_at, request_id, http_status, body_sha256,
               body, body_zstd
        FROM raw_landing
        WHERE (? IS NULL OR endpoint = ?) AND (? IS NULL OR key_name = ?)
        ORDER BY landing_id
        """,
        [endpoint, endpoint, key_name, key_name],
    )
    # Landings before migration 007 hold their text in `body`; later ones the compressed form.
    frame["body"] = [
        old if pd.isna(packed) else unpack_body(bytes(packed))
        for packed, old in zip(frame.pop("body_zstd"), frame["body"], strict=True)
    ]
    return frame
