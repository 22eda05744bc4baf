"""Alerts from incidents: open them in the dashboard's state file, and post the undelivered ones.

Posting is HTTP, so it runs only in the collector service's jobs (collectors.http_client, one retry policy):
the dashboard opens, acknowledges and resolves alerts, and never waits on a webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from analytics.alerts import notifiable, slack_payload
from collectors.http_client import RetryPolicy, post_json
from config import AlertSettings
from service.anomalies import incidents
from store.alert_store import mark_delivery, undelivered, upsert_incidents
from store.state_file import state_path

# Incidents ending this long before a check are still alerted: a service down for a day catches up.
LOOKBACK = timedelta(hours=48)
# An undelivered alert is posted again at every check (3 attempts each) until this many attempts were made;
# with the default 10-minute check that is about 1 h 40 min of retrying, and the error stays on the page.
MAX_DELIVERY_ATTEMPTS = 30
# The API's retry policy, with waits halved: a check retries a webhook within seconds, then at the next check.
WEBHOOK_RETRY = RetryPolicy(max_attempts=3, scale=0.5)


@dataclass(frozen=True)
class AlertRun:
    opened: int
    delivered: int
    failed: int
    errors: tuple[str, ...] = ()

    def line(self) -> str:
        text = f"{self.opened} new alert(s), {self.delivered} delivered, {self.failed} failed"
        return text + (f" ({'; '.join(sorted(set(self.errors)))})" if self.errors else "")


def open_alerts(state_file: str | Path, found: pd.DataFrame, now: datetime, cooldown: timedelta) -> int:
    """Record incidents as alerts (idempotent, cooldown-merged); the service posts them. Returns how many opened."""
    return len(upsert_incidents(state_file, found, now, cooldown))


def deliver_pending(
    state_file: str | Path,
    webhook: str | None,
    now: datetime,
    retry: RetryPolicy | None = None,
    undeliverable: str | None = None,
) -> tuple[int, int, tuple[str, ...]]:
    """Post every active alert not yet delivered; each outcome is recorded on its alert (shown on the page),
    and a failed one is tried again at the next check, up to MAX_DELIVERY_ATTEMPTS. `undeliverable` says why
    the configured webhook cannot be posted to at all: pending alerts record it, nothing is sent."""
    if not webhook and not undeliverable:
        return 0, 0, ()
    delivered = failed = 0
    errors: list[str] = []
    for alert in undelivered(state_file, MAX_DELIVERY_ATTEMPTS):
        if webhook is None:
            ok, attempts, error = False, 0, undeliverable
        else:
            outcome = post_json(webhook, slack_payload(alert), retry or WEBHOOK_RETRY)
            ok, attempts, error = outcome.ok, outcome.attempts, outcome.error
        mark_delivery(state_file, alert["alert_id"], ok, attempts, error, now)
        delivered, failed = delivered + ok, failed + (not ok)
        if error:
            errors.append(error)
    return delivered, failed, tuple(errors)


def check_alerts(
    db_path: str | Path,
    settings: AlertSettings,
    now: datetime,
    lookback: timedelta = LOOKBACK,
    retry: RetryPolicy | None = None,
) -> AlertRun:
    """Open alerts for the alert-worthy incidents ending in the last `lookback` (the stored ones when they stand
    for `now`), one per event, and post every undelivered alert.

    A webhook URL that cannot be posted to does not stop alerts from opening: each records why it was not
    sent, and is sent once the URL is fixed. Raises StoreError for an unreadable database.
    """
    state_file = state_path(db_path)
    try:
        webhook, undeliverable = settings.webhook_url(), None
    except ValueError as exc:  # the message names the variable, never the URL
        webhook, undeliverable = None, str(exc)
    found = notifiable(incidents(db_path, now, since=now - lookback).frame)
    opened = open_alerts(state_file, found, now, settings.cooldown)
    delivered, failed, errors = deliver_pending(state_file, webhook, now, retry, undeliverable)
    return AlertRun(opened, delivered, failed, errors)
