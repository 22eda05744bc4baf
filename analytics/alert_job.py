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
from store.alert_store import mark_delivery, upsert_incidents
from store.state_file import state_path

# Incidents ending this long before a check are still alerted: a service down for a day catches up.
LOOKBACK = timedelta(hours=48)


@dataclass(frozen=True)
class AlertRun:
    opened: int
    delivered: int
    failed: int

    def line(self) -> str:
        return f"{self.opened} new alert(s), {self.delivered} delivered, {self.failed} failed"


def open_and_deliver(
    state_file: str | Path, incidents: pd.DataFrame, now: datetime, cooldown: timedelta, webhook: str | None
) -> AlertRun:
    """Record `incidents` as alerts (idempotent, cooldown-merged) and post each newly opened one."""
    opened = upsert_incidents(state_file, incidents, now, cooldown)
    delivered = failed = 0
    for alert in opened if webhook else []:
        ok, attempts, error = deliver(webhook, slack_payload(alert))
        mark_delivery(state_file, alert["alert_id"], ok, attempts, error, now)
        delivered, failed = delivered + ok, failed + (not ok)
    return AlertRun(len(opened), delivered, failed)


def check_alerts(
    db_path: str | Path, sections: Mapping[str, Any], now: datetime, lookback: timedelta = LOOKBACK
) -> AlertRun:
    """Detect over the collected history (`now` naive UTC) and alert on incidents ending in the last `lookback`.

    Raises ValueError for a bad `[alerts]` table and StoreError for an unreadable database.
    """
    cooldown = cooldown_from_config(sections)
    webhook = webhook_url_from_config(sections)
    incidents = notifiable(incidents_for(db_path, now, since=now - lookback))
    return open_and_deliver(state_path(db_path), incidents, now, cooldown, webhook)


def notifiable(incidents: pd.DataFrame) -> pd.DataFrame:
    """The alert-worthy incidents, one per event: an outage that drops calls and credits together is one notice."""
    if incidents.empty:
        return incidents
    worthy = incidents[incidents["alert_worthy"].astype(bool)]
    return worthy.sort_values("peak_score", ascending=False).drop_duplicates("event").sort_values("start")
