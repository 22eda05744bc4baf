"""Overview: traffic and credits in the chosen range, per-key volume, and the key table."""

import altair as alt
import pandas as pd
import streamlit as st

from analytics.export import csv_frame
from store import reads
from ui.data import read
from ui.format import local_time, number, relative_age
from ui.page import open_page

settings, filters, now = open_page("Overview")

envs = filters.environments
totals = read(reads.usage_totals, settings.db_path, filters.start, filters.end, envs)
prev_start, prev_end = filters.previous_period()
previous = read(reads.usage_totals, settings.db_path, prev_start, prev_end, envs)

st.caption(
    f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y} (UTC days) · environments: {', '.join(envs)} · "
    "deltas against the previous period of the same length"
)
cols = st.columns(4)
for col, (label, field, digits) in zip(
    cols,
    [("Calls", "calls", 0), ("Jobs", "jobs", 0), ("Failed jobs", "failed", 0), ("Credits", "credits", 2)],
    strict=True,
):
    delta = totals[field] - previous[field]
    col.metric(
        label,
        number(totals[field], digits),
        delta=number(delta, digits),
        delta_color="inverse" if field in ("failed", "credits") else "normal",
    )

gaps = read(reads.coverage_gaps, settings.db_path)
if not gaps.empty:
    st.warning(
        f"{len(gaps)} coverage gap(s) in the events feed: more than 100 calls happened between two polls, "
        "so some individual events were never seen. Daily call counts (from the usage summary) are complete; "
        "event-level breakdowns for these periods are not.",
        icon=":material/warning:",
    )
    with st.expander("Coverage gaps"):
        shown = gaps.assign(
            gap_start=gaps["gap_start"].map(lambda t: local_time(t, filters.tz)),
            gap_end=gaps["gap_end"].map(lambda t: local_time(t, filters.tz)),
            detected_at=gaps["detected_at"].map(lambda t: local_time(t, filters.tz)),
        )
        st.dataframe(shown, hide_index=True, width="stretch")

daily = read(reads.daily_usage, settings.db_path, filters.start, filters.end, envs)
st.subheader("Calls per key")
if daily.empty:
    st.info("No calls recorded in this range for the selected environments.")
else:
    top_n = 8
    ranking = daily.groupby("key_name")["calls"].sum().sort_values(ascending=False)
    top = set(ranking.head(top_n).index)
    plotted = daily.assign(series=daily["key_name"].where(daily["key_name"].isin(top), "other keys"))
    plotted = plotted.groupby(["day", "series"], as_index=False)[["calls", "credits"]].sum()
    plotted["day"] = pd.to_datetime(plotted["day"])
    chart = (
        alt.Chart(plotted)
        .mark_area(opacity=0.85)
        .encode(
            x=alt.X("day:T", title="Day (UTC)"),
            y=alt.Y("calls:Q", stack=True, title="Calls"),
            color=alt.Color("series:N", title="Key", sort=[*ranking.head(top_n).index, "other keys"]),
            tooltip=[alt.Tooltip("day:T"), "series:N", alt.Tooltip("calls:Q", format=",")],
        )
        .properties(height=300)
    )
    st.altair_chart(chart, width="stretch")
    st.caption(
        f"Top {min(top_n, len(ranking))} keys by calls in range; the rest are grouped as “other keys”. "
        "Grain: daily (from the usage summary)."
    )

    st.subheader("Credits by environment")
    by_env = daily.groupby(["day", "environment"], as_index=False)["credits"].sum()
    by_env["day"] = pd.to_datetime(by_env["day"])
    credits_chart = (
        alt.Chart(by_env)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title="Day (UTC)"),
            y=alt.Y("credits:Q", title="Credits"),
            color=alt.Color("environment:N", title="Environment"),
            tooltip=[alt.Tooltip("day:T"), "environment:N", alt.Tooltip("credits:Q", format=",.2f")],
        )
        .properties(height=220)
    )
    st.altair_chart(credits_chart, width="stretch")

st.subheader("Keys")
keys = read(reads.key_overview, settings.db_path, filters.start, filters.end, envs)
if keys.empty:
    st.info("No configured keys in the selected environments.")
else:
    table = pd.DataFrame(
        {
            "key": keys["key_name"],
            "environment": keys["environment"],
            "owner": keys["owner"].fillna("— none —"),
            "masked key": keys["masked_key"],
            "last used": keys["last_used_at"].map(lambda t: relative_age(t, now)),
            "last used at": keys["last_used_at"].map(lambda t: local_time(t, filters.tz)),
            "calls in range": keys["calls"].astype("int64"),
            "credits in range": keys["credits"].astype("float64").round(2),
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"calls in range": st.column_config.NumberColumn(format="localized")},
    )
    st.download_button(
        "Download key table (CSV)",
        csv_frame(table),
        file_name=f"keys_{filters.start}_{filters.end}.csv",
        mime="text/csv",
    )
