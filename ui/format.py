"""Formatting for people: relative ages, local times, and numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd


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


# Inline markdown that can act mid-sentence: emphasis, code, links/images, HTML, math, strikethrough,
# tables and Streamlit's `:color[...]` / `:material/icon:` directives.  (Line-start syntax such as
# `#`, `-` or `1.` cannot act: the text is one line inside a sentence.)
_MARKDOWN_SPECIAL = "\\`*_[]<>$~|:"


def plain(value: object, limit: int = 80) -> str:
    """Untrusted text (a URL parameter, a file's content) shown literally in markdown: escaped, one line, cut."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(value)).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)
