"""The one visual language of every page and export: numbers, times, column labels, colours and the Altair theme.

A leaf: pages (through ui.format and ui.charts), the weekly report's renderer and the CSV exports all format
with these functions, so a number, a time or a column reads the same wherever it appears. Altair is imported
only by `register_theme` (the collector and the command lines format text without loading a chart library).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

# --- numbers ------------------------------------------------------------------------------------------

MINUS = "\u2212"  # a real minus sign: a hyphen reads as a dash beside a number
NOTHING = "—"  # no value (unknown, or not applicable), never "0"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def number(value: Any, digits: int = 0) -> str:
    """1234.5 → '1,235' (digits=0) or '1,234.50' (digits=2); None/NaN → '—'."""
    if _missing(value):
        return NOTHING
    return f"{float(value):,.{digits}f}".replace("-", MINUS)


def count(value: Any) -> str:
    return number(value, 0)


def credits(value: Any) -> str:
    """Credits always carry two decimals (the vendor bills fractions of a credit)."""
    return number(value, 2)


def signed(value: Any, digits: int = 0, minus: str = MINUS) -> str:
    """A change: '+1,234', '−56', '0'. Streamlit's metric reads the sign of its delta text, so it is given
    `minus="-"`."""
    if _missing(value):
        return NOTHING
    if round(float(value), digits) == 0:
        return number(0, digits)
    return f"{float(value):+,.{digits}f}".replace("-", minus)


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 day', '29 days', '1,204 keys'."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def percent(fraction: Any, digits: int = 0, sign: bool = False) -> str:
    """0.153 → '15 %'; with `sign`, '+15 %'. NaN or infinite → '—'."""
    if _missing(fraction) or math.isinf(float(fraction)):
        return NOTHING
    text = f"{float(fraction) * 100:{'+' if sign else ''},.{digits}f}".replace("-", MINUS)
    return f"{text} %"


# --- times --------------------------------------------------------------------------------------------

TIME_FORMAT = "%Y-%m-%d %H:%M %Z"  # one format everywhere, always with its zone
DAY_FORMAT = "%Y-%m-%d"
UTC_ZONE = ZoneInfo("UTC")


def moment(value: Any, tz: ZoneInfo = UTC_ZONE) -> str:
    """A stored instant (UTC, naive or aware) in `tz`: '2026-11-20 13:00 CET'; missing → '—'."""
    if _missing(value):
        return NOTHING
    stamp = pd.Timestamp(value).to_pydatetime()
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
    return stamp.astimezone(tz).strftime(TIME_FORMAT)


def day(value: date | datetime | Any) -> str:
    if _missing(value):
        return NOTHING
    return pd.Timestamp(value).strftime(DAY_FORMAT)


def day_span(start: date, end: date) -> str:
    """'2026-10-22 – 2026-11-20' (inclusive days), or one day."""
    return day(start) if start == end else f"{day(start)} – {day(end)}"


def zone_name(tz: ZoneInfo) -> str:
    return str(tz.key) if hasattr(tz, "key") else str(tz)


def wall_time(values: pd.Series, tz: ZoneInfo) -> pd.Series:
    """Stored UTC instants as naive wall-clock times in `tz`, for charts drawn on a UTC scale: the axis then
    shows the operator's zone whatever zone the viewing browser is in."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    return stamps.dt.tz_convert(tz).dt.tz_localize(None)


# --- column labels ------------------------------------------------------------------------------------

# Stored and computed column names as people read them; anything not listed is de-snake-cased.
LABELS = {
    "key_name": "Key",
    "key": "Key",
    "masked_key": "Masked key",
    "environment": "Environment",
    "owner": "Owner",
    "finding": "Finding",
    "findings": "Findings",
    "detail": "Details",
    "why": "Why",
    "since": "Since",
    "created_at": "Created",
    "rotated_at": "Rotated",
    "last_used_at": "Last used",
    "first_event_at": "First event",
    "last_event_at": "Last event",
    "covered_since": "Events covered since",
    "gap_start": "Gap from",
    "gap_end": "Gap to",
    "gap_minutes": "Gap (minutes)",
    "gaps": "Gaps",
    "detected_at": "Detected",
    "calls": "Calls",
    "jobs": "Jobs",
    "failed": "Failed jobs",
    "failed_jobs": "Failed jobs",
    "credits": "Credits",
    "calls_7d": "Calls, 7 days",
    "calls_30d": "Calls, 30 days",
    "job_id": "Job",
    "request_id": "Request id",
    "request_ids": "Request ids",
    "event_id": "Event",
    "occurred_at": "When",
    "status": "Status",
    "status_code": "HTTP status",
    "billing_status": "Billing",
    "model": "Model",
    "output_format": "Format",
    "duration_seconds": "Duration (s)",
    "credits_charged": "Credits charged",
    "output_url": "Output",
    "error": "Error",
    "progress": "Progress",
    "category": "Category",
    "day": "Day",
    "expected_credits": "Expected credits",
    "charged_credits": "Charged credits",
    "delta": "Difference",
    "refund_due": "Refund due",
    "pricing_source": "Pricing",
    "observed_at": "Observed",
    "run_id": "Run",
    "started_at": "Started",
    "finished_at": "Finished",
    "mode": "Mode",
    "endpoints": "Endpoints",
    "endpoint": "Endpoint",
    "keys_total": "Keys",
    "keys_ok": "Keys OK",
    "requests": "Requests",
    "retries": "Retries",
    "rows_written": "Rows written",
    "message": "Message",
    "error_code": "Error code",
    "attempts": "Attempts",
    "quarantine_id": "Record",
    "fetched_at": "Fetched",
    "reason": "Reason",
    "record": "Record as received",
    "refresh_id": "Refresh",
    "as_of": "As of",
    "data_run_id": "From run",
    "seconds": "Seconds",
    "cpu_seconds": "CPU seconds",
    "metric": "Metric",
    "direction": "Direction",
    "severity": "Severity",
    "grain": "Grain",
    "start": "From",
    "end": "To",
    "peak_score": "Peak score",
    "alert_worthy": "Alert-worthy",
    "event": "Event",
    "current": "This period",
    "previous": "Previous period",
    "change": "Change",
    "change_pct": "Change %",
}


def label(column: str) -> str:
    """A column name as a heading: LABELS, else 'snake_case' → 'Snake case'."""
    if column in LABELS:
        return LABELS[column]
    text = str(column).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def for_export(frame: pd.DataFrame, tz: ZoneInfo = UTC_ZONE, times: tuple[str, ...] = ()) -> pd.DataFrame:
    """A table as a download: human headings and instants in the one time format (never '3 h ago'); numbers
    stay numbers (no separators) so a spreadsheet can add them up."""
    out = frame.copy()
    for column in out.columns:
        if column in times or pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].map(lambda t: moment(t, tz) if not _missing(t) else "")
    return out.rename(columns={c: label(c) for c in out.columns})


# --- what a change means ------------------------------------------------------------------------------

# A rise in these is bad news; a rise in anything else (calls, jobs) is neither good nor bad.
WORSE_WHEN_UP = frozenset(
    {"failed", "failed_jobs", "credits", "refunds_due", "refund_due", "net_difference", "discrepancies", "findings"}
)


def delta_color(metric: str) -> str:
    """Streamlit's metric colour for a change of `metric`: a rise in failures or credits is red, never green;
    volume is grey."""
    return "inverse" if metric in WORSE_WHEN_UP else "off"


# --- colours and the chart theme ----------------------------------------------------------------------

COLORS = {
    "observed": "#1f4e8c",  # the measured series
    "expected": "#9db7d5",  # the expected band
    "flagged": "#c2261d",  # points the detector flagged
    "gap": "#d9d9d9",  # spans nobody collected
    "partial": "#8aa4c2",  # the day (or hour) still in progress
    "worse": "#c2261d",
    "better": "#2f855a",
    "neutral": "#6b7280",
    "failed": "#c2261d",
}
SEVERITY_ORDER = ("high", "medium", "low")
SEVERITY_COLORS = {"high": "#b42318", "medium": "#f79009", "low": "#fedf89", "none": "#f2f4f7"}
ENVIRONMENT_ORDER = ("prod", "staging", "dev")
ENVIRONMENT_COLORS = {"prod": "#1f4e8c", "staging": "#7a5af8", "dev": "#12b76a"}
# Categorical series (keys, models): distinguishable, none of them the "flagged" red.
CATEGORY_PALETTE = [
    "#1f4e8c", "#53b1fd", "#7a5af8", "#12b76a", "#f79009", "#ee46bc", "#0e9384", "#a48d7d", "#98a2b3", "#6172f3",
]  # fmt: skip
FONT = '"Source Sans Pro", "Source Sans 3", -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif'
THEME = "rbv"


def theme() -> dict[str, Any]:
    """Quiet axes, one font, one palette; tooltips and text in the one time format (an Altair theme)."""
    axis = {
        "labelColor": "#475467",
        "titleColor": "#344054",
        "titleFontWeight": 600,
        "gridColor": "#eaecf0",
        "domainColor": "#d0d5dd",
        "tickColor": "#d0d5dd",
        "labelFontSize": 12,
        "titleFontSize": 12,
    }
    return {
        "config": {
            "font": FONT,
            "background": "white",
            "view": {"stroke": None},
            "axis": axis,
            "legend": {"labelColor": "#344054", "titleColor": "#344054", "labelFontSize": 12, "titleFontSize": 12},
            "range": {"category": CATEGORY_PALETTE},
            "line": {"strokeWidth": 2},
            "timeFormat": "%Y-%m-%d %H:%M",
            "numberFormat": ",.4~f",
        }
    }


def register_theme() -> None:
    """Register and enable the one theme, once per process (the dashboard and the report renderer call it;
    calling it again changes nothing)."""
    import altair as alt

    if THEME not in alt.theme.names():
        alt.theme.register(THEME, enable=True)(lambda: alt.theme.ThemeConfig(**theme()))
    elif alt.theme.active != THEME:
        alt.theme.enable(THEME)
