"""Read queries for credit reconciliation: jobs with their charge events, orphans, daily charges, coverage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from store.connection import Source, reading
from store.results import arrow_frame, first_row

# A charge event is the call that submitted a job and carries the credits charged for it.
_CHARGE = (
    "SELECT event_id, key_name, occurred_at, job_id, model, credits, request_id FROM usage_events "
    "WHERE credits > 0 AND job_id IS NOT NULL"
)

# Events are only known from the first poll on, and not inside recorded gaps. The events cursor
# remembers where the first poll's window began; the oldest stored event is the fallback.
_COVERAGE = """
    SELECT r.key_name,
           coalesce(TRY_CAST(json_extract_string(s.cursor, '$.covered_since') AS TIMESTAMP), e.first_event_at)
               AS covered_since,
           e.first_event_at, e.last_event_at
    FROM key_registry r
    LEFT JOIN sync_state s ON s.key_name = r.key_name AND s.endpoint = 'events'
    LEFT JOIN (SELECT key_name, min(occurred_at) AS first_event_at, max(occurred_at) AS last_event_at
               FROM usage_events GROUP BY key_name) e ON e.key_name = r.key_name
"""


# The same, for the keys of a group (the group's key list is its one parameter).
_GROUP_COVERAGE = _COVERAGE.replace(
    "FROM usage_events GROUP BY key_name", "FROM usage_events WHERE list_contains(?, key_name) GROUP BY key_name"
)


def _filters(
    since: datetime | None,
    until: datetime | None,
    column: str,
    envs: list[str] | None,
    keys: list[str] | None = None,
    key_column: str = "",
) -> tuple[str, list[Any]]:
    where, params = _group(keys, key_column)
    if since is not None:
        where += f" AND {column} >= ?"
        params.append(since)
    if until is not None:
        where += f" AND {column} <= ?"
        params.append(until)
    if envs:
        where += " AND list_contains(?, k.environment)"
        params.append(list(envs))
    return where, params


def _group(keys: list[str] | None, column: str) -> tuple[str, list[Any]]:
    """Rows of the key group `keys` only (None: every key); what they are judged against is not narrowed."""
    if keys is None:
        return "", []
    return f" AND list_contains(?, {column})", [list(keys)]


def _df(db_path: Source, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    with reading(db_path) as con:
        return con.execute(sql, params or []).df()


def _rows_df(db_path: Source, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Row-level reads (hundreds of thousands of jobs at scale) come through Arrow."""
    with reading(db_path) as con:
        return arrow_frame(con, sql, params)


def jobs_with_charges(
    db_path: Source,
    since: datetime | None = None,
    until: datetime | None = None,
    envs: list[str] | None = None,
    keys: list[str] | None = None,
) -> pd.DataFrame:
    """Jobs created in [since, until] with their charge-event count and sum, and whether events covered them
    (of the keys in `keys` only, when given).

    The jobs in range are selected first; only their charge events are grouped (a semi-join), and
    only they are matched against the recorded gaps, so a 30-day view does not group all history.
    """
    where, params = _filters(since, until, "j.created_at", envs, keys, "j.key_name")
    return _rows_df(
        db_path,
        f"""
        WITH sel AS (
            SELECT j.job_id, j.key_name, k.environment, j.created_at, j.status, j.model, j.output_format,
                   j.duration_seconds, j.credits_charged, j.billing_status, j.output_url, j.error
            FROM jobs j LEFT JOIN keys k ON k.key_name = j.key_name
            WHERE TRUE{where}
        ),
        per_job AS (
            SELECT e.job_id, count(*) AS charge_events, sum(e.credits ORDER BY e.event_id) AS charge_credits,
                   arg_min(e.credits, e.occurred_at) AS first_charge_credits,
                   max(e.occurred_at) AS last_charge_at
            FROM usage_events e
            WHERE e.credits > 0 AND e.job_id IS NOT NULL AND e.job_id IN (SELECT job_id FROM sel)
            GROUP BY e.job_id
        ),
        coverage AS ({_COVERAGE if keys is None else _GROUP_COVERAGE}),
        gapped AS (
            SELECT DISTINCT s.job_id FROM sel s
            JOIN coverage_gaps g ON g.key_name = s.key_name AND s.created_at BETWEEN g.gap_start AND g.gap_end
        )
        SELECT j.job_id, j.key_name, j.environment, j.created_at, j.status, j.model, j.output_format,
               j.duration_seconds, j.credits_charged, j.billing_status, j.output_url, j.error,
               coalesce(p.charge_events, 0) AS charge_events, p.charge_credits, p.first_charge_credits,
               p.last_charge_at,
               coalesce(c.covered_since IS NOT NULL AND j.created_at >= c.covered_since
                        AND gapped.job_id IS NULL, FALSE) AS events_covered
        FROM sel j
        LEFT JOIN per_job p ON p.job_id = j.job_id
        LEFT JOIN coverage c ON c.key_name = j.key_name
        LEFT JOIN gapped ON gapped.job_id = j.job_id
        ORDER BY j.created_at, j.job_id
    """,
        params if keys is None else [*params, list(keys)],
    )


def orphan_charge_events(
    db_path: Source,
    since: datetime | None = None,
    until: datetime | None = None,
    envs: list[str] | None = None,
    keys: list[str] | None = None,
) -> pd.DataFrame:
    """Charge events whose job id the jobs list never returned (for any key); the events of `keys` only, when
    given (still matched against every key's jobs)."""
    where, params = _filters(since, until, "e.occurred_at", envs, keys, "e.key_name")
    return _rows_df(
        db_path,
        f"""
        SELECT e.event_id, e.key_name, k.environment, e.occurred_at, e.job_id, e.model, e.credits, e.request_id
        FROM ({_CHARGE}) e
        LEFT JOIN keys k ON k.key_name = e.key_name
        WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = e.job_id){where}
        ORDER BY e.occurred_at, e.event_id
    """,
        params,
    )


def daily_charges(
    db_path: Source,
    start: date | None = None,
    end: date | None = None,
    envs: list[str] | None = None,
    keys: list[str] | None = None,
) -> pd.DataFrame:
    """Per key and summary day: the summary's credits and when it was fetched, and the charges we can explain
    (the days of `keys` only, when given).

    Charges of a day = credits of the jobs created that day + extra charge events of duplicated jobs
    (on the day of their last charge) + charge events for jobs never listed. Sums run in id order, so a key
    group's read gives the fleet's read's numbers to the last digit.
    """
    where, params = _group(keys, "u.key_name")
    if start is not None:
        where += " AND u.day >= ?"
        params.append(start)
    if end is not None:
        where += " AND u.day <= ?"
        params.append(end)
    if envs:
        where += " AND list_contains(?, k.environment)"
        params.append(list(envs))
    # Every part is cut to the days shown before grouping: jobs by creation day, orphan charges by their
    # day, and duplicated jobs by the day of their last charge (so only jobs charged in range are grouped).
    ranged = start is not None or end is not None
    lo = start if start is not None else date.min
    hi = (end + timedelta(days=1)) if end is not None else date.max
    # A key group's days need its own keys' charges only: its jobs, and the charge events of its keys or jobs.
    group_jobs, group_jobs_params = _group(keys, "key_name")
    group_charges, group_charges_params = "", []
    if keys is not None:
        group_charges = (
            " AND (list_contains(?, key_name) OR job_id IN (SELECT job_id FROM jobs WHERE list_contains(?, key_name)))"
        )
        group_charges_params = [list(keys), list(keys)]
    return _df(
        db_path,
        f"""
        WITH charge AS ({_CHARGE}{group_charges}),
        charged_in_range AS (
            SELECT DISTINCT job_id FROM charge WHERE occurred_at >= ?::DATE AND occurred_at < ?::DATE
        ),
        per_job AS (
            SELECT job_id, count(*) AS n, sum(credits ORDER BY event_id) AS credits, max(occurred_at) AS last_at
            FROM charge {"WHERE job_id IN (SELECT job_id FROM charged_in_range)" if ranged else ""} GROUP BY job_id
        ),
        job_part AS (
            SELECT key_name, CAST(created_at AS DATE) AS day,
                   sum(coalesce(credits_charged, 0) ORDER BY job_id) AS credits
            FROM jobs WHERE created_at >= ?::DATE AND created_at < ?::DATE{group_jobs} GROUP BY ALL
        ),
        extra_part AS (
            SELECT j.key_name, CAST(p.last_at AS DATE) AS day,
                   sum(greatest(p.credits - coalesce(j.credits_charged, 0), 0) ORDER BY j.job_id) AS credits
            FROM per_job p JOIN jobs j ON j.job_id = p.job_id
            WHERE p.n > 1 GROUP BY ALL
        ),
        orphan_part AS (
            SELECT e.key_name, CAST(e.occurred_at AS DATE) AS day, sum(e.credits ORDER BY e.event_id) AS credits
            FROM charge e
            WHERE e.occurred_at >= ?::DATE AND e.occurred_at < ?::DATE
              AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.job_id = e.job_id)
            GROUP BY ALL
        )
        SELECT u.key_name, k.environment, u.day, u.credits AS summary_credits, d.fetched_at,
               coalesce(jp.credits, 0) + coalesce(xp.credits, 0) + coalesce(op.credits, 0) AS charges
        FROM key_daily_usage u
        JOIN keys k ON k.key_name = u.key_name
        JOIN usage_daily d ON d.key_name = u.key_name AND d.day = u.day
        LEFT JOIN job_part jp ON jp.key_name = u.key_name AND jp.day = u.day
        LEFT JOIN extra_part xp ON xp.key_name = u.key_name AND xp.day = u.day
        LEFT JOIN orphan_part op ON op.key_name = u.key_name AND op.day = u.day
        WHERE TRUE{where}
        ORDER BY u.day, u.key_name
    """,
        [*group_charges_params, lo, hi, lo, hi, *group_jobs_params, lo, hi, *params],
    )


@dataclass(frozen=True)
class PricingState:
    """The collected pricing and how current it is: last read, and since when it could not be read."""

    rates: pd.DataFrame  # model (lower-case), credits_per_minute, fetched_at
    read_at: datetime | None
    unreadable_since: datetime | None
    unreadable_reason: str | None


def pricing_state(db_path: Source) -> PricingState:
    """What analytics.pricing needs to choose the rates and say where they came from: the rates last read,
    when, and since when the pricing endpoint has failed or been unreadable (None while it reads fine)."""
    with reading(db_path) as con:
        rates = con.execute(
            "SELECT lower(model) AS model, credits_per_minute, fetched_at FROM pricing ORDER BY model"
        ).df()
        row = first_row(
            con.execute(
                """
            WITH items AS (SELECT status, finished_at, coalesce(error_code, status) || ': ' || coalesce(message, '')
                                  AS reason
                           FROM collector_run_items WHERE endpoint = 'pricing'),
            last_ok AS (SELECT max(finished_at) AS ok_at FROM items WHERE status = 'ok')
            SELECT (SELECT ok_at FROM last_ok),
                   min(finished_at) FILTER (WHERE status <> 'ok'),
                   arg_max(reason, finished_at) FILTER (WHERE status <> 'ok'),
                   arg_max(status, finished_at)
            FROM items WHERE finished_at > coalesce((SELECT ok_at FROM last_ok), '-infinity'::TIMESTAMP)
        """
            )
        )
    # Aggregates over the outcomes after the last good read: none means pricing reads fine.
    read_at, failing_since, reason, latest = row if row else (None, None, None, None)
    broken = latest is not None and latest != "ok"
    return PricingState(
        rates=rates,
        read_at=read_at,
        unreadable_since=failing_since if broken else None,
        unreadable_reason=reason if broken else None,
    )


def jobs_history_from(db_path: Source, keys: list[str] | None = None) -> dict[str, datetime]:
    """Per key whose first job backfill was capped (max_job_pages_first_run): the oldest job held."""
    where, params = _group(keys, "s.key_name")
    frame = _df(
        db_path,
        f"""
        SELECT s.key_name, min(j.created_at) AS history_from
        FROM sync_state s JOIN job_state j ON j.key_name = s.key_name
        WHERE s.endpoint = 'jobs' AND json_extract(s.cursor, '$.history_pages') IS NOT NULL{where}
        GROUP BY s.key_name
    """,
        params,
    )
    return {
        str(k): pd.Timestamp(t).to_pydatetime()
        for k, t in zip(frame["key_name"], frame["history_from"], strict=True)
        if pd.notna(t)
    }


def jobs_listed_at(db_path: Source, keys: list[str] | None = None) -> dict[str, datetime]:
    """Per key, when the latest successful jobs listing started: jobs created before it were listable."""
    where, params = _group(keys, "i.key_name")
    frame = _df(
        db_path,
        f"""
        SELECT i.key_name, max(r.started_at) AS listed_at
        FROM collector_run_items i JOIN collector_runs r ON r.run_id = i.run_id
        WHERE i.endpoint = 'jobs' AND i.status = 'ok'{where}
        GROUP BY i.key_name
    """,
        params,
    )
    return {
        str(k): pd.Timestamp(t).to_pydatetime()
        for k, t in zip(frame["key_name"], frame["listed_at"], strict=True)
        if pd.notna(t)
    }


def event_coverage(db_path: Source, envs: list[str] | None = None) -> pd.DataFrame:
    """Per configured key: events known since, first/last stored event, and how many gaps were recorded."""
    where, params = _filters(None, None, "", envs)
    return _df(
        db_path,
        f"""
        WITH coverage AS ({_COVERAGE})
        SELECT k.key_name, k.environment, c.covered_since, c.first_event_at, c.last_event_at,
               coalesce(g.gaps, 0) AS gaps, g.gap_minutes
        FROM keys k
        LEFT JOIN coverage c ON c.key_name = k.key_name
        LEFT JOIN (SELECT key_name, count(*) AS gaps,
                          sum(date_diff('second', gap_start, gap_end)) / 60.0 AS gap_minutes
                   FROM coverage_gaps WHERE endpoint = 'events' GROUP BY key_name) g ON g.key_name = k.key_name
        WHERE TRUE{where}
        ORDER BY k.key_name
    """,
        params,
    )


@dataclass(frozen=True)
class JobDetail:
    job: dict[str, Any] | None
    history: pd.DataFrame
    events: pd.DataFrame


def job_detail(db_path: Source, job_id: str) -> JobDetail:
    """One job as listed, its observed status transitions, and every event that mentions it."""
    with reading(db_path) as con:
        job = con.execute(
            """
            SELECT j.*, k.environment FROM jobs j LEFT JOIN keys k ON k.key_name = j.key_name WHERE j.job_id = ?
        """,
            [job_id],
        ).df()
        history = con.execute(
            "SELECT status, observed_at FROM job_status_history WHERE job_id = ? ORDER BY observed_at", [job_id]
        ).df()
        events = con.execute(
            """
            SELECT event_id, key_name, occurred_at, method, endpoint, status_code, request_id, model, credits
            FROM usage_events WHERE job_id = ? ORDER BY occurred_at, event_id
        """,
            [job_id],
        ).df()
    record = job.to_dict("records")[0] if not job.empty else None
    return JobDetail(job=record, history=history, events=events)
