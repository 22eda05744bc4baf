"""Alerts from incidents: open them in the dashboard's state file, and post the undelivered ones.

Posting is HTTP, so it runs only in the collector service's jobs (collectors.http_client, one retry policy):
the dashboard opens, acknowledges and resolves alerts, and never waits on a webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from analytics.alerts import slack_payload
from collectors.http_client import RetryPolicy, post_json
from config import AlertSettings
from service.anomalies import incidents
from store.alert_store import mark_delivery, undelivered, upsert_incidents
from store.state_file import state_path

# Incidents ending this long before a check are still alerted: a service down for a day catches up.
LOOKBACK = timedelta(hours=48)
# An undelivered alert is posted again at every check until this many attempts were made.
MAX_DELIVERY_ATTEMPTS = 30


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
    state_file: str | Path, webhook: str | None, now: datetime, retry: RetryPolicy | None = None
) -> tuple[int, int, tuple[str, ...]]:
    """Post every active alert not yet delivered; each outcome is recorded on its alert."""
    if not webhook:
        return 0, 0, ()
    delivered = failed = 0
    errors: list[str] = []
    for alert in undelivered(state_file, MAX_DELIVERY_ATTEMPTS):
        outcome = post_json(webhook, slack_payload(alert), retry)
        mark_delivery(state_file, alert["alert_id"], outcome.ok, outcome.attempts, outcome.error, now)
        delivered, failed = delivered + outcome.ok, failed + (not outcome.ok)
        if outcome.error:
            errors.append(outcome.error)
    return delivered, failed, tuple(errors)


def check_alerts(
    db_path: str | Path,
    settings: AlertSettings,
    now: datetime,
    lookback: timedelta = LOOKBACK,
    retry: RetryPolicy | None = None,
) -> AlertRun:
    """Open alerts for the incidents ending in the last `lookback` (the stored ones when they stand for `now`)
    and post every undelivered alert. Raises StoreError for an unreadable database."""
    state_file = state_path(db_path)
    found = incidents(db_path, now, since=now - lookback).frame
    opened = open_alerts(state_file, found, now, settings.cooldown)
    delivered, failed, errors = deliver_pending(state_file, settings.webhook_url(), now, retry)
    return AlertRun(opened, delivered, failed, errors)
