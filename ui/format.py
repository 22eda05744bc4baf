"""Formatting for people on the pages: the one visual language (`formatting`) plus what only a screen needs
(relative ages, escaped text from data)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

from formatting import count, credits, day, day_span, label, moment, number, percent, signed  # noqa: F401
from untrusted import markdown_text


def relative_age(moment_: datetime | pd.Timestamp | None, now: datetime) -> str:
    """'3 h ago': on screen only, beside the absolute time (exports carry the absolute time)."""
    if moment_ is None or pd.isna(moment_):
        return "never"
    seconds = (now - pd.Timestamp(moment_).to_pydatetime().replace(tzinfo=None)).total_seconds()
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def local_time(value: datetime | pd.Timestamp | None, tz: ZoneInfo) -> str:
    """A stored UTC instant in the operator's zone, in the one time format ('2026-11-20 13:00 CET')."""
    return moment(value, tz)


def local_times(values: pd.Series, tz: ZoneInfo) -> pd.Series:
    return values.map(lambda t: moment(t, tz))


def localize_column(series: pd.Series, tz: ZoneInfo) -> pd.Series:
    """UTC-naive timestamps from the store shown in the operator's zone, in the one time format."""
    return local_times(series, tz)


def plain(value: object, limit: int | None = 80) -> str:
    """Text from data or a URL (key names, owners, notes, who, error messages) for any element that renders
    Markdown (markdown, caption, subheader, metric, expander and tab labels, alerts, toasts): shown exactly
    as its text, on one line, cut to `limit` characters (None: not cut). The rule is `untrusted.markdown_text`,
    the same one the Markdown export uses.
    """
    return markdown_text(value, limit)
