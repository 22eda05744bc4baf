"""Opens alerts for detected incidents and posts new ones to the webhook (the page button and the service check)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from analytics.alerts import cooldown_from_config, deliver, slack_payload, webhook_url_from_config
from analytics.cli_anomalies import incidents_for
from store.alert_store import mark_delivery, undelivered, upsert_incidents
from store.state_file import state_path

# Incidents ending this long before a check are still alerted: a service down for a day catches up.
LOOKBACK = timedelta(hours=48)
# An undelivered alert is posted again at every check (3 attempts each) until this many attempts were made;
# with the default 10-minute check that is about 1 h 40 min of retrying, and the error stays on the page.
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


def open_and_deliver(
    state_file: str | Path,
    incidents: pd.DataFrame,
    now: datetime,
    cooldown: timedelta,
    webhook: str | None,
    undeliverable: str | None = None,
) -> AlertRun:
    """Record `incidents` as alerts (idempotent, cooldown-merged), then post every active alert not yet delivered.

    A delivery that fails, or cannot even be attempted (a bad URL), is recorded on the alert (its last error
    is shown on the Anomalies page) and tried again at the next check, up to MAX_DELIVERY_ATTEMPTS.
    `undeliverable` says why the configured webhook cannot be posted to at all: pending alerts record it.
    """
    opened = upsert_incidents(state_file, incidents, now, cooldown)
    delivered = failed = 0
    errors: list[str] = []
    for alert in undelivered(state_file, MAX_DELIVERY_ATTEMPTS) if webhook or undeliverable else []:
        if webhook is None:
            ok, attempts, error = False, 0, undeliverable
        else:
            ok, attempts, error = deliver(webhook, slack_payload(alert))
        mark_delivery(state_file, alert["alert_id"], ok, attempts, error, now)
        delivered, failed = delivered + ok, failed + (not ok)
        if error:
            errors.append(error)
    return AlertRun(len(opened), delivered, failed, tuple(errors))


def check_alerts(
    db_path: str | Path, sections: Mapping[str, Any], now: datetime, lookback: timedelta = LOOKBACK
) -> AlertRun:
    """Detect over the collected history (`now` naive UTC) and alert on incidents ending in the last `lookback`.

    A webhook URL that cannot be posted to does not stop alerts from opening: each records why it was not
    sent, and is sent once the URL is fixed. Raises ValueError for a bad `[alerts]` table (other than the
    URL) and StoreError for an unreadable database.
    """
    cooldown = cooldown_from_config(sections)
    try:
        webhook, undeliverable = webhook_url_from_config(sections), None
    except ValueError as exc:  # the message names the variable, never the URL
        webhook, undeliverable = None, str(exc)
    incidents = notifiable(incidents_for(db_path, now, since=now - lookback))
    return open_and_deliver(state_path(db_path), incidents, now, cooldown, webhook, undeliverable)


def notifiable(incidents: pd.DataFrame) -> pd.DataFrame:
    """The alert-worthy incidents, one per event: an outage that drops calls and credits together is one notice."""
    if incidents.empty:
        return incidents
    worthy = incidents[incidents["alert_worthy"].astype(bool)]
    return worthy.sort_values("peak_score", ascending=False).drop_duplicates("event").sort_values("start")
