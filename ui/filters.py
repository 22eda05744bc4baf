"""The shared sidebar: time range, environment filter and display time zone, kept across pages."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import streamlit as st

RANGES = {"Last 7 days": 7, "Last 14 days": 14, "Last 30 days": 30, "Last 90 days": 90}
ENVIRONMENTS = ["prod", "staging", "dev"]


@dataclass(frozen=True)
class Filters:
    start: date
    end: date
    environments: list[str]
    tz: ZoneInfo

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous_period(self) -> tuple[date, date]:
        return self.start - timedelta(days=self.days), self.start - timedelta(days=1)


def utc_now() -> datetime:
    """Wall time in UTC, unless RBV_NOW pins it (tests, or replaying a frozen stand-in world)."""
    pinned = os.environ.get("RBV_NOW")
    if pinned:
        try:
            moment = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
            return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
        except ValueError:
            pass
    return datetime.now(UTC).replace(tzinfo=None)


@cache
def _zones() -> list[str]:
    return sorted(available_timezones())  # reads the tz database's folders: once per process, not per rerun


def sidebar_filters() -> Filters:
    """Draw the sidebar once per run; widget keys keep the choice as the operator moves between pages."""
    today = utc_now().date()
    with st.sidebar:
        st.header("Filters")
        choice = st.selectbox("Time range", [*RANGES, "Custom"], index=2, key="range_choice")
        if choice == "Custom":
            picked = st.date_input(
                "From – to (UTC days)", value=(today - timedelta(days=29), today), max_value=today, key="range_custom"
            )
            if isinstance(picked, tuple) and len(picked) == 2:
                start, end = picked
            else:
                st.caption("Pick an end date too; showing the start day only.")
                start = end = picked[0] if isinstance(picked, tuple) else picked
        else:
            start, end = today - timedelta(days=RANGES[choice] - 1), today
        envs = st.multiselect(
            "Environments", ENVIRONMENTS, default=ENVIRONMENTS, key="env_filter", help="Empty means all environments."
        )
        zones = _zones()
        tz_name = st.selectbox(
            "Show times in", zones, index=zones.index("UTC") if "UTC" in zones else 0, key="tz_choice"
        )
    return Filters(start=start, end=end, environments=list(envs) or list(ENVIRONMENTS), tz=ZoneInfo(tz_name))
