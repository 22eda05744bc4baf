"""Traffic explorer: several keys or environments on one chart, by hour or day, and the top movers."""

from datetime import datetime, timedelta
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from analytics.export import csv_frame
from analytics.traffic import rollup, top_movers
from store import key_reads
from ui.annotations import chart_markers, markers_caption, with_markers
from ui.data import read
from ui.format import plain
from ui.page import open_page

METRICS = {"calls": "Calls", "jobs": "Jobs", "failed": "Failed jobs", "credits": "Credits"}


settings, filters, now = open_page("Traffic explorer")

db = str(settings.db_path)
envs = filters.environments
prev_start, prev_end = filters.previous_period()
overview = read(key_reads.traffic_overview, db, (filters.start, filters.end), (prev_start, prev_end), envs)
daily = overview["current"]
ranking = daily.groupby("key_name")["calls"].sum().sort_values(ascending=False)

left, middle, right = st.columns([2, 1, 1])
compare = left.radio(
    "Compare", ["keys", "environments"], key="traffic_compare", horizontal=True, format_func=str.capitalize
)
grain = middle.radio(
    "Granularity", ["hour", "day"], index=1, key="traffic_grain", horizontal=True, format_func=str.capitalize
)
metric = right.selectbox("Metric", list(METRICS), format_func=METRICS.get, key="traffic_metric")
if compare == "keys":
    options = overview["names"]
    default = [k for k in ranking.head(5).index if k in options]
    chosen = st.multiselect(
        "Keys", options, default=default, key="traffic_keys", help="Defaults to the five busiest keys in range."
    )
    by = "key_name"
else:
    chosen = st.multiselect("Environments", envs, default=envs, key="traffic_envs")
    by = "environment"

start = datetime.combine(filters.start, datetime.min.time())
end = min(datetime.combine(filters.end, datetime.min.time()) + timedelta(days=1), now)
if not chosen:
    st.info(f"Choose at least one {'key' if compare == 'keys' else 'environment'} to plot.")
else:
    key_filter = chosen if compare == "keys" else None
    env_filter = envs if compare == "keys" else chosen
    if grain == "hour":
        frame = read(key_reads.hourly_activity, db, start, end + timedelta(hours=1), key_filter, env_filter)
        series = rollup(frame, "hour", [metric], "hour", by=by, start=start, end=end)
        source = (
            "the events feed (only since collection began polling it; check coverage gaps)"
            if metric == "calls"
            else "the jobs list (complete history)"
        )
        st.caption(f"Grain: hourly, from {source}.")
    else:
        frame = daily if compare == "environments" else daily[daily["key_name"].isin(chosen)]
        frame = frame[frame["environment"].isin(env_filter)].assign(day=lambda d: pd.to_datetime(d["day"]))
        series = rollup(frame, "day", [metric], "day", by=by, start=start, end=end)
        st.caption("Grain: daily, from the usage summary.")
    if series.empty:
        st.info("No traffic for this selection in range.")
    else:
        label = "Key" if compare == "keys" else "Environment"
        chart = (
            alt.Chart(series)
            .mark_line(interpolate="step-after" if grain == "hour" else "linear")
            .encode(
                x=alt.X("period:T", title=f"{grain.capitalize()} (UTC)"),
                y=alt.Y(f"{metric}:Q", title=METRICS[metric]),
                color=alt.Color(f"{by}:N", title=label),
                tooltip=[
                    alt.Tooltip("period:T", format="%Y-%m-%d %H:%M"),
                    f"{by}:N",
                    alt.Tooltip(f"{metric}:Q", format=",.2f" if metric == "credits" else ","),
                ],
            )
            .properties(height=320)
        )
        # Markers for the keys on the chart (environments: the markers that concern every key).
        found_markers = chart_markers(db, start, end, chosen if compare == "keys" else [])
        st.altair_chart(with_markers(chart, found_markers, "period"), width="stretch")
        markers_caption(found_markers)
        totals = series.groupby(by)[metric].sum().sort_values(ascending=False)
        shown_totals = " · ".join(f"{plain(name, None)} {value:,.0f}" for name, value in totals.items())
        st.caption(f"Totals in range: {shown_totals}")

st.subheader("Top movers")
movers = top_movers(daily, overview["previous"], value=metric, limit=15)
st.caption(
    f"{METRICS[metric]} per key, {filters.start:%d %b} – {filters.end:%d %b} against the "
    f"{filters.days} days before ({prev_start:%d %b} – {prev_end:%d %b}); daily grain, largest change first."
)
if movers.empty:
    st.info("No key changed against the previous period.")
else:
    table = pd.DataFrame(
        {
            "key": "key_detail?key=" + movers["key_name"].map(lambda n: quote(n, safe="")),
            "this period": movers["current"],
            "previous period": movers["previous"],
            "change": movers["change"],
            "change %": movers["change_pct"] * 100,
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "key": st.column_config.LinkColumn("key", display_text=r"key=(.*)$"),
            "this period": st.column_config.NumberColumn(format="localized"),
            "previous period": st.column_config.NumberColumn(format="localized"),
            "change": st.column_config.NumberColumn(format="%+,.0f"),
            "change %": st.column_config.NumberColumn(format="%+.0f%%", help="Empty when the key was silent before."),
        },
    )
    st.download_button(
        "Download top movers (CSV)",
        csv_frame(movers),
        file_name=f"top_movers_{now:%Y%m%d}.csv",
        mime="text/csv",
        key="download_movers",
    )
