"""Formatting for people: relative ages, local times, and numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd

from untrusted import markdown_text


def relative_age(moment: datetime | pd.Timestamp | None, now: datetime) -> str:
    if moment is None or pd.isna(moment):
        return "never"
    seconds = (now - pd.Timestamp(moment).to_pydatetime().replace(tzinfo=None)).total_seconds()
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def local_time(moment: datetime | pd.Timestamp | None, tz: ZoneInfo) -> str:
    if moment is None or pd.isna(moment):
        return "—"
    stamp = pd.Timestamp(moment).to_pydatetime().replace(tzinfo=UTC).astimezone(tz)
    return stamp.strftime("%Y-%m-%d %H:%M %Z")


def localize_column(series: pd.Series, tz: ZoneInfo) -> pd.Series:
    """UTC-naive timestamps from the store shown in the operator's zone."""
    return pd.to_datetime(series).dt.tz_localize("UTC").dt.tz_convert(tz)


def number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def plain(value: object, limit: int | None = 80) -> str:
    """Text from data or a URL (key names, owners, notes, who, error messages) for any element that renders
    Markdown (markdown, caption, subheader, metric, expander and tab labels, alerts, toasts): shown exactly
    as its text, on one line, cut to `limit` characters (None: not cut). The rule is `untrusted.markdown_text`,
    the same one the Markdown export uses.
    """
    return markdown_text(value, limit)
