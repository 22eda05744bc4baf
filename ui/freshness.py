"""The "how fresh is this" strip every page shows above its content."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import streamlit as st

from store import reads
from ui.data import read
from ui.format import local_time, relative_age


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
    text = " · ".join(parts)
    if info.last_run_status in (None, "ok") and not info.coverage_gaps:
        st.caption(text)
    else:
        st.warning(text, icon=":material/info:")
    return info
