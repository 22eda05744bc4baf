"""The append-only audit of key actions (public view `key_actions`), the rotations it implies (`key_rotations`),
and the traffic facts a guardrail judges a key by."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from store.connection import StoreNotReady, read_connection, write_transaction
from store.results import first_row

COLUMNS = (
    '"at"', "actor", "face", "action", "key_name", "fingerprint", "reason", "request_id", "outcome", "forced",
    "detail", "new_key_name", "new_fingerprint",
)  # fmt: skip
PUBLIC = ('"at"', "actor", "action", "key_name", "fingerprint", "reason", "request_id", "outcome")


def append(db_path: str | Path, row: dict[str, Any]) -> int:
    """Append one action or refusal; nothing in the product updates or deletes these rows."""
    placeholders = ", ".join("?" for _ in COLUMNS)
    with write_transaction(db_path) as con:
        found = con.execute(
            f"INSERT INTO key_action_log (action_id, {', '.join(COLUMNS)}) "
            f"VALUES (nextval('key_action_seq'), {placeholders}) RETURNING action_id",
            [bool(row.get(name)) if name == "forced" else row.get(name.strip('"')) for name in COLUMNS],
        ).fetchall()
    return int(found[0][0])


def actions(db_path: str | Path, key_name: str | None = None, limit: int = 200) -> pd.DataFrame:
    """The audit, newest first (one key's, or all)."""
    where, params = ("WHERE key_name = ? OR new_key_name = ?", [key_name, key_name]) if key_name else ("", [])
    columns = (*PUBLIC, "forced", "detail", "new_key_name", "face")
    with read_connection(db_path) as con:
        return con.execute(
            f'SELECT {", ".join(columns)} FROM key_actions {where} ORDER BY "at" DESC, action_id DESC LIMIT ?',
            [*params, int(limit)],
        ).df()


def rotations(db_path: str | Path, open_only: bool = False) -> pd.DataFrame:
    """Rotations newest first; `open_only`: those whose old key is not disabled yet (still tracked)."""
    where = "WHERE old_disabled_at IS NULL" if open_only else ""
    with read_connection(db_path) as con:
        return con.execute(f"SELECT * FROM key_rotations {where} ORDER BY rotated_at DESC").df()


def open_rotation_of(db_path: str | Path, key_name: str) -> dict[str, Any] | None:
    """The open rotation whose old key has this name (it may have left the config meanwhile)."""
    if not Path(db_path).exists():
        return None
    try:
        with read_connection(db_path) as con:
            result = con.execute(
                "SELECT * FROM key_rotations WHERE old_key_name = ? AND old_disabled_at IS NULL "
                "ORDER BY rotated_at DESC LIMIT 1",
                [key_name],
            )
            names = [d[0] for d in result.description]
            row = first_row(result)
    except StoreNotReady:
        return None
    return dict(zip(names, row, strict=True)) if row else None


def traffic(db_path: str | Path, key_name: str, fingerprint: str | None, now: datetime) -> dict[str, Any]:
    """What the store knows of a key's recent traffic: daily calls for the last 7 days and today, events in the
    last 24 h (and whether the events feed covers them), summary calls on the days overlapping them, the newest
    call (events, or the admin inventory by fingerprint) and the last successful collection of the key."""
    since = now - timedelta(hours=24)
    first_day = (now - timedelta(days=7)).date()
    out: dict[str, Any] = {
        "daily": [], "events_24h": None, "summary_24h": None, "last_used_at": None,
        "last_used_source": "nothing collected", "observed_at": None,
    }  # fmt: skip
    if not Path(db_path).exists():
        return out
    try:
        with read_connection(db_path) as con:
            out["daily"] = [
                (row[0], int(row[1]))
                for row in con.execute(
                    "SELECT day, calls FROM key_daily_usage WHERE key_name = ? AND day BETWEEN ? AND ? ORDER BY day",
                    [key_name, first_day, now.date()],
                ).fetchall()
            ]
            summary = first_row(
                con.execute(
                    "SELECT sum(calls), count(*) FROM key_daily_usage WHERE key_name = ? AND day BETWEEN ? AND ?",
                    [key_name, since.date(), now.date()],
                )
            )
            if summary and summary[1]:
                out["summary_24h"] = int(summary[0] or 0)
            covered = first_row(
                con.execute(
                    """
                    SELECT TRY_CAST(json_extract_string(cursor, '$.covered_since') AS TIMESTAMP) <= ?
                           AND NOT EXISTS (SELECT 1 FROM coverage_gaps g WHERE g.key_name = s.key_name
                                           AND g.endpoint = 'events' AND g.gap_end > ? AND g.gap_start < ?)
                    FROM sync_state s WHERE key_name = ? AND endpoint = 'events'
                    """,
                    [since, since, now, key_name],
                )
            )
            if covered and covered[0]:
                row = first_row(
                    con.execute(
                        "SELECT count(*) FROM usage_events WHERE key_name = ? AND occurred_at > ? AND occurred_at <= ?",
                        [key_name, since, now],
                    )
                )
                out["events_24h"] = int(row[0]) if row else 0
            last = first_row(
                con.execute(
                    """
                    SELECT (SELECT max(occurred_at) FROM usage_events WHERE key_name = ? AND occurred_at <= ?),
                           (SELECT max(last_used_at) FROM admin_inventory WHERE key_fingerprint = ?)
                    """,
                    [key_name, now, fingerprint],
                )
            )
            if last:
                seen = [(t, s) for t, s in zip(last, ("events", "admin inventory"), strict=True) if t is not None]
                if seen:
                    out["last_used_at"], out["last_used_source"] = max(seen)
            observed = first_row(
                con.execute(
                    "SELECT max(finished_at) FROM run_item_log WHERE key_name = ? AND status = 'ok' "
                    "AND endpoint IN ('events', 'summary')",
                    [key_name],
                )
            )
            out["observed_at"] = observed[0] if observed else None
    except StoreNotReady:
        return out
    return out
