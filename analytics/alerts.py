"""Alert messages and which incidents deserve one: the Slack-compatible payload an alert is posted as
(service.alerts posts it through collectors.http_client) and the alert-worthy incidents, one per event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def _when(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "?"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")


def _slack_text(value: Any) -> str:
    """A value as Slack message text: `<…>` (links, @channel mentions) and `&` escaped as Slack asks."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Mapping[str, Any]) -> dict[str, str]:
    """`{"text": ...}` naming the key, metric, direction, incident start and peak score."""
    if alert.get("metric") == "smoke_check":  # a failing smoke check (service.smoke), not a detector incident
        path = _slack_text(str(alert.get("direction", "?")).replace("_", " "))
        return {
            "text": f":x: Smoke check failed on key *{_slack_text(alert.get('key_name', '?'))}*: the {path} "
            f"since {_when(alert.get('incident_start', alert.get('start')))} (details on the key's page)"
        }
    peak = alert.get("peak_score")
    peak_text = "?" if peak is None or pd.isna(peak) else f"{float(peak):.2f}"
    direction = _slack_text(alert.get("direction", "?"))
    arrow = {"up": "spike", "down": "drop"}.get(direction, direction)
    text = (
        f":rotating_light: Anomaly on key *{_slack_text(alert.get('key_name', '?'))}*: "
        f"{_slack_text(alert.get('metric', '?'))} "
        f"{arrow} ({direction}) since {_when(alert.get('incident_start', alert.get('start')))}, "
        f"peak score {peak_text}"
    )
    return {"text": text}


def notifiable(incidents: pd.DataFrame) -> pd.DataFrame:
    """The alert-worthy incidents, one per event: an outage that drops calls and credits together is one notice."""
    if incidents.empty:
        return incidents
    worthy = incidents[incidents["alert_worthy"].astype(bool)] if "alert_worthy" in incidents else incidents
    if "event" not in worthy:
        return worthy.sort_values("start")
    return worthy.sort_values("peak_score", ascending=False).drop_duplicates("event").sort_values("start")
