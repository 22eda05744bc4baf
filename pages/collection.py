"""Collection health: recent runs, failed keys and endpoints, coverage gaps and quarantined records."""

import streamlit as st

from store import reads, result_tables
from ui.data import read
from ui.page import open_page

settings, filters, now = open_page("Collection health")

st.subheader("Recent runs")
runs = read(reads.recent_runs, settings.db_path)
if runs.empty:
    st.info("No collector runs recorded yet.")
else:
    st.dataframe(runs, hide_index=True, width="stretch")

st.subheader("Failed keys and endpoints")
failed = read(reads.failed_run_items, settings.db_path)
if failed.empty:
    st.success("No failures recorded.")
else:
    st.dataframe(failed, hide_index=True, width="stretch")

st.subheader("Coverage gaps (events window overflowed between polls)")
gaps = read(reads.coverage_gaps, settings.db_path)
if gaps.empty:
    st.success("No coverage gaps: every event since collection began was seen.")
else:
    st.dataframe(gaps, hide_index=True, width="stretch")

st.subheader("Quarantined records")
quarantined = read(reads.quarantined_records, settings.db_path)
if quarantined.empty:
    st.success("Nothing quarantined: every record matched the expected shape.")
else:
    st.caption("Records that did not fit the API contract; kept with their reason instead of being dropped.")
    st.dataframe(quarantined, hide_index=True, width="stretch")

st.subheader("Stored results (findings computed once per collection)")
refreshes = read(result_tables.refresh_log, settings.db_path)
if refreshes.empty:
    st.info(
        "No results refresh recorded yet: pages compute findings when opened. The collector refreshes them "
        "after each collection (`collectors once`, and `collectors serve` every [collector.intervals] results)."
    )
else:
    st.caption("Each refresh computes key findings, incidents, the last month's reconciliation and the review.")
    st.dataframe(refreshes, hide_index=True, width="stretch")
