"""Anomalies: per-key chart with the expected band, flagged hours and markers, the incidents list, and alerts."""

from datetime import datetime
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from analytics.alerts import describe_incident
from analytics.anomalies import DEFAULT_THRESHOLD
from analytics.detection import METRICS
from service import anomalies
from ui.alerts_panel import alerts_section
from ui.annotations import chart_markers, markers_caption, with_markers
from ui.data import hour_of, page_config, provenance_caption
from ui.format import plain
from ui.page import open_page


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


settings, filters, now = open_page("Anomalies")
st.caption(
    "Calls are judged per hour from when event polling began and per day before it (the usage summary); failed "
    "jobs and credits per hour over the whole job history. Scores are causal: a point is flagged at score ≥ "
    f"{DEFAULT_THRESHOLD}. An incident is alert-worthy when it is past its key's first week and large against the "
    "key's normal day; severity is its size as a share of that day (high ≥ 50 %, medium ≥ 15 %). Times are UTC."
)

detected = load(str(settings.db_path), now.replace(second=0, microsecond=0))
keys, found = detected.keys, detected.frame
provenance_caption("incidents", detected.provenance)
if not keys:
    st.info("No hourly data yet: collect jobs or events first.")
    st.stop()
left, right = st.columns(2)
default_key = found["key_name"].iloc[-1] if not found.empty else keys[0]
key = left.selectbox("Key", keys, index=keys.index(default_key), key="anomaly_key")
metric = right.selectbox(
    "Metric", [*METRICS, "calls daily"], key="anomaly_metric", help="calls daily: the usage summary, day by day"
)

frame = key_series(str(settings.db_path), hour_of(now), metric, key)
start = pd.Timestamp(filters.start)
frame = frame[frame.index >= start] if not frame.empty else frame
if frame.empty:
    st.info(
        f"No hourly {metric} for {plain(key, None)} in this range"
        + (" (events not covered yet)." if metric == "calls" else ".")
    )
else:
    data = frame.reset_index(names="hour")
    data["flagged"] = data["level"] >= DEFAULT_THRESHOLD
    data["lower"] = data["lower"].clip(lower=0.0)  # counts, failures and credits are never negative
    grain = "day" if metric == "calls daily" else "hour"
    base = alt.Chart(data).encode(x=alt.X("hour:T", title=f"{grain} (UTC)"))
    band = base.mark_area(opacity=0.25).encode(y=alt.Y("lower:Q", title=metric), y2="upper:Q")
    line = base.mark_line().encode(y="value:Q", tooltip=["hour:T", "value:Q", "expected:Q", "score:Q"])
    points = (
        alt.Chart(data[data["flagged"]])
        .mark_point(color="red", filled=True, size=60)
        .encode(x="hour:T", y="value:Q", tooltip=["hour:T", "value:Q", "expected:Q", "score:Q", "direction:N"])
    )
    found_markers = chart_markers(str(settings.db_path), start.to_pydatetime(), now, [key])
    st.altair_chart(with_markers(band + line + points, found_markers, "hour"), width="stretch")
    markers_caption(found_markers)

st.subheader("Incidents")
worthy_only = st.toggle("Alert-worthy only", value=True, key="anomaly_worthy_only")
shown = found[pd.to_datetime(found["end"]) >= start] if not found.empty else found
if worthy_only and not shown.empty:
    shown = shown[shown["alert_worthy"].astype(bool)]
if shown.empty:
    st.success("No incidents in this range.")
else:
    table = pd.DataFrame(
        {
            "key": "key_detail?key=" + shown["key_name"].map(lambda n: quote(n, safe="")),
            "metric": shown["metric"],
            "direction": shown["direction"],
            "severity": shown["severity"],
            "what": shown.apply(describe_incident, axis=1),
            "start": shown["start"],
            "end": shown["end"],
            "grain": shown["grain"],
            "peak score": shown["peak_score"].round(3),
            "event": shown["event"],
        }
    ).sort_values("start", ascending=False)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "key": st.column_config.LinkColumn("key", display_text=r"key=(.*)$", help="Open the key's detail page")
        },
    )

config, problem = page_config(settings.config_path)
alerts_section(settings.db_path, config, problem, shown, now)
