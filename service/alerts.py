"""Alerts people act on: one check opens, resolves and announces alerts, then delivers what it queued.

The check (`collectors serve` every `[alerts] check_minutes` and after each results refresh; `python -m
analytics alerts check`, the same pass) gathers what deserves an alert — alert-worthy anomaly incidents (one per
event), budget thresholds crossed, a collector that stopped collecting — and, in one transaction on the state
file, opens alerts, auto-resolves the ones whose metric is back inside its band, and queues the notices that are
due (trigger, renotify, resolve) to the channels the routing rules pick, unless muted or snoozed. Delivery then
sends the queue (the outbox) and marks each notice; a process killed in between sends it at its next check.
Sending is HTTP or SMTP (collectors.delivery), so only the collector service and that command send: the
dashboard opens, acknowledges, snoozes and resolves alerts, and never waits on a channel.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from analytics import budgets as budget_rules
from analytics.alert_rules import (
    Match,
    MuteWindow,
    channels_for,
    due_action,
    muted_until,
    recovered,
)
from analytics.alerts import describe_incident, notifiable, render
from collectors.delivery import send
from collectors.http_client import RetryPolicy
from config import AlertSettings, ChannelConfig, Config
from service.anomalies import incidents
from service.budgets import budget_report, crossings, entered_balance
from store import Source, StoreError, reads, result_tables
from store.alert_store import ACTIVE, alert_book, claim_notices, mark_notice, upsert_incidents
from store.state_file import state_path

# Incidents ending this long before a check are still alerted: a service down for a day catches up.
LOOKBACK = timedelta(hours=48)
# A notice not yet delivered is sent again at every check (3 attempts each) until this many attempts were made;
# with the default 10-minute check that is about 1 h 40 min of retrying, and the error stays on the page.
MAX_DELIVERY_ATTEMPTS = 30
# The API's retry policy, with waits halved: a check retries a channel within seconds, then at the next check.
WEBHOOK_RETRY = RetryPolicy(max_attempts=3, scale=0.5)
PAGES = {"anomaly": "anomalies", "budget": "credits", "collector_health": "collection"}
# One pass at a time per process (serve's alert job and its results refresh both check): two deliverers in one
# process would share its claims on the outbox. Other processes are kept off by those claims.
_ONE_PASS = threading.RLock()


@dataclass(frozen=True)
class Sent:
    """One notice delivered: what `alerts check` prints, one JSON line each."""

    channel: str
    kind: str
    key_name: str | None
    dedup_key: str
    action: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "kind": self.kind,
            "key_name": self.key_name,
            "dedup_key": self.dedup_key,
            "action": self.action,
        }


@dataclass(frozen=True)
class Delivery:
    sent: tuple[Sent, ...] = ()
    failed: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Planned:
    opened: int = 0
    resolved: int = 0
    queued: int = 0


@dataclass(frozen=True)
class AlertRun:
    opened: int
    resolved: int
    queued: int
    sent: tuple[Sent, ...] = ()
    failed: int = 0
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())  # inputs that could not be read this time (the rest still ran)

    @property
    def delivered(self) -> int:
        return len(self.sent)

    def line(self) -> str:
        text = (
            f"{self.opened} new alert(s), {self.resolved} resolved, {self.queued} notice(s) queued, "
            f"{self.delivered} delivered, {self.failed} failed"
        )
        problems = sorted(set(self.errors)) + list(self.notes)
        return text + (f" ({'; '.join(problems)})" if problems else "")


# --- what deserves an alert ----------------------------------------------------------------------------


def anomaly_rows(found: pd.DataFrame, scopes: pd.DataFrame) -> pd.DataFrame:
    """Alert-worthy incidents, one per event, with each key's environment and owner and a sentence of numbers."""
    chosen = notifiable(found)
    if chosen.empty:
        return chosen
    by_key = scopes.set_index("key_name") if not scopes.empty else pd.DataFrame(columns=["environment", "owner"])
    out = chosen.copy()
    out["environment"] = out["key_name"].map(by_key["environment"]) if not by_key.empty else None
    out["owner"] = out["key_name"].map(by_key["owner"]) if not by_key.empty else None
    if {"observed", "expected"} <= set(out.columns):
        out["detail"] = [
            json.dumps(
                {"what": describe_incident(r), "observed": r["observed"], "expected": r["expected"]}, default=str
            )
            for r in out.to_dict("records")
        ]
    return out


def health_signals(db_path: Source, settings: AlertSettings, now: datetime) -> list[dict[str, Any]]:
    """A collector-health alert while no collection has succeeded for `[alerts] health_stale_minutes`."""
    if settings.health_stale is None:
        return []
    status = reads.collection_status(db_path, now)
    since = status.last_success_at or status.first_started_at
    if since is None or now - since < settings.health_stale:
        return []
    what = (
        f"no successful collection since {since:%Y-%m-%d %H:%M} UTC"
        if status.last_success_at
        else f"no collection has succeeded since the first run began at {since:%Y-%m-%d %H:%M} UTC"
    )
    last = (
        f"Last run {status.last_run_id}: {status.last_run_status} at {status.last_run_at:%Y-%m-%d %H:%M} UTC"
        + (f" ({status.last_run_message})" if status.last_run_message else "")
        if status.last_run_id is not None
        else "No run has finished."
    )
    return [
        {
            "kind": "collector_health",
            "dedup_key": f"collector_health/no_collection/{since:%Y-%m-%dT%H:%M}",
            "start": since,
            "end": now,
            "subject": "collector",
            "metric": "collection",
            "direction": "no_collection",
            "severity": "high",
            "detail": {"message": what, "last_run": last},
        }
    ]


def data_horizon(db_path: Source, scored_until: datetime) -> datetime | None:
    """Up to when the incidents' series are known: their scoring instant, but never past the last collection
    (after it the series hold no data, and no data is not 'back inside the band')."""
    mark = result_tables.data_mark(db_path)
    if mark.finished_at is None:
        return None
    return min(scored_until, mark.finished_at)


# --- the check ---------------------------------------------------------------------------------------------


def _stored_mutes(rows: Iterable[Mapping[str, Any]]) -> list[MuteWindow]:
    out = []
    for row in rows:
        match = Match(
            **{
                name: (str(row[name]),)
                for name in ("environment", "owner", "severity", "kind", "key_name")
                if row.get(name) is not None and not pd.isna(row.get(name))
            }
        )
        duration = row.get("duration_minutes")
        out.append(
            MuteWindow(
                match,
                start=row.get("starts_at"),
                end=row.get("ends_at"),
                cron=row.get("cron"),
                duration=timedelta(minutes=float(duration)) if duration is not None and not pd.isna(duration) else None,
                reason=str(row.get("reason") or ""),
                source=f"entered by {row.get('created_by')}",
            )
        )
    return out


def _link(settings: AlertSettings, alert: Mapping[str, Any]) -> str:
    page = PAGES.get(str(alert.get("kind")))
    if page is None and alert.get("key_name"):
        return f"{settings.dashboard_url}/key_detail?key={quote(str(alert['key_name']), safe='')}"
    return f"{settings.dashboard_url}/{page or 'anomalies'}"


def _resolution(
    alert: Mapping[str, Any],
    now: datetime,
    horizon: datetime | None,
    settings: AlertSettings,
    current: set[str],
    checked: frozenset[str],
) -> str | None:
    """Why an active alert resolves by itself now, or None."""
    kind = alert.get("kind") or "anomaly"
    if kind == "anomaly":
        return "recovered" if recovered(alert, horizon, settings.policy.resolve_after) else None
    if kind == "collector_health":
        return "cleared" if kind in checked and alert["dedup_key"] not in current else None
    if kind == "budget":
        month_start = datetime.combine(budget_rules.month_start(now), datetime.min.time())
        if pd.Timestamp(alert["incident_start"]) < pd.Timestamp(month_start):
            return "period_ended"
        # A higher threshold of the same scope and month crossed: this one is superseded (announced no more).
        prefix, _, mine = str(alert["dedup_key"]).rpartition("/")
        higher = [k for k in current if k.rpartition("/")[0] == prefix and _percent(k) > _percent(mine)]
        return "superseded" if higher else None
    return None


def _percent(text: str) -> float:
    try:
        return float(text.rpartition("/")[2])
    except ValueError:
        return 0.0


def plan_notices(
    state_file: str | Path,
    settings: AlertSettings,
    now: datetime,
    *,
    incident_rows: pd.DataFrame | None = None,
    signals: Sequence[Mapping[str, Any]] = (),
    horizon: datetime | None = None,
    checked: frozenset[str] = frozenset(),
) -> Planned:
    """Open, resolve and announce, in one transaction: the notices due are queued with the changes that make
    them due, so a crash after it sends them at the next check, and a crash before it leaves nothing done.

    `checked`: the kinds whose every condition `signals` holds (an alert of such a kind whose condition is
    missing from them has cleared); other kinds' alerts are only opened by it, never cleared."""
    channels = {c.name: c for c in settings.all_channels()}
    policy = settings.policy
    opened = resolved = queued = 0
    current = {str(s["dedup_key"]) for s in signals}
    with alert_book(state_file) as book:
        if incident_rows is not None and not incident_rows.empty:
            for row in incident_rows.sort_values("start").to_dict("records"):
                opened += book.upsert_incident(row, now, settings.cooldown) is not None
        for signal in signals:
            stored = {
                **signal,
                "detail": json.dumps(signal.get("detail"), default=str) if signal.get("detail") else None,
            }
            opened += book.open_signal(stored, now) is not None
        for alert in book.alerts(ACTIVE):
            why = _resolution(alert, now, horizon, settings, current, checked)
            if why is not None:
                book.resolve(alert["alert_id"], now, "service", why)
                resolved += 1
        mutes = [*policy.mutes, *_stored_mutes(book.mutes(now))]
        # With no channel configured at all nobody has been told: an alert stays unannounced until one is.
        for alert in book.to_announce() if channels else ():
            action = due_action(alert, now, policy, muted=muted_until(alert, mutes, now) is not None)
            if action is None:
                continue
            round_ = int(alert.get("notify_count") or 0) + (0 if action == "resolve" else 1)
            targets = [channels[name] for name in channels_for(alert, policy) if name in channels]
            used = []
            for channel in targets:
                if not _wants(channel, alert, action):
                    continue
                key = f"{alert['dedup_key']}|{action}|{round_}|{channel.name}"
                payload = render(channel.type, alert, action, key, _link(settings, alert))
                queued += book.queue(alert, channel.name, channel.type, action, round_, payload, key, now)
                used.append(channel.name)
            book.announced(alert["alert_id"], action, now, tuple(used))
    return Planned(opened, resolved, queued)


def _wants(channel: ChannelConfig, alert: Mapping[str, Any], action: str) -> bool:
    """PagerDuty escalates by itself (no reminders), but must hear every resolve; a budget period's end is news
    to PagerDuty only."""
    if action == "renotify" and channel.stateful:
        return False
    return not (action == "resolve" and alert.get("kind") == "budget" and not channel.stateful)


def deliver_pending(
    state_file: str | Path, settings: AlertSettings, now: datetime, retry: RetryPolicy | None = None
) -> Delivery:
    """Send every queued notice not yet delivered; each outcome is recorded on the notice and its alert, and a
    failed one is tried again at the next check, up to MAX_DELIVERY_ATTEMPTS."""
    with _ONE_PASS:
        return _deliver(state_file, settings, now, retry)


def _deliver(state_file: str | Path, settings: AlertSettings, now: datetime, retry: RetryPolicy | None) -> Delivery:
    channels = {c.name: c for c in settings.all_channels()}
    sent: list[Sent] = []
    failed = 0
    errors: list[str] = []
    for notice in claim_notices(state_file, MAX_DELIVERY_ATTEMPTS, now):
        channel = channels.get(notice["channel"])
        if channel is None:
            ok, attempts, error = False, MAX_DELIVERY_ATTEMPTS, f"channel {notice['channel']} is no longer configured"
        else:
            outcome = send(channel, json.loads(notice["payload"]), notice["notice_key"], retry or WEBHOOK_RETRY)
            ok, attempts, error = outcome.ok, outcome.attempts, outcome.error
        mark_notice(state_file, notice["notice_id"], ok, attempts, error, now, MAX_DELIVERY_ATTEMPTS)
        if ok:
            sent.append(
                Sent(notice["channel"], notice["kind"], notice["key_name"], notice["dedup_key"], notice["action"])
            )
        else:
            failed += 1
            errors.append(f"{notice['channel']}: {error}")
    return Delivery(tuple(sent), failed, tuple(errors))


def check_alerts(
    db_path: str | Path,
    config: Config,
    now: datetime,
    lookback: timedelta = LOOKBACK,
    retry: RetryPolicy | None = None,
) -> AlertRun:
    """One detection-and-delivery pass as of `now`: alerts for the alert-worthy incidents ending in the last
    `lookback` (the stored ones when they stand for `now`), budget crossings and collector health; notices
    queued and sent. Raises StoreError for an unreadable database or state file."""
    with _ONE_PASS:
        return _check(db_path, config, now, lookback, retry)


def _check(
    db_path: str | Path, config: Config, now: datetime, lookback: timedelta, retry: RetryPolicy | None
) -> AlertRun:
    state_file = state_path(db_path)
    settings = config.alerts
    scopes = reads.key_scopes(db_path)
    found = incidents(db_path, now, since=now - lookback)
    rows = anomaly_rows(found.frame, scopes)
    notes: list[str] = []
    signals: list[dict[str, Any]] = []
    if config.budgets.configured:
        try:
            report = budget_report(db_path, config.budgets, now, entered_balance(db_path, now))
            signals += crossings(report, config.budgets)
        except StoreError as exc:  # the state file's balance unreadable: anomalies still alert
            notes.append(f"budgets not checked: {exc}")
    signals += health_signals(db_path, settings, now)
    planned = plan_notices(
        state_file,
        settings,
        now,
        incident_rows=rows,
        signals=signals,
        horizon=data_horizon(db_path, found.provenance.as_of),
        checked=frozenset({"collector_health"}),
    )
    delivery = deliver_pending(state_file, settings, now, retry)
    return AlertRun(
        planned.opened, planned.resolved, planned.queued, delivery.sent, delivery.failed, delivery.errors, tuple(notes)
    )


# --- for the dashboard and other use cases -----------------------------------------------------------------


def open_alerts(state_file: str | Path, found: pd.DataFrame, now: datetime, cooldown: timedelta) -> int:
    """Record incidents as alerts (idempotent, cooldown-merged); the next check announces them. Returns how many
    opened."""
    return len(upsert_incidents(state_file, found, now, cooldown))


def raise_alert(
    db_path: str | Path,
    kind: str,
    key_name: str | None,
    what: str,
    since: datetime,
    now: datetime,
    *,
    severity: str = "high",
    detail: Mapping[str, Any] | None = None,
    environment: str | None = None,
    owner: str | None = None,
) -> bool:
    """Open an alert of `kind` (e.g. a failing smoke check) for `key_name` about `what` (e.g. "success_path");
    the next check routes and announces it like any other. Idempotent per (kind, key, what, since). True when
    it opened."""
    signal = {
        "kind": kind,
        "dedup_key": f"{kind}/{key_name or '-'}/{what}/{since:%Y-%m-%dT%H:%M}",
        "start": since,
        "end": now,
        "key_name": key_name,
        "subject": f"{key_name or kind} {what}".strip(),
        "metric": kind,
        "direction": what,
        "severity": severity,
        "environment": environment,
        "owner": owner,
        "detail": json.dumps(dict(detail), default=str) if detail else None,
    }
    with alert_book(state_path(db_path)) as book:
        return book.open_signal(signal, now) is not None


def clear_alerts(db_path: str | Path, kind: str, key_name: str | None, what: str, now: datetime) -> int:
    """Resolve the active alerts of `kind` for `key_name` about `what` (the condition passed: e.g. the smoke check
    succeeded again); their recovery notices go out at the next check. Returns how many resolved."""
    with alert_book(state_path(db_path)) as book:
        hits = [
            a for a in book.alerts(ACTIVE) if a["kind"] == kind and a["key_name"] == key_name and a["direction"] == what
        ]
        for alert in hits:
            book.resolve(alert["alert_id"], now, "service", "cleared")
    return len(hits)
