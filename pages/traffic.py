"""Traffic explorer: several keys or environments on one chart, by hour or day, and the top movers."""

from datetime import datetime, timedelta
from urllib.parse import quote

import pandas as pd
import streamlit as st

from analytics.export import csv_frame
from analytics.traffic import (
    combine_known,
    daily_unknown,
    hourly_calls_unknown,
    hourly_jobs_unknown,
    like_for_like,
    mask_unknown,
    rollup,
    top_movers,
    unknown_everywhere,
)
from formatting import CATEGORY_PALETTE, ENVIRONMENT_COLORS, for_export, number
from store import key_reads, reads
from ui.annotations import chart_markers, markers_caption, with_markers
from ui.charts import lines, show
from ui.data import read
from ui.format import plain
from ui.page import open_page
from ui.tables import link_column, table

METRICS = {"calls": "Calls", "jobs": "Jobs", "failed": "Failed jobs", "credits": "Credits"}

settings, filters, now = open_page("Traffic explorer")
db, envs, tz = str(settings.db_path), filters.environments, filters.tz
held = read(reads.coverage, db, envs, now=now.replace(second=0, microsecond=0))
comparison = like_for_like(filters.start, filters.end, held.first_day, held.summary_read_at, tz)
previous = comparison.previous or (filters.start, filters.start - timedelta(days=1))  # an empty range
overview = read(key_reads.traffic_overview, db, (filters.start, filters.end), previous, envs)
daily = overview["current"]
ranking = daily.groupby("key_name")["calls"].sum().sort_values(ascending=False)
start = datetime.combine(filters.start, datetime.min.time())
end = min(datetime.combine(filters.end, datetime.min.time()) + timedelta(days=1), now)


def choices() -> tuple[str, str, str, list[str]]:
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
    else:
        chosen = st.multiselect("Environments", envs, default=envs, key="traffic_envs")
    return compare, grain, metric, chosen


def hourly(metric: str, key_filter: list[str] | None, env_filter: list[str]) -> tuple[pd.DataFrame, list]:
    """Per key and hour, with the hours nobody collected unknown; the spans unknown for every key."""
    frame = read(key_reads.hourly_activity, db, start, end + timedelta(hours=1), key_filter, env_filter)
    series = rollup(frame, "hour", [metric], "hour", by="key_name", start=start, end=end)
    if metric == "calls":
        coverage = read(key_reads.hourly_calls_coverage, db, sorted(series["key_name"].unique().tolist()))
        since = dict(zip(coverage["since"]["key_name"], coverage["since"]["covered_since"], strict=True))
        gaps = coverage["gaps"]
        per_key = {
            key: hourly_calls_unknown(
                start,
                end,
                since.get(key),
                list(gaps[gaps["key_name"] == key][["gap_start", "gap_end"]].itertuples(index=False)),
                held.events_read_at,
                tz,
            )
            for key in series["key_name"].unique()
        }
    else:
        spans = hourly_jobs_unknown(start, end, held.jobs_read_at, tz)
        per_key = {key: spans for key in series["key_name"].unique()}
    masked = [mask_unknown(part, [metric], per_key[key], "hour") for key, part in series.groupby("key_name")]
    series = pd.concat(masked) if masked else series
    return series, unknown_everywhere(list(per_key.values()))


def draw(compare: str, grain: str, metric: str, chosen: list[str]) -> None:
    by = "key_name" if compare == "keys" else "environment"
    key_filter = chosen if compare == "keys" else None
    env_filter = envs if compare == "keys" else chosen
    if grain == "hour":
        series, spans = hourly(metric, key_filter, env_filter)
        read_at = held.events_read_at if metric == "calls" else held.jobs_read_at
        source = (
            "the events feed, only since event polling began (hours before it are grey, not zero)"
            if metric == "calls"
            else "the jobs list (complete history)"
        )
        st.caption(f"Grain: hourly, times in {tz.key}, from {source}.")
    else:
        frame = daily if compare == "environments" else daily[daily["key_name"].isin(chosen)]
        frame = frame[frame["environment"].isin(env_filter)].assign(day=lambda d: pd.to_datetime(d["day"]))
        series = rollup(frame, "day", [metric], "day", by="key_name", start=start, end=end)
        spans = daily_unknown(filters.start, filters.end, held.first_day, held.summary_read_at, tz)
        series = mask_unknown(series, [metric], spans, "day")
        read_at = held.summary_read_at
        st.caption("Grain: daily UTC days, from the usage summary. The hollow point is the day in progress.")
    if compare == "environments" and not series.empty:
        group_of = pd.Series(overview["environment_of"])
        series = combine_known(series, [metric], group_of, "environment")
        series = series[series["environment"].isin(chosen)]
    if series.empty or (series[metric].notna().sum() == 0 and not spans):
        st.info("No traffic for this selection in range.")
        return
    wide = series.pivot_table(index="period", columns=by, values=metric, dropna=False).reset_index()
    names = [c for c in wide.columns if c != "period"]
    palette = {n: ENVIRONMENT_COLORS.get(n, CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)]) for i, n in enumerate(names)}
    chart = lines(
        wide,
        {n: (str(n), palette[n]) for n in names},
        grain,
        tz,
        spans=spans,
        read_at=read_at,
        y_title=f"{METRICS[metric]} per {grain}",
        height=320,
        fmt=",.2f" if metric == "credits" else ",",
    )
    # Markers for the keys on the chart (environments: the markers that concern every key).
    found_markers = chart_markers(db, start, end, chosen if compare == "keys" else [])
    show(with_markers(chart, found_markers, grain, tz))
    markers_caption(found_markers)
    totals = series.groupby(by)[metric].sum().sort_values(ascending=False)
    digits = 2 if metric == "credits" else 0
    shown_totals = " · ".join(f"{plain(name, None)} {number(value, digits)}" for name, value in totals.items())
    st.caption(f"Totals in range (collected periods only): {shown_totals}")


def movers(metric: str) -> None:
    st.subheader("Top movers")
    st.caption(f"{METRICS[metric]} per key, daily grain, largest change first. {comparison.note}")
    if not comparison.comparable:
        st.info("No earlier data to compare with: choose a shorter range, or wait for more days to be collected.")
        return
    current = daily[pd.to_datetime(daily["day"]).dt.date <= comparison.current[1]]
    found = top_movers(current, overview["previous"], value=metric, limit=15)
    if found.empty:
        st.info("No key changed against the previous period.")
        return
    digits = 2 if metric == "credits" else 0
    rows = pd.DataFrame(
        {
            "key": "key_detail?key=" + found["key_name"].map(lambda n: quote(n, safe="")),
            "change": found["change"],
            "change_pct": found["change_pct"] * 100,
            "current": found["current"],
            "previous": found["previous"],
        }
    )
    number_format = "%,.2f" if digits else "%,d"
    table(
        rows,
        {
            "key": link_column("key"),
            "change": st.column_config.NumberColumn("Change", format="%+,.2f" if digits else "%+,d"),
            "change_pct": st.column_config.NumberColumn(
                "Change %", format="%+.0f%%", help="Empty when the key was silent before."
            ),
            "current": st.column_config.NumberColumn("Compared days", format=number_format),
            "previous": st.column_config.NumberColumn("Days before", format=number_format),
        },
        rows=15,
        main=True,
    )
    st.download_button(
        "Download top movers (CSV)",
        csv_frame(for_export(found.rename(columns={"current": "compared days", "previous": "days before"}))),
        file_name=f"top_movers_{now:%Y%m%d}.csv",
        mime="text/csv",
        key="download_movers",
    )


compare, grain, metric, chosen = choices()
if not chosen:
    st.info(f"Choose at least one {'key' if compare == 'keys' else 'environment'} to plot.")
else:
    draw(compare, grain, metric, chosen)
movers(metric)
