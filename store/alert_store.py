"""Alerts raised from anomaly incidents, kept in the dashboard's own DuckDB state file.

The state file is separate from the collector database (the dashboard only reads that one):
`RBV_STATE_DB`, else `<collector db>.dashboard.duckdb`.  One alert per incident, keyed on
(key_name, metric, direction, incident_start); an incident of the same key, metric and
direction that starts within `cooldown` after a still-active (open or acknowledged) alert's
end is merged into that alert (its end and peak score are extended) instead of opening a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from store.results import first_row
from store.state_file import state_read, state_write

STATUSES = ("open", "acknowledged", "resolved")
ACTIVE = ("open", "acknowledged")
COLUMNS = [
    "alert_id",
    "key_name",
    "metric",
    "direction",
    "incident_start",
    "incident_end",
    "peak_score",
    "status",
    "opened_at",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "delivered_at",
    "delivery_attempts",
    "last_error",
]

_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id          VARCHAR PRIMARY KEY,
    key_name          VARCHAR NOT NULL,
    metric            VARCHAR NOT NULL,
    direction         VARCHAR NOT NULL,
    incident_start    TIMESTAMP NOT NULL,
    incident_end      TIMESTAMP NOT NULL,
    peak_score        DOUBLE,
    status            VARCHAR NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    opened_at         TIMESTAMP NOT NULL,
    acknowledged_at   TIMESTAMP,
    acknowledged_by   VARCHAR,
    resolved_at       TIMESTAMP,
    delivered_at      TIMESTAMP,
    delivery_attempts INTEGER NOT NULL DEFAULT 0,
    last_error        VARCHAR,
    UNIQUE (key_name, metric, direction, incident_start)
)
"""


class AlertError(Exception):
    """An alert action that cannot apply (unknown alert, or a transition from the wrong status)."""


def _naive(moment: Any) -> datetime:
    """A naive UTC datetime (the store keeps TIMESTAMP without time zone, in UTC)."""
    ts = pd.Timestamp(moment)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(UTC).tz_localize(None)
    return ts.to_pydatetime()


def _alert_id(key_name: str, metric: str, direction: str, start: datetime) -> str:
    text = f"{key_name}|{metric}|{direction}|{start.isoformat()}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _write(path: str | Path) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
    """One read-write transaction on the state file, creating the alerts table on first use."""
    return state_write(path, _DDL)


def _rows(con: duckdb.DuckDBPyConnection, where: str = "", params: list[Any] | None = None) -> list[dict[str, Any]]:
    result = con.execute(f"SELECT {', '.join(COLUMNS)} FROM alerts {where}", params or [])
    return [dict(zip(COLUMNS, row, strict=True)) for row in result.fetchall()]


def upsert_incidents(
    path: str | Path, incidents: pd.DataFrame, now: datetime, cooldown: timedelta = timedelta(hours=6)
) -> list[dict[str, Any]]:
    """Record detected incidents as alerts; return the alerts newly opened (as dicts, oldest first).

    Re-syncing the same incidents is idempotent: an incident already covered by an alert of the same
    key, metric and direction (its start lies inside the alert's span) only extends that alert's end
    and peak score.  An incident starting within `cooldown` after an active alert's end is merged
    into it.  Anything else opens a new alert.
    """
    opened_ids: list[str] = []
    stamp = _naive(now)
    if incidents is None or incidents.empty:
        return []
    ordered = incidents.sort_values("start")
    with _write(path) as con:
        for row in ordered.itertuples(index=False):
            key_name, metric, direction = str(row.key_name), str(row.metric), str(row.direction)
            start, end = _naive(row.start), _naive(row.end)
            peak = float(row.peak_score)
            target = first_row(
                con.execute(
                    """
                    SELECT alert_id FROM alerts
                    WHERE key_name = ? AND metric = ? AND direction = ?
                      AND incident_start <= ?
                      AND (incident_end >= ? OR (status IN ('open', 'acknowledged') AND incident_end + ? >= ?))
                    ORDER BY incident_end DESC LIMIT 1
                    """,
                    [key_name, metric, direction, start, start, cooldown, start],
                )
            )
            if target is not None:
                con.execute(
                    """
                    UPDATE alerts SET incident_end = greatest(incident_end, ?),
                                      peak_score = greatest(coalesce(peak_score, ?), ?)
                    WHERE alert_id = ?
                    """,
                    [end, peak, peak, target[0]],
                ).fetchall()
                continue
            alert_id = _alert_id(key_name, metric, direction, start)
            con.execute(
                """
                INSERT INTO alerts (alert_id, key_name, metric, direction, incident_start, incident_end,
                                    peak_score, status, opened_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?)
                """,
                [alert_id, key_name, metric, direction, start, end, peak, stamp],
            ).fetchall()
            opened_ids.append(alert_id)
        if not opened_ids:
            return []
        rows = _rows(con, "WHERE list_contains(?, alert_id) ORDER BY incident_start", [opened_ids])
    return rows


def list_alerts(path: str | Path, status: str | None = None) -> pd.DataFrame:
    """Alerts newest incident first (all, or only one status); empty frame when the state file is new."""
    if status is not None and status not in STATUSES:
        raise AlertError(f"unknown alert status {status!r}")
    with state_read(path, "alerts") as con:
        if con is None:
            return pd.DataFrame(columns=COLUMNS)
        where = "WHERE status = ?" if status else ""
        sql = f"SELECT {', '.join(COLUMNS)} FROM alerts {where} ORDER BY incident_start DESC, alert_id"
        return con.execute(sql, [status] if status else []).df()


def _transition(path: str | Path, alert_id: str, allowed: tuple[str, ...], sql: str, params: list[Any]) -> None:
    with _write(path) as con:
        row = first_row(con.execute("SELECT status FROM alerts WHERE alert_id = ?", [alert_id]))
        if row is None:
            raise AlertError(f"no alert {alert_id}")
        if row[0] not in allowed:
            raise AlertError(f"alert {alert_id} is {row[0]}")
        con.execute(sql, [*params, alert_id]).fetchall()


def acknowledge(path: str | Path, alert_id: str, who: str, now: datetime) -> None:
    """open → acknowledged, recording who and when."""
    who = (who or "").strip()
    if not who:
        raise AlertError("say who acknowledges the alert")
    _transition(
        path,
        alert_id,
        ("open",),
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = ?, acknowledged_by = ? WHERE alert_id = ?",
        [_naive(now), who],
    )


def resolve(path: str | Path, alert_id: str, now: datetime) -> None:
    """open or acknowledged → resolved."""
    _transition(
        path,
        alert_id,
        ACTIVE,
        "UPDATE alerts SET status = 'resolved', resolved_at = ? WHERE alert_id = ?",
        [_naive(now)],
    )


def undelivered(path: str | Path, max_attempts: int) -> list[dict[str, Any]]:
    """Active alerts never delivered and tried fewer than `max_attempts` times (oldest first): to post again."""
    with state_read(path, "alerts") as con:
        if con is None:
            return []
        return _rows(
            con,
            "WHERE status IN ('open', 'acknowledged') AND delivered_at IS NULL AND delivery_attempts < ? "
            "ORDER BY opened_at, incident_start",
            [int(max_attempts)],
        )


def mark_delivery(path: str | Path, alert_id: str, ok: bool, attempts: int, error: str | None, now: datetime) -> None:
    """Record one delivery run: attempts are added up; success sets delivered_at and clears the error."""
    with _write(path) as con:
        row = first_row(con.execute("SELECT 1 FROM alerts WHERE alert_id = ?", [alert_id]))
        if row is None:
            raise AlertError(f"no alert {alert_id}")
        con.execute(
            """
            UPDATE alerts SET delivery_attempts = delivery_attempts + ?,
                              delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END,
                              last_error = CASE WHEN ? THEN NULL ELSE ? END
            WHERE alert_id = ?
            """,
            [int(attempts), ok, _naive(now), ok, error, alert_id],
        ).fetchall()
