"""Alerts, their notices and their history, kept in the dashboard's own DuckDB state file.

The state file is separate from the collector database (the dashboard only reads that one):
`RBV_STATE_DB`, else `<collector db>.dashboard.duckdb`. Tables:
- `alerts`: one row per alert (anomaly, budget, smoke check, collector health) with its lifecycle
  (open → acknowledged → resolved; snoozed until; notified when and how often).
- `alert_notices`: the outbox. A check queues each notice in the same transaction as the alert change that
  makes it due, then delivers the queue; a process killed in between sends the queued notices at its next
  check, and never queues them twice.
- `alert_events`: who did what to which alert, and when (people and the service alike).
- `alert_mutes`: silences entered on the page (one-off or recurring); the config's own are not stored.
- `prepaid_balances`: the team's prepaid credit balance as entered on the Credits page, with its date.

Anomaly alerts are keyed on (key_name, metric, direction, incident_start): an incident of the same key,
metric and direction that starts within `cooldown` after a still-active alert's end is merged into that
alert (its end and peak score are extended) instead of opening a new one. Every other kind is keyed on its
`dedup_key` (a budget threshold per period, a failing smoke-check path, a collector outage).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from store.results import first_row
from store.state_file import state_read, state_write
from store.writes import _pid_alive

STATUSES = ("open", "acknowledged", "resolved")
ACTIVE = ("open", "acknowledged")
COLUMNS = [
    "alert_id",
    "kind",
    "dedup_key",
    "key_name",
    "subject",
    "metric",
    "direction",
    "incident_start",
    "incident_end",
    "grain",
    "peak_score",
    "severity",
    "environment",
    "owner",
    "detail",
    "status",
    "opened_at",
    "acknowledged_at",
    "acknowledged_by",
    "snoozed_until",
    "snoozed_by",
    "resolved_at",
    "resolved_by",
    "resolution",
    "notify_count",
    "last_notified_at",
    "resolve_notified_at",
    "delivered_at",
    "delivery_attempts",
    "last_error",
]
NOTICE_COLUMNS = [
    "notice_id",
    "alert_id",
    "channel",
    "channel_type",
    "action",
    "round",
    "kind",
    "key_name",
    "dedup_key",
    "notice_key",
    "payload",
    "created_at",
    "status",
    "attempts",
    "last_error",
    "sent_at",
]
EVENT_COLUMNS = ["event_id", "alert_id", "happened_at", "actor", "action", "detail"]
MUTE_COLUMNS = [
    "mute_id",
    "created_at",
    "created_by",
    "reason",
    "starts_at",
    "ends_at",
    "cron",
    "duration_minutes",
    "environment",
    "owner",
    "severity",
    "kind",
    "key_name",
    "removed_at",
    "removed_by",
]

_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id          VARCHAR PRIMARY KEY,
    key_name          VARCHAR,
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
    kind              VARCHAR DEFAULT 'anomaly',
    dedup_key         VARCHAR,
    subject           VARCHAR,
    grain             VARCHAR,
    severity          VARCHAR,
    environment       VARCHAR,
    owner             VARCHAR,
    detail            VARCHAR,
    snoozed_until     TIMESTAMP,
    snoozed_by        VARCHAR,
    resolved_by       VARCHAR,
    resolution        VARCHAR,
    notify_count      INTEGER DEFAULT 0,
    last_notified_at  TIMESTAMP,
    resolve_notified_at TIMESTAMP,
    UNIQUE (key_name, metric, direction, incident_start)
);
CREATE SEQUENCE IF NOT EXISTS alert_notice_seq START 1;
CREATE TABLE IF NOT EXISTS alert_notices (
    notice_id   BIGINT PRIMARY KEY DEFAULT nextval('alert_notice_seq'),
    alert_id    VARCHAR,
    channel     VARCHAR NOT NULL,
    channel_type VARCHAR NOT NULL,
    action      VARCHAR NOT NULL,
    round       INTEGER NOT NULL,
    kind        VARCHAR NOT NULL,
    key_name    VARCHAR,
    dedup_key   VARCHAR NOT NULL,
    notice_key  VARCHAR NOT NULL UNIQUE,
    payload     VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    status      VARCHAR NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  VARCHAR,
    sent_at     TIMESTAMP,
    claimed_by  INTEGER,
    claimed_at  TIMESTAMP
);
CREATE SEQUENCE IF NOT EXISTS alert_event_seq START 1;
CREATE TABLE IF NOT EXISTS alert_events (
    event_id  BIGINT PRIMARY KEY DEFAULT nextval('alert_event_seq'),
    alert_id  VARCHAR NOT NULL,
    happened_at TIMESTAMP NOT NULL,
    actor     VARCHAR NOT NULL,
    action    VARCHAR NOT NULL,
    detail    VARCHAR
);
CREATE SEQUENCE IF NOT EXISTS alert_mute_seq START 1;
CREATE TABLE IF NOT EXISTS alert_mutes (
    mute_id          BIGINT PRIMARY KEY DEFAULT nextval('alert_mute_seq'),
    created_at       TIMESTAMP NOT NULL,
    created_by       VARCHAR NOT NULL,
    reason           VARCHAR,
    starts_at        TIMESTAMP,
    ends_at          TIMESTAMP,
    cron             VARCHAR,
    duration_minutes DOUBLE,
    environment      VARCHAR,
    owner            VARCHAR,
    severity         VARCHAR,
    kind             VARCHAR,
    key_name         VARCHAR,
    removed_at       TIMESTAMP,
    removed_by       VARCHAR
);
CREATE SEQUENCE IF NOT EXISTS prepaid_balance_seq START 1;
CREATE TABLE IF NOT EXISTS prepaid_balances (
    entry_id    BIGINT PRIMARY KEY DEFAULT nextval('prepaid_balance_seq'),
    credits     DOUBLE NOT NULL,
    as_of       TIMESTAMP NOT NULL,
    entered_by  VARCHAR NOT NULL,
    entered_at  TIMESTAMP NOT NULL
);
"""

# A state file of the previous version has only the first columns: it gains the rest on its first write, and
# alerts it had already delivered count as notified (an upgrade sends nothing twice).
_UPGRADE = (
    "ALTER TABLE alerts ALTER key_name DROP NOT NULL",
    *(
        f"ALTER TABLE alerts ADD COLUMN IF NOT EXISTS {name} {kind}"
        for name, kind in (
            ("kind", "VARCHAR DEFAULT 'anomaly'"), ("dedup_key", "VARCHAR"), ("subject", "VARCHAR"),
            ("grain", "VARCHAR"), ("severity", "VARCHAR"), ("environment", "VARCHAR"), ("owner", "VARCHAR"),
            ("detail", "VARCHAR"), ("snoozed_until", "TIMESTAMP"), ("snoozed_by", "VARCHAR"),
            ("resolved_by", "VARCHAR"), ("resolution", "VARCHAR"), ("notify_count", "INTEGER DEFAULT 0"),
            ("last_notified_at", "TIMESTAMP"), ("resolve_notified_at", "TIMESTAMP"),
        )
    ),
    "UPDATE alerts SET kind = 'anomaly' WHERE kind IS NULL",
    "UPDATE alerts SET dedup_key = 'anomaly/' || key_name || '/' || metric || '/' || direction || '/' "
    "|| strftime(incident_start, '%Y-%m-%dT%H:%M') WHERE dedup_key IS NULL",
    "UPDATE alerts SET notify_count = 1, last_notified_at = delivered_at "
    "WHERE delivered_at IS NOT NULL AND coalesce(notify_count, 0) = 0",
)  # fmt: skip


class AlertError(Exception):
    """An alert action that cannot apply (unknown alert, or a transition from the wrong status)."""


def _naive(moment: Any) -> datetime:
    """A naive UTC datetime (the store keeps TIMESTAMP without time zone, in UTC)."""
    ts = pd.Timestamp(moment)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(UTC).tz_localize(None)
    return ts.to_pydatetime()


def _alert_id(*parts: str) -> str:
    return hashlib.sha1("|".join(parts).encode("utf-8")).hexdigest()[:12]


def anomaly_dedup_key(key_name: str, metric: str, direction: str, start: datetime) -> str:
    return f"anomaly/{key_name}/{metric}/{direction}/{start:%Y-%m-%dT%H:%M}"


@contextlib.contextmanager
def _write(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """One read-write transaction on the state file, creating (or upgrading) the alert tables first."""
    with state_write(path, _DDL) as con:
        known = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'alerts'").fetchall()
        if known[0][0] < len(COLUMNS):
            for statement in _UPGRADE:
                con.execute(statement).fetchall()
        yield con


def _rows(con: duckdb.DuckDBPyConnection, where: str = "", params: list[Any] | None = None) -> list[dict[str, Any]]:
    result = con.execute(f"SELECT {', '.join(COLUMNS)} FROM alerts {where}", params or [])
    return [dict(zip(COLUMNS, row, strict=True)) for row in result.fetchall()]


def _text(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return str(value)


class AlertBook:
    """The alerts inside one transaction on the state file: what a check reads, opens, resolves and queues
    commits together, or not at all."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    # -- reading
    def alerts(self, statuses: tuple[str, ...] = STATUSES) -> list[dict[str, Any]]:
        return _rows(self.con, "WHERE list_contains(?, status) ORDER BY opened_at, alert_id", [list(statuses)])

    def to_announce(self) -> list[dict[str, Any]]:
        """Active alerts, and resolved ones whose recovery notice has not gone out yet."""
        return _rows(
            self.con,
            "WHERE status IN ('open', 'acknowledged') OR (status = 'resolved' AND notify_count > 0 "
            "AND resolve_notified_at IS NULL) ORDER BY opened_at, alert_id",
        )

    def mutes(self, now: datetime) -> list[dict[str, Any]]:
        """Silences entered on the page in force at `now` (entered by then, not removed by then; recurring ones, and
        one-off ones not yet over): a check replayed with an earlier `now` sees the silences of that moment."""
        result = self.con.execute(
            f"SELECT {', '.join(MUTE_COLUMNS)} FROM alert_mutes WHERE created_at <= ? "
            "AND (removed_at IS NULL OR removed_at > ?) AND (cron IS NOT NULL OR ends_at > ?) ORDER BY mute_id",
            [_naive(now)] * 3,
        )
        return [dict(zip(MUTE_COLUMNS, row, strict=True)) for row in result.fetchall()]

    # -- opening
    def upsert_incident(self, row: Mapping[str, Any], now: datetime, cooldown: timedelta) -> str | None:
        """Record one anomaly incident; returns the id of the alert it opened, or None when it extended one."""
        key_name, metric, direction = str(row["key_name"]), str(row["metric"]), str(row["direction"])
        start, end = _naive(row["start"]), _naive(row["end"])
        peak = float(row.get("peak_score") or 0.0)
        severity = _text(row.get("severity"))
        target = first_row(
            self.con.execute(
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
            self.con.execute(
                """
                UPDATE alerts SET incident_end = greatest(incident_end, ?),
                                  peak_score = greatest(coalesce(peak_score, ?), ?),
                                  severity = CASE WHEN ? = 'high' OR severity IS NULL THEN ?
                                                  WHEN ? = 'medium' AND severity = 'low' THEN ? ELSE severity END,
                                  detail = coalesce(?, detail)
                WHERE alert_id = ?
                """,
                [end, peak, peak, severity, severity, severity, severity, _text(row.get("detail")), target[0]],
            ).fetchall()
            return None
        alert_id = _alert_id(key_name, metric, direction, start.isoformat())
        # A frame of failing smoke checks (metric "smoke_check") opens smoke-check alerts, not anomalies.
        kind = str(row.get("kind") or ("smoke_check" if metric == "smoke_check" else "anomaly"))
        dedup = _text(row.get("dedup_key")) or (
            anomaly_dedup_key(key_name, metric, direction, start)
            if kind == "anomaly"
            else f"{kind}/{key_name}/{direction}/{start:%Y-%m-%dT%H:%M}"
        )
        self.con.execute(
            """
            INSERT INTO alerts (alert_id, kind, dedup_key, key_name, subject, metric, direction, incident_start,
                                incident_end, grain, peak_score, severity, environment, owner, detail, status,
                                opened_at, notify_count)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, 0)
            """,
            [
                alert_id, kind, dedup, key_name, _text(row.get("subject")) or key_name, metric, direction, start,
                end, _text(row.get("grain")), peak, severity, _text(row.get("environment")),
                _text(row.get("owner")), _text(row.get("detail")), _naive(now),
            ],
        ).fetchall()  # fmt: skip
        self.log(alert_id, now, "service", "opened", _text(row.get("subject")) or key_name)
        return alert_id

    def open_signal(self, signal: Mapping[str, Any], now: datetime) -> str | None:
        """Record a condition keyed on its dedup_key (budget, collector health, …): opens an alert the first
        time it is seen (even one resolved since stays: a dedup_key alerts once); later sightings update it."""
        dedup = str(signal["dedup_key"])
        found = first_row(self.con.execute("SELECT alert_id FROM alerts WHERE dedup_key = ?", [dedup]))
        end = _naive(signal.get("end") or signal["start"])
        if found is not None:
            self.con.execute(
                "UPDATE alerts SET incident_end = greatest(incident_end, ?), detail = coalesce(?, detail) "
                "WHERE alert_id = ?",
                [end, _text(signal.get("detail")), found[0]],
            ).fetchall()
            return None
        alert_id = _alert_id(dedup)
        self.con.execute(
            """
            INSERT INTO alerts (alert_id, kind, dedup_key, key_name, subject, metric, direction, incident_start,
                                incident_end, grain, peak_score, severity, environment, owner, detail, status,
                                opened_at, notify_count)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, 'open', ?, 0)
            """,
            [
                alert_id, str(signal["kind"]), dedup, _text(signal.get("key_name")), _text(signal.get("subject")),
                str(signal.get("metric") or signal["kind"]), str(signal.get("direction") or ""),
                _naive(signal["start"]), end, signal.get("peak_score"), _text(signal.get("severity")),
                _text(signal.get("environment")), _text(signal.get("owner")), _text(signal.get("detail")),
                _naive(now),
            ],
        ).fetchall()  # fmt: skip
        self.log(alert_id, now, "service", "opened", _text(signal.get("subject")))
        return alert_id

    # -- changing
    def resolve(self, alert_id: str, now: datetime, by: str, resolution: str) -> None:
        self.con.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = ?, resolved_by = ?, resolution = ? "
            "WHERE alert_id = ? AND status <> 'resolved'",
            [_naive(now), by, resolution, alert_id],
        ).fetchall()
        self.log(alert_id, now, by, "resolved", resolution)

    def queue(
        self,
        alert: Mapping[str, Any],
        channel: str,
        channel_type: str,
        action: str,
        round_: int,
        payload: Mapping[str, Any],
        notice_key: str,
        now: datetime,
    ) -> bool:
        """Put one notice in the outbox (idempotent on `notice_key`); True when it was new."""
        rows = self.con.execute(
            """
            INSERT INTO alert_notices (alert_id, channel, channel_type, action, round, kind, key_name, dedup_key,
                                       notice_key, payload, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (notice_key) DO NOTHING RETURNING notice_id
            """,
            [
                alert.get("alert_id"), channel, channel_type, action, int(round_), str(alert.get("kind")),
                _text(alert.get("key_name")), str(alert.get("dedup_key")), notice_key,
                json.dumps(payload, default=str), _naive(now),
            ],
        ).fetchall()  # fmt: skip
        return bool(rows)

    def announced(self, alert_id: str, action: str, now: datetime, channels: tuple[str, ...]) -> None:
        """Record that `action`'s notices were queued (or routed nowhere) for this alert."""
        stamp = _naive(now)
        if action == "resolve":
            self.con.execute(
                "UPDATE alerts SET resolve_notified_at = ? WHERE alert_id = ?", [stamp, alert_id]
            ).fetchall()
        else:
            self.con.execute(
                "UPDATE alerts SET notify_count = notify_count + 1, last_notified_at = ? WHERE alert_id = ?",
                [stamp, alert_id],
            ).fetchall()
        self.log(alert_id, now, "service", f"notice {action}", ", ".join(channels) or "routed to no channel")

    def log(self, alert_id: str, now: datetime, actor: str, action: str, detail: str | None = None) -> None:
        self.con.execute(
            "INSERT INTO alert_events (alert_id, happened_at, actor, action, detail) VALUES (?, ?, ?, ?, ?)",
            [alert_id, _naive(now), actor, action, detail],
        ).fetchall()


@contextlib.contextmanager
def alert_book(path: str | Path) -> Iterator[AlertBook]:
    """One transaction over the alerts and their outbox (committed when the block ends without error)."""
    with _write(path) as con:
        yield AlertBook(con)


def upsert_incidents(
    path: str | Path, incidents: pd.DataFrame, now: datetime, cooldown: timedelta = timedelta(hours=6)
) -> list[dict[str, Any]]:
    """Record detected incidents as alerts; return the alerts newly opened (as dicts, oldest first).

    Re-syncing the same incidents is idempotent: an incident already covered by an alert of the same
    key, metric and direction (its start lies inside the alert's span) only extends that alert's end
    and peak score.  An incident starting within `cooldown` after an active alert's end is merged
    into it.  Anything else opens a new alert.
    """
    if incidents is None or incidents.empty:
        return []
    opened: list[str] = []
    with alert_book(path) as book:
        for row in incidents.sort_values("start").to_dict("records"):
            alert_id = book.upsert_incident(row, now, cooldown)
            if alert_id is not None:
                opened.append(alert_id)
        if not opened:
            return []
        return _rows(book.con, "WHERE list_contains(?, alert_id) ORDER BY incident_start", [opened])


def list_alerts(path: str | Path, status: str | None = None) -> pd.DataFrame:
    """Alerts newest incident first (all, or only one status); empty frame when the state file is new."""
    if status is not None and status not in STATUSES:
        raise AlertError(f"unknown alert status {status!r}")
    with state_read(path, "alerts") as con:
        if con is None:
            return pd.DataFrame(columns=COLUMNS)
        names = {
            r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'alerts'").fetchall()
        }
        if not set(COLUMNS) <= names:  # a file of an older version, never written since: read what it has
            frame = con.execute("SELECT * FROM alerts ORDER BY incident_start DESC, alert_id").df()
            return frame.reindex(columns=COLUMNS)
        where = "WHERE status = ?" if status else ""
        sql = f"SELECT {', '.join(COLUMNS)} FROM alerts {where} ORDER BY incident_start DESC, alert_id"
        return con.execute(sql, [status] if status else []).df()


def _transition(
    path: str | Path,
    alert_id: str,
    allowed: tuple[str, ...],
    sql: str,
    params: list[Any],
    now: datetime,
    event: tuple[str, str, str],
) -> None:
    """Apply one person's action to one alert in its own transaction, and record who did what, when."""
    with _write(path) as con:
        row = first_row(con.execute("SELECT status FROM alerts WHERE alert_id = ?", [alert_id]))
        if row is None:
            raise AlertError(f"no alert {alert_id}")
        if row[0] not in allowed:
            raise AlertError(f"alert {alert_id} is {row[0]}")
        con.execute(sql, [*params, alert_id]).fetchall()
        AlertBook(con).log(alert_id, now, *event)


def _who(who: str | None, doing: str) -> str:
    who = (who or "").strip()
    if not who:
        raise AlertError(f"say who {doing} the alert")
    if len(who) > 200 or not who.isprintable():
        raise AlertError("'who' must be at most 200 printable characters on one line")
    return who


def acknowledge(path: str | Path, alert_id: str, who: str, now: datetime) -> None:
    """open → acknowledged, recording who and when (acknowledged alerts are not reminded of)."""
    who = _who(who, "acknowledges")
    _transition(
        path,
        alert_id,
        ("open",),
        "UPDATE alerts SET status = 'acknowledged', acknowledged_at = ?, acknowledged_by = ? WHERE alert_id = ?",
        [_naive(now), who],
        now,
        (who, "acknowledged", ""),
    )


def resolve(path: str | Path, alert_id: str, now: datetime, who: str | None = None) -> None:
    """open or acknowledged → resolved by a person (its recovery notice goes out at the next check)."""
    by = (who or "").strip() or "someone on the dashboard"
    _transition(
        path,
        alert_id,
        ACTIVE,
        "UPDATE alerts SET status = 'resolved', resolved_at = ?, resolved_by = ?, resolution = 'manual' "
        "WHERE alert_id = ?",
        [_naive(now), by],
        now,
        (by, "resolved", "by hand"),
    )


def snooze(path: str | Path, alert_id: str, who: str, until: datetime, now: datetime) -> None:
    """Hold an active alert's notices until `until` (a reminder or recovery due meanwhile waits for it)."""
    who = _who(who, "snoozes")
    until = _naive(until)
    if until <= _naive(now):
        raise AlertError("snooze until a time in the future")
    _transition(
        path,
        alert_id,
        ACTIVE,
        "UPDATE alerts SET snoozed_until = ?, snoozed_by = ? WHERE alert_id = ?",
        [until, who],
        now,
        (who, "snoozed", f"until {until:%Y-%m-%d %H:%M} UTC"),
    )


def alert_events(path: str | Path, alert_id: str | None = None, limit: int = 500) -> pd.DataFrame:
    """Who did what to which alert, newest first."""
    with state_read(path, "alert_events") as con:
        if con is None:
            return pd.DataFrame(columns=EVENT_COLUMNS)
        where = "WHERE alert_id = ?" if alert_id else ""
        sql = (
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM alert_events {where} "
            "ORDER BY happened_at DESC, event_id DESC LIMIT ?"
        )
        return con.execute(sql, [alert_id, limit] if alert_id else [limit]).df()


def notices(path: str | Path, limit: int = 500) -> pd.DataFrame:
    """The outbox, newest first: every notice queued, and whether it was sent."""
    with state_read(path, "alert_notices") as con:
        if con is None:
            return pd.DataFrame(columns=NOTICE_COLUMNS)
        cols = ", ".join(NOTICE_COLUMNS)
        return con.execute(f"SELECT {cols} FROM alert_notices ORDER BY notice_id DESC LIMIT ?", [limit]).df()


def pending_notices(path: str | Path, max_attempts: int) -> list[dict[str, Any]]:
    """Notices not yet sent and tried fewer than `max_attempts` times, oldest first."""
    with state_read(path, "alert_notices") as con:
        if con is None:
            return []
        result = con.execute(
            f"SELECT {', '.join(NOTICE_COLUMNS)} FROM alert_notices WHERE status = 'pending' AND attempts < ? "
            "ORDER BY notice_id",
            [int(max_attempts)],
        )
        return [dict(zip(NOTICE_COLUMNS, row, strict=True)) for row in result.fetchall()]


# A claim older than this is void even if its process id is alive again (reused): one notice's sending takes
# well under a minute (three attempts of at most a few seconds each).
CLAIM_EXPIRES = timedelta(minutes=10)


def claim_notices(path: str | Path, max_attempts: int, now: datetime, pid: int | None = None) -> list[dict[str, Any]]:
    """The pending notices this process may send now, claimed for it in one transaction (oldest first).

    A notice claimed by another live process (an `alerts check` beside `serve`) is left to it; a claim whose
    process died (killed mid-send) or that is older than CLAIM_EXPIRES is taken over, so it is sent again.
    """
    pid = os.getpid() if pid is None else pid
    stamp = _naive(now)
    with _write(path) as con:
        rows = con.execute(
            f"SELECT {', '.join(NOTICE_COLUMNS)}, claimed_by, claimed_at FROM alert_notices "
            "WHERE status = 'pending' AND attempts < ? ORDER BY notice_id",
            [int(max_attempts)],
        ).fetchall()
        mine = []
        for row in rows:
            notice = dict(zip(NOTICE_COLUMNS, row[: len(NOTICE_COLUMNS)], strict=True))
            owner, claimed_at = row[len(NOTICE_COLUMNS)], row[len(NOTICE_COLUMNS) + 1]
            held = (
                owner is not None
                and owner != pid
                and _pid_alive(int(owner))
                and claimed_at is not None
                and stamp - claimed_at < CLAIM_EXPIRES
            )
            if not held:
                mine.append(notice)
        if mine:
            con.execute(
                "UPDATE alert_notices SET claimed_by = ?, claimed_at = ? WHERE list_contains(?, notice_id)",
                [pid, stamp, [n["notice_id"] for n in mine]],
            ).fetchall()
    return mine


def mark_notice(
    path: str | Path, notice_id: int, ok: bool, attempts: int, error: str | None, now: datetime, max_attempts: int
) -> None:
    """Record one delivery run of a notice, and on its alert (first delivery, attempts, last error)."""
    stamp = _naive(now)
    with _write(path) as con:
        row = first_row(con.execute("SELECT alert_id, attempts FROM alert_notices WHERE notice_id = ?", [notice_id]))
        if row is None:
            raise AlertError(f"no notice {notice_id}")
        total = int(row[1]) + int(attempts)
        status = "sent" if ok else ("failed" if total >= max_attempts else "pending")
        con.execute(
            "UPDATE alert_notices SET status = ?, attempts = ?, last_error = ?, sent_at = ?, claimed_by = NULL, "
            "claimed_at = NULL WHERE notice_id = ?",
            [status, total, None if ok else error, stamp if ok else None, notice_id],
        ).fetchall()
        if row[0] is not None:
            con.execute(
                """
                UPDATE alerts SET delivery_attempts = delivery_attempts + ?,
                                  delivered_at = CASE WHEN ? THEN coalesce(delivered_at, ?) ELSE delivered_at END,
                                  last_error = CASE WHEN ? THEN NULL ELSE ? END
                WHERE alert_id = ?
                """,
                [int(attempts), ok, stamp, ok, error, row[0]],
            ).fetchall()


def add_mute(
    path: str | Path,
    who: str,
    now: datetime,
    *,
    reason: str = "",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    cron: str | None = None,
    duration_minutes: float | None = None,
    match: Mapping[str, str | None] | None = None,
) -> int:
    """Store a silence entered on the page: one-off (`starts_at`–`ends_at`) or recurring (`cron`, minutes)."""
    who = _who(who, "mutes")
    match = dict(match or {})
    with _write(path) as con:
        rows = con.execute(
            """
            INSERT INTO alert_mutes (created_at, created_by, reason, starts_at, ends_at, cron, duration_minutes,
                                     environment, owner, severity, kind, key_name)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING mute_id
            """,
            [
                _naive(now), who, reason, _naive(starts_at) if starts_at else None,
                _naive(ends_at) if ends_at else None, cron, duration_minutes, match.get("environment"),
                match.get("owner"), match.get("severity"), match.get("kind"), match.get("key_name"),
            ],
        ).fetchall()  # fmt: skip
    return int(rows[0][0])


def remove_mute(path: str | Path, mute_id: int, who: str, now: datetime) -> None:
    who = _who(who, "unmutes")
    with _write(path) as con:
        row = first_row(con.execute("SELECT removed_at FROM alert_mutes WHERE mute_id = ?", [int(mute_id)]))
        if row is None or row[0] is not None:
            raise AlertError(f"no active mute {mute_id}")
        con.execute(
            "UPDATE alert_mutes SET removed_at = ?, removed_by = ? WHERE mute_id = ?", [_naive(now), who, int(mute_id)]
        ).fetchall()


def list_mutes(path: str | Path, now: datetime) -> pd.DataFrame:
    """Silences entered on the page that still apply (recurring ones, and one-off ones not yet over)."""
    with state_read(path, "alert_mutes") as con:
        if con is None:
            return pd.DataFrame(columns=MUTE_COLUMNS)
        sql = (
            f"SELECT {', '.join(MUTE_COLUMNS)} FROM alert_mutes WHERE removed_at IS NULL "
            "AND (cron IS NOT NULL OR ends_at > ?) ORDER BY mute_id"
        )
        return con.execute(sql, [_naive(now)]).df()


def record_balance(path: str | Path, credits: float, as_of: datetime, who: str, now: datetime) -> None:
    """The team's prepaid credit balance as read on `as_of`, entered on the Credits page."""
    who = _who(who, "enters")
    with _write(path) as con:
        con.execute(
            "INSERT INTO prepaid_balances (credits, as_of, entered_by, entered_at) VALUES (?, ?, ?, ?)",
            [float(credits), _naive(as_of), who, _naive(now)],
        ).fetchall()


def latest_balance(path: str | Path, until: datetime | None = None) -> dict[str, Any] | None:
    """The newest balance entered (by its as-of date) at or before `until`, or None."""
    with state_read(path, "prepaid_balances") as con:
        if con is None:
            return None
        row = first_row(
            con.execute(
                "SELECT credits, as_of, entered_by, entered_at FROM prepaid_balances WHERE entered_at <= ? "
                "ORDER BY as_of DESC, entry_id DESC LIMIT 1",
                [_naive(until) if until else datetime.max],
            )
        )
    return dict(zip(("credits", "as_of", "entered_by", "entered_at"), row, strict=True)) if row else None
