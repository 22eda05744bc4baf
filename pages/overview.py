"""Overview: traffic and credits in the chosen range, compared like for like, per-key volume, and the key table."""

from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from analytics.export import csv_frame
from analytics.traffic import daily_unknown, like_for_like
from formatting import (
    ENVIRONMENT_COLORS,
    ENVIRONMENT_ORDER,
    count,
    credits,
    day,
    day_span,
    delta_color,
    for_export,
    plural,
    signed,
)
from store import reads
from ui.charts import mark_partial, partial_opacity, periods, show, time_axis, with_gaps
from ui.data import read
from ui.format import local_time, relative_age
from ui.page import open_page
from ui.tables import capped, link_column, table

METRICS = [("Calls", "calls", 0), ("Jobs", "jobs", 0), ("Failed jobs", "failed", 0), ("Credits", "credits", 2)]
TOP_KEYS = 8
OTHER_KEYS = "other keys"

settings, filters, now = open_page("Overview")
db, envs, tz = settings.db_path, filters.environments, filters.tz
held = read(reads.coverage, db, envs, now=now.replace(second=0, microsecond=0))
comparison = like_for_like(filters.start, filters.end, held.first_day, held.summary_read_at, tz)


def shown(value: float, digits: int) -> str:
    return credits(value) if digits else count(value)


def headline() -> None:
    """The range's totals; each change compares complete days with as many days before, or is not shown."""
    totals = read(reads.usage_totals, db, filters.start, filters.end, envs)
    if comparison.comparable:
        compared = read(reads.usage_totals, db, *comparison.current, envs)
        before = read(reads.usage_totals, db, *comparison.previous, envs)
    days = (comparison.current[1] - comparison.current[0]).days + 1 if comparison.current else 0
    for col, (label, field, digits) in zip(st.columns(4), METRICS, strict=True):
        value = shown(totals[field], digits)
        if not comparison.comparable:
            col.metric(label, value)
            continue
        change = compared[field] - before[field]
        col.metric(
            label,
            value,
            delta=signed(change, digits, minus="-"),
            delta_color=delta_color(field),
            delta_description=f"vs {plural(days, 'day')} before",
            help=f"Complete days {day_span(*comparison.current)}: {shown(compared[field], digits)}; "
            f"the {days} day(s) before ({day_span(*comparison.previous)}): {shown(before[field], digits)}.",
        )
    partial = (
        f" Totals include {day(comparison.partial_day)} so far (read to {local_time(held.summary_read_at, tz)}), "
        "which no change counts: a day in progress is not a drop."
        if comparison.partial_day
        else ""
    )
    st.caption(comparison.note + partial)


def coverage_gaps() -> None:
    gaps = read(reads.coverage_gaps, db)
    if gaps.empty:
        return
    st.warning(
        f"{len(gaps)} coverage gap(s) in the events feed: more than 100 calls happened between two polls, "
        "so some individual events were never seen. Daily call counts (from the usage summary) are complete; "
        "event-level breakdowns for these periods are not.",
        icon=":material/warning:",
    )
    with st.expander("Coverage gaps"):
        times = ("gap_start", "gap_end", "detected_at")
        table(gaps.assign(**{c: gaps[c].map(lambda t: local_time(t, tz)) for c in times}))


def daily_chart(
    frame: pd.DataFrame, value: str, series: str, title: str, legend: str, color: alt.Color, fmt: str
) -> None:
    """Stacked daily bars; the day in progress faint, days nobody collected as grey bands with the reason."""
    spans = daily_unknown(filters.start, filters.end, held.first_day, held.summary_read_at, tz)
    data = periods(mark_partial(frame.rename(columns={"day": "period"}), held.summary_read_at, "day", tz), "day", tz)
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=time_axis("x", "day", tz),
            y=alt.Y(f"{value}:Q", stack=True, title=title),
            color=color,
            opacity=partial_opacity(),
            tooltip=[
                alt.Tooltip("when:N", title="Day (UTC)"),
                alt.Tooltip(f"{series}:N", title=legend),
                alt.Tooltip(f"{value}:Q", title=title, format=fmt),
                alt.Tooltip("state:N", title="Day"),
            ],
        )
        .properties(height=280)
    )
    show(with_gaps(bars, spans, "day", tz))


def traffic_charts() -> None:
    st.subheader("Calls per key")
    daily = read(reads.daily_top_keys, db, filters.start, filters.end, envs, TOP_KEYS, OTHER_KEYS)
    if daily.empty:
        st.info("No calls recorded in this range for the selected environments.")
        return
    plotted = daily.assign(day=pd.to_datetime(daily["day"]))
    order = plotted.drop_duplicates("series").sort_values("rank")
    color = alt.Color("series:N", title="Key", sort=order["series"].tolist())
    daily_chart(plotted, "calls", "series", "Calls", "Key", color, ",")
    shown = int((order["rank"] <= TOP_KEYS).sum())
    st.caption(
        f"Top {shown} keys by calls in range; the rest are grouped as “{OTHER_KEYS}”. Grain: daily UTC days, from "
        "the usage summary. The faint bar is the day in progress; grey bands are days nobody collected (hover for why)."
    )

    st.subheader("Credits by environment")
    by_env = read(reads.daily_by_environment, db, filters.start, filters.end, envs)
    by_env["day"] = pd.to_datetime(by_env["day"])
    color = alt.Color(
        "environment:N",
        title="Environment",
        scale=alt.Scale(domain=list(ENVIRONMENT_ORDER), range=[ENVIRONMENT_COLORS[e] for e in ENVIRONMENT_ORDER]),
    )
    daily_chart(by_env, "credits", "environment", "Credits", "Environment", color, ",.2f")


def key_table() -> None:
    st.subheader("Keys")
    keys = read(reads.key_overview, db, filters.start, filters.end, envs)
    if keys.empty:
        st.info("No configured keys in the selected environments.")
        return
    listed = capped(
        keys, "keys (most calls in range first)", "the CSV download holds them all; the Keys page filters by name"
    )
    rows = pd.DataFrame(
        {
            "key": "key_detail?key=" + listed["key_name"].map(lambda n: quote(n, safe="")),
            "calls": listed["calls"].astype("int64"),
            "credits": listed["credits"].astype("float64").round(2),
            "last_used": listed["last_used_at"].map(lambda t: relative_age(t, now)),
            "environment": listed["environment"],
            "owner": listed["owner"].fillna("— none —"),
            "masked_key": listed["masked_key"],
            "last_used_at": listed["last_used_at"].map(lambda t: local_time(t, tz)),
        }
    )
    table(
        rows,
        {
            "key": link_column("key"),
            "calls": st.column_config.NumberColumn("Calls in range", format="%,d"),
            "credits": st.column_config.NumberColumn("Credits in range", format="%,.2f"),
            "last_used": st.column_config.TextColumn("Last used", help="How long ago; the exact time is to the right."),
            "last_used_at": st.column_config.TextColumn("Last used at"),
        },
        rows=15,
        main=True,
    )
    export = keys[["key_name", "environment", "owner", "masked_key", "last_used_at", "calls", "credits"]].rename(
        columns={"calls": "calls in range", "credits": "credits in range"}
    )
    st.download_button(
        "Download key table (CSV)",
        lambda: csv_frame(for_export(export, tz, times=("last_used_at",))),  # written when clicked
        file_name=f"keys_{filters.start}_{filters.end}.csv",
        mime="text/csv",
    )


st.caption(f"{day_span(filters.start, filters.end)} (UTC days) · environments: {', '.join(envs)} · times in {tz.key}")
headline()
coverage_gaps()
traffic_charts()
key_table()
