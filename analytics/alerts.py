"""Alert messages: the Slack-compatible webhook payload an alert is posted as (service.alerts posts it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd


def _when(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "?"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")


def slack_payload(alert: Mapping[str, Any]) -> dict[str, str]:
    """`{"text": ...}` naming the key, metric, direction, incident start and peak score."""
    peak = alert.get("peak_score")
    peak_text = "?" if peak is None or pd.isna(peak) else f"{float(peak):.2f}"
    direction = str(alert.get("direction", "?"))
    arrow = {"up": "spike", "down": "drop"}.get(direction, direction)
    text = (
        f":rotating_light: Anomaly on key *{alert.get('key_name', '?')}*: {alert.get('metric', '?')} "
        f"{arrow} ({direction}) since {_when(alert.get('incident_start', alert.get('start')))}, "
        f"peak score {peak_text}"
    )
    return {"text": text}
