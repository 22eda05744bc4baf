"""Collection health: recent runs, failed keys and endpoints, coverage gaps and quarantined records."""

import pandas as pd
import streamlit as st

from store import reads, result_tables
from ui.data import read
from ui.format import local_time, plain
from ui.page import open_page
from ui.tables import table

settings, filters, now = open_page("Collection health")
tz = filters.tz


def timed(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Instants in the operator's zone, in the one time format."""
    return frame.assign(**{c: frame[c].map(lambda t: local_time(t, tz)) for c in columns if c in frame})


st.subheader("Recent runs")
runs = read(reads.recent_runs, settings.db_path)
if runs.empty:
    st.info("No collector runs recorded yet.")
else:
    shown = timed(runs, "started_at", "finished_at")[
        ["run_id", "status", "started_at", "keys_ok", "keys_total", "requests", "retries", "rows_written", "mode",
         "endpoints", "finished_at", "message"]
    ]  # fmt: skip
    table(shown, {"run_id": st.column_config.NumberColumn("Run", format="%d")}, rows=10, main=True)

st.subheader("Failed keys and endpoints")
failed = read(reads.failed_run_items, settings.db_path)
disabled = read(reads.disabled_upstream, settings.db_path)
if not disabled.empty:
    names = ", ".join(
        f"{plain(r.key_name)} (last tried {local_time(r.last_tried_at, tz)})" for r in disabled.itertuples(index=False)
    )
    st.info(
        f"Disabled in the vendor's inventory, so rejected as expected and not counted as failures: {names}. "
        "They are tried again every [collector.intervals] disabled seconds (default hourly) to notice a re-enable.",
        icon=":material/block:",
    )
if failed.empty:
    st.success("No failures recorded.")
else:
    shown = timed(failed, "finished_at")[
        ["key_name", "endpoint", "status", "error_code", "message", "finished_at", "run_id", "request_id"]
    ]
    table(shown, {"run_id": st.column_config.NumberColumn("Run", format="%d")}, rows=10)

st.subheader("Coverage gaps (events window overflowed between polls)")
gaps = read(reads.coverage_gaps, settings.db_path)
if gaps.empty:
    st.success("No coverage gaps: every event since collection began was seen.")
else:
    table(timed(gaps, "gap_start", "gap_end", "detected_at"), rows=10)

st.subheader("Quarantined records")
quarantined = read(reads.quarantined_records, settings.db_path)
if quarantined.empty:
    st.success("Nothing quarantined: every record matched the expected shape.")
else:
    st.caption("Records that did not fit the API contract; kept with their reason instead of being dropped.")
    shown = timed(quarantined, "fetched_at")[
        ["endpoint", "key_name", "reason", "fetched_at", "request_id", "record", "quarantine_id"]
    ]
    table(shown, {"record": st.column_config.TextColumn("Record as received", width="large")}, rows=10)

st.subheader("Stored results (findings computed once per collection)")
refreshes = read(result_tables.refresh_log, settings.db_path)
if refreshes.empty:
    st.info(
        "No results refresh recorded yet: pages compute findings when opened. The collector refreshes them "
        "after each collection (`collectors once`, and `collectors serve` every [collector.intervals] results)."
    )
else:
    st.caption("Each refresh computes key findings, incidents, the last month's reconciliation and the review.")
    times = [c for c in refreshes.columns if c.endswith("_at") or c == "as_of"]
    table(timed(refreshes, *times), {"refresh_id": st.column_config.NumberColumn("Refresh", format="%d")}, rows=10)
