"""The "how fresh is this" strip every page shows above its content."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import streamlit as st

from store import reads
from ui.data import read
from ui.format import local_time, plain, relative_age

# What an unreadable endpoint means for the numbers on every page.
_CONSEQUENCE = {
    "pricing": "expected credits use fallback rates, named on the Credits page",
    "summary": "daily totals are not updated",
    "events": "recent calls and last-used times are not updated",
    "jobs": "jobs and credits are not updated",
    "admin": "the key inventory is not updated",
}


def unreadable_text(items: tuple[reads.Unreadable, ...], tz: ZoneInfo) -> str:
    """One sentence per endpoint the vendor's answers could not be read from, and since when."""
    parts = []
    for item in items:
        scope = "" if item.keys == 1 and item.endpoint in ("pricing", "admin") else f" for {item.keys} key(s)"
        consequence = _CONSEQUENCE.get(item.endpoint, "its data is not updated")
        parts.append(
            f"**{plain(item.endpoint)} unreadable**{scope} since {local_time(item.since, tz)}: "
            f"its records were quarantined, so {consequence}"
        )
    return "; ".join(parts) + " — see Collection health." if parts else ""


def freshness_banner(db_path: object, now: datetime, tz: ZoneInfo, demo: bool = False) -> reads.Freshness:
    info = read(reads.freshness, db_path)
    parts = []
    if demo:
        parts.append("**Demo data** from the stand-in API")
    if info.last_success_at is None:
        parts.append("no successful collection yet")
    else:
        parts.append(f"Data as of {local_time(info.last_success_at, tz)} ({relative_age(info.last_success_at, now)})")
    if info.last_run_status and info.last_run_status != "ok":
        parts.append(f"last run **{info.last_run_status}** ({info.failed_items_last_run} key/endpoint failures)")
    if info.coverage_gaps:
        parts.append(f"{info.coverage_gaps} event coverage gap(s)")
    if info.quarantined:
        parts.append(f"{info.quarantined} quarantined record(s)")
    if info.unreadable:
        parts.append(unreadable_text(info.unreadable, tz))
    text = " · ".join(parts)
    if info.last_run_status in (None, "ok") and not info.coverage_gaps and not info.unreadable:
        st.caption(text)
    else:
        st.warning(text, icon=":material/info:")
    return info
