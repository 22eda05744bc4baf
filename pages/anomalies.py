"""Anomalies: what is open now (worst first), a keys × days strip of incident severity, one key's chart with its
expected range and markers, the incidents in words, and the alerts raised from them."""

from datetime import datetime, timedelta
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from analytics.anomalies import DEFAULT_THRESHOLD
from analytics.detection import METRICS
from analytics.incidents import METRIC_WORDS, SEVERITY_RANK, by_day, in_words, score_words, window, worst_first
from formatting import COLORS, SEVERITY_COLORS, SEVERITY_ORDER, moment, wall_time, zone_name
from service import anomalies
from ui.alerts_panel import alerts_section
from ui.annotations import chart_markers, markers_caption, with_markers
from ui.charts import show
from ui.data import hour_of, page_config, provenance_caption
from ui.format import plain
from ui.page import open_page
from ui.tables import link_column, table

OPEN_SHOWN = 6  # small charts beside the open incidents: the worst few, the rest are in the table below
RECENT_DAYS = 7


# Incidents need the whole fleet's history scored: the collector's refresh stores them, and the page reads
# them; with nothing stored for its clock it detects once per hour and keeps only the small result.
@st.cache_data(ttl=60, show_spinner=False)
def load(db_path: str, now: datetime) -> anomalies.Incidents:
    return anomalies.stored_incidents(db_path, now) or detect_hourly(db_path, hour_of(now))


@st.cache_data(ttl=3600, max_entries=4, show_spinner="Scoring every key's hourly history…")
def detect_hourly(db_path: str, hour: datetime) -> anomalies.Incidents:
    return anomalies.incidents(db_path, hour)


@st.cache_data(ttl=60, show_spinner=False)
def key_series(db_path: str, now: datetime, metric: str, key: str) -> pd.DataFrame:
    """The chart's series: the chosen key alone is read and scored (each key's score depends on its own history)."""
    return anomalies.key_series(db_path, now, metric, key)


@st.cache_data(ttl=60, show_spinner=False)
def recent(db_path: str, now: datetime, key: str, metric: str, grain: str, since: datetime) -> pd.DataFrame:
    return anomalies.recent_values(db_path, now, key, metric, grain, since)


def when(moment_: object) -> str:
    return moment(moment_, tz)


def period_text(row: pd.Series, field: str) -> str:
    """An hour in the operator's zone, or a UTC day."""
    return f"{pd.Timestamp(row[field]):%Y-%m-%d}" if row["grain"] == "day" else when(row[field])


def span_text(row: pd.Series) -> str:
    if row["grain"] == "day":
        start, end = pd.Timestamp(row["start"]), pd.Timestamp(row["end"])
        return f"{start:%Y-%m-%d}" + ("" if start == end else f" – {end:%Y-%m-%d}") + " (UTC days)"
    end = pd.Timestamp(row["end"]) + pd.Timedelta(hours=1)
    return f"{when(row['start'])} – {when(end)}"


def sparkline(row: pd.Series) -> alt.TopLevelMixin:
    """The incident's key and metric around it, the flagged span shaded."""
    grain, start, end = row["grain"], pd.Timestamp(row["start"]), pd.Timestamp(row["end"])
    step = pd.Timedelta(days=1) if grain == "day" else pd.Timedelta(hours=1)
    since = min(start, pd.Timestamp(now) - (pd.Timedelta(days=21) if grain == "day" else pd.Timedelta(hours=48)))
    values = recent(db, minute, row["key_name"], row["metric"], grain, since.to_pydatetime())
    values = values.assign(
        when=values["period"].map(lambda t: when(t) if grain != "day" else f"{t:%Y-%m-%d}"),
        x=values["period"] if grain == "day" else wall_time(values["period"], tz),
    )
    span = pd.DataFrame({"start": [start], "end": [end + step]})
    if grain != "day":
        span = span.assign(start=wall_time(span["start"], tz), end=wall_time(span["end"], tz))
    shade = (
        alt.Chart(span)
        .mark_rect(color=SEVERITY_COLORS[row["severity"]], opacity=0.35)
        .encode(x=alt.X("start:T", scale=alt.Scale(type="utc")), x2="end:T")
    )
    line = (
        alt.Chart(values)
        .mark_line(color=COLORS["observed"], interpolate="step-after" if grain == "hour" else "linear")
        .encode(
            x=alt.X(
                "x:T",
                title=None,
                scale=alt.Scale(type="utc"),
                axis=alt.Axis(format="%d %b %H:%M" if grain == "hour" else "%d %b", labelOverlap="greedy"),
            ),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(domainMin=0)),
            tooltip=[
                alt.Tooltip("when:N", title="When"),
                alt.Tooltip("value:Q", title=METRIC_WORDS[row["metric"]], format=",.2f"),
            ],
        )
    )
    return alt.layer(shade, line).properties(height=110)


def open_now(found: pd.DataFrame) -> None:
    """What is going on now, or ended in the last RECENT_DAYS days: worst first, each beside its own small chart."""
    st.subheader(f"Open now and recent (last {RECENT_DAYS} days)")
    recent_incidents = window(found, now, hours=24 * RECENT_DAYS)
    if recent_incidents.empty:
        last = pd.to_datetime(found["end"]).max() if not found.empty else None
        st.success(
            f"Nothing open, and nothing ended in the last {RECENT_DAYS} days"
            + (f"; the latest incident ended {when(last)}." if last is not None and pd.notna(last) else ".")
        )
        return
    for _, row in recent_incidents.head(OPEN_SHOWN).iterrows():
        text, chart = st.columns([2, 3], vertical_alignment="center")
        with text:
            state = "open" if row["open"] else "ended"
            st.badge(
                f"{row['severity']} · {state}", color={"high": "red", "medium": "orange"}.get(row["severity"], "gray")
            )
            st.markdown(
                f"**[{plain(row['key_name'], None)}](key_detail?key={quote(row['key_name'], safe='')})** · "
                f"{METRIC_WORDS[row['metric']].lower()} {row['direction']}"
            )
            st.markdown(plain(in_words(row), None))
            st.caption(
                f"{span_text(row)} · {score_words(row['peak_score'])}",
                help=f"Peak score {row['peak_score']:.2f} (0–1; flagged at ≥ {DEFAULT_THRESHOLD}).",
            )
        with chart:
            show(sparkline(row), key=f"spark_{row['key_name']}_{row['metric']}_{row['start']}")
    if len(recent_incidents) > OPEN_SHOWN:
        st.caption(f"{len(recent_incidents) - OPEN_SHOWN} more in the table below.")


def severity_strip(found: pd.DataFrame) -> None:
    """Keys × days, coloured by the worst incident of the day: where and when the fleet was unusual."""
    st.subheader("Incidents by key and day")
    cells = by_day(found, filters.start, filters.end)
    if cells.empty:
        st.info("No incidents in this range.")
        return
    worst = cells.assign(rank=cells["severity"].map(SEVERITY_RANK)).groupby("key_name")["rank"].max()
    keys = worst.sort_values(ascending=False).index.tolist()
    cells = cells.assign(day_text=cells["day"].dt.strftime("%Y-%m-%d"))
    strip = (
        alt.Chart(cells)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X(
                "day:T",
                timeUnit="utcyearmonthdate",
                title="Day (UTC days)",
                scale=alt.Scale(domain=[f"{filters.start:%Y-%m-%d}", f"{filters.end + timedelta(days=1):%Y-%m-%d}"]),
                axis=alt.Axis(format="%d %b", labelOverlap=True),
            ),
            y=alt.Y("key_name:N", title=None, sort=keys, axis=alt.Axis(labelLimit=200)),
            color=alt.Color(
                "severity:N",
                title="Worst that day",
                scale=alt.Scale(domain=list(SEVERITY_ORDER), range=[SEVERITY_COLORS[s] for s in SEVERITY_ORDER]),
                legend=alt.Legend(orient="top"),
            ),
            tooltip=[
                alt.Tooltip("key_name:N", title="Key"),
                alt.Tooltip("day_text:N", title="Day (UTC)"),
                alt.Tooltip("severity:N", title="Worst severity"),
                alt.Tooltip("incidents:Q", title="Incidents"),
                alt.Tooltip("worst:N", title="Worst, in words"),
            ],
        )
        .properties(height=22 * len(keys) + 95)  # the height holds the legend and the axis too
    )
    show(strip, key="severity_strip")
    st.caption(
        "One row per key with an incident in range, worst first; a cell is the worst incident touching that day."
    )


def key_chart(found: pd.DataFrame, keys: list[str]) -> None:
    """One key's metric with its expected range (clipped to what the metric can be) and the flagged points."""
    st.subheader("One key, with its expected range")
    ranked = worst_first(found)
    default_key = ranked["key_name"].iloc[0] if not ranked.empty else keys[0]
    default_metric = ranked["metric"].iloc[0] if not ranked.empty else METRICS[0]
    if not ranked.empty and ranked["grain"].iloc[0] == "day":
        default_metric = "calls daily"
    left, right = st.columns(2)
    key = left.selectbox("Key", keys, index=keys.index(default_key) if default_key in keys else 0, key="anomaly_key")
    options = [*METRICS, "calls daily"]
    metric = right.selectbox(
        "Metric",
        options,
        index=options.index(default_metric),
        key="anomaly_metric",
        format_func=METRIC_WORDS.get,
        help="Calls per day: the usage summary, day by day (calls before event polling are judged this way)",
    )
    frame = key_series(db, hour_of(now), metric, key)
    frame = frame[frame.index >= pd.Timestamp(filters.start)] if not frame.empty else frame
    if frame.empty:
        st.info(
            f"No {METRIC_WORDS[metric].lower()} for {plain(key, None)} in this range"
            + (" (events not collected yet: choose Calls per day)." if metric == "calls" else ".")
        )
        return
    grain = "day" if metric == "calls daily" else "hour"
    data = frame.reset_index(names="period")
    data["flagged"] = data["level"] >= DEFAULT_THRESHOLD
    # The band is clipped to the metric's range: counts and credits are never negative, and an upper edge far
    # above everything observed would flatten the series into the floor.
    data["lower"] = data["lower"].clip(lower=0.0)
    data["expected"] = data["expected"].clip(lower=0.0)
    top = float(max(data["value"].max(skipna=True), data["expected"].max(skipna=True), 1.0)) * 1.15
    data["upper"] = data["upper"].clip(upper=top)
    data["when"] = data["period"].map(lambda t: f"{t:%Y-%m-%d}" if grain == "day" else when(t))
    data["score_text"] = data["score"].map(lambda s: f"{s:.2f}" if pd.notna(s) else "—")
    legend = alt.Scale(
        domain=["Observed", "Expected", "Expected range", "Flagged"],
        range=[COLORS["observed"], COLORS["neutral"], COLORS["expected"], COLORS["flagged"]],
    )
    data["x"] = data["period"] if grain == "day" else wall_time(data["period"], tz)
    x = alt.X(
        "x:T",
        title="Day (UTC days)" if grain == "day" else f"Hour ({zone_name(tz)})",
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(labelOverlap="greedy", format="%d %b" if grain == "day" else "%d %b %H:%M"),
    )
    y = alt.Scale(domain=[0, top], nice=False)
    tooltip = [
        alt.Tooltip("when:N", title="When"),
        alt.Tooltip("value:Q", title="Observed", format=",.2f"),
        alt.Tooltip("expected:Q", title="Expected", format=",.2f"),
        alt.Tooltip("lower:Q", title="Expected from", format=",.2f"),
        alt.Tooltip("upper:Q", title="Expected to", format=",.2f"),
        alt.Tooltip("score_text:N", title="Score (0–1)"),
    ]
    base = alt.Chart(data).encode(x=x)
    band = (
        base.transform_calculate(what="'Expected range'")
        .mark_area(opacity=0.45, clip=True)
        .encode(
            y=alt.Y("lower:Q", title=METRIC_WORDS[metric], scale=y),
            y2="upper:Q",
            color=alt.Color("what:N", scale=legend, legend=alt.Legend(title=None, orient="top", symbolOpacity=1)),
            description=alt.Description("when:N"),
        )
    )
    expected = (
        base.transform_calculate(what="'Expected'")
        .mark_line(strokeDash=[4, 3], strokeWidth=1.5, clip=True)
        .encode(y=alt.Y("expected:Q", scale=y), color=alt.Color("what:N", scale=legend))
    )
    observed = (
        base.transform_calculate(what="'Observed'")
        .mark_line(
            interpolate="step-after" if grain == "hour" else "linear", invalid="break-paths-show-domains", clip=True
        )
        .encode(y=alt.Y("value:Q", scale=y), color=alt.Color("what:N", scale=legend), tooltip=tooltip)
    )
    flagged = (
        alt.Chart(data[data["flagged"]])
        .transform_calculate(what="'Flagged'")
        .mark_point(filled=True, size=60, clip=True)
        .encode(
            x=x, y=alt.Y("value:Q", scale=y), color=alt.Color("what:N", scale=legend), tooltip=[*tooltip, "direction:N"]
        )
    )
    marked = chart_markers(db, pd.Timestamp(filters.start).to_pydatetime(), now, [key])
    chart = alt.layer(band, expected, observed, flagged).properties(height=300)
    show(with_markers(chart, marked, grain, tz), key="anomaly_chart")
    st.caption(
        "The shaded range is what the key's own history leads us to expect (hour of day and day of week, learned "
        "causally), clipped to what the metric can be; red points were flagged."
    )
    markers_caption(marked)


def incident_table(found: pd.DataFrame) -> None:
    st.subheader("Incidents")
    if found.empty:
        st.success("No incidents in this range.")
        return
    ranked = worst_first(found)
    rows = pd.DataFrame(
        {
            "key": "key_detail?key=" + ranked["key_name"].map(lambda n: quote(n, safe="")),
            "severity": ranked["severity"],
            "what": ranked.apply(in_words, axis=1),
            "metric": ranked["metric"].map(METRIC_WORDS),
            "direction": ranked["direction"],
            "start": ranked.apply(lambda r: period_text(r, "start"), axis=1),
            "end": ranked.apply(lambda r: period_text(r, "end"), axis=1),
            "grain": ranked["grain"],
            "peak_score": ranked["peak_score"].round(2),
            "alert_worthy": ranked["alert_worthy"].astype(bool),
            "event": ranked["event"],
        }
    )
    table(
        rows,
        {
            "key": link_column("key"),
            "what": st.column_config.TextColumn("What happened", width="large"),
            "start": st.column_config.TextColumn("From", help=f"Hours in {zone_name(tz)}; days are UTC days"),
            "end": st.column_config.TextColumn("To (last flagged)", help="The last flagged hour or day"),
            "peak_score": st.column_config.NumberColumn(
                "Peak score", format="%.2f", help=f"How unusual the peak was, 0–1; flagged at ≥ {DEFAULT_THRESHOLD}"
            ),
        },
        rows=12,
        main=True,
    )


settings, filters, now = open_page("Anomalies")
db, tz = str(settings.db_path), filters.tz
minute = now.replace(second=0, microsecond=0)
st.caption(
    "Spikes and drops in calls, failed jobs and credits, judged against each key's own history. Calls are judged per "
    "hour from when event polling began and per day before it (the usage summary); failed jobs and credits per hour "
    "over the whole job history. An incident is alert-worthy when it is past its key's first week and large "
    "against the key's normal day; severity is its size as a share of that day (high ≥ 50 %, medium ≥ 15 %). "
    f"Hours are shown in {zone_name(tz)}."
)
detected = load(db, minute)
keys, found = detected.keys, detected.frame
provenance_caption("incidents", detected.provenance)
if not keys:
    st.info("No hourly data yet: collect jobs or events first.")
    st.stop()
worthy_only = st.toggle(
    "Alert-worthy only",
    value=True,
    key="anomaly_worthy_only",
    help="Off: also the small incidents nobody is alerted to.",
)
start = pd.Timestamp(filters.start)
shown = found[pd.to_datetime(found["end"]) >= start] if not found.empty else found
if worthy_only and not shown.empty:
    shown = shown[shown["alert_worthy"].astype(bool)]
open_now(found[found["alert_worthy"].astype(bool)] if worthy_only and not found.empty else found)
severity_strip(shown)
key_chart(shown, keys)
incident_table(shown)

config, problem = page_config(settings.config_path)
alerts_section(settings.db_path, config, problem, shown, now, tz)
