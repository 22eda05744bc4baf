"""Anomalies: per-key chart with the expected band and flagged hours, and the incidents list."""

from datetime import datetime
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from analytics.anomalies import DEFAULT_THRESHOLD
from analytics.detection import METRICS
from service import anomalies
from service.alerts import open_alerts
from store import StoreError
from store.alert_store import (
    AlertError,
    acknowledge,
    list_alerts,
    resolve,
)
from store.state_file import state_path
from ui.data import hour_of, page_config, provenance_caption
from ui.page import open_page


# Incidents need the whole fleet's hourly history scored: the collector's refresh stores them, and the page
# reads them; with nothing stored for its clock it detects once per hour and keeps only the small result.
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
    "Hourly grain. Calls are hourly only from when event polling began (earlier, the store holds daily "
    "calls only); failed jobs and credits are hourly over the whole job history. Scores are causal: "
    f"an hour is flagged at score ≥ {DEFAULT_THRESHOLD}."
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
metric = right.selectbox("Metric", list(METRICS), key="anomaly_metric")

frame = key_series(str(settings.db_path), hour_of(now), metric, key)
start = pd.Timestamp(filters.start)
frame = frame[frame.index >= start] if not frame.empty else frame
if frame.empty:
    st.info(
        f"No hourly {metric} for {key} in this range" + (" (events not covered yet)." if metric == "calls" else ".")
    )
else:
    data = frame.reset_index(names="hour")
    data["flagged"] = data["score"] >= DEFAULT_THRESHOLD
    base = alt.Chart(data).encode(x=alt.X("hour:T", title="hour (UTC)"))
    band = base.mark_area(opacity=0.25).encode(y=alt.Y("lower:Q", title=metric), y2="upper:Q")
    line = base.mark_line().encode(y="value:Q", tooltip=["hour:T", "value:Q", "expected:Q", "score:Q"])
    points = (
        alt.Chart(data[data["flagged"]])
        .mark_point(color="red", filled=True, size=60)
        .encode(x="hour:T", y="value:Q", tooltip=["hour:T", "value:Q", "expected:Q", "score:Q", "direction:N"])
    )
    st.altair_chart(band + line + points, width="stretch")

st.subheader("Incidents")
shown = found[pd.to_datetime(found["end"]) >= start] if not found.empty else found
if shown.empty:
    st.success("No incidents in this range.")
else:
    table = pd.DataFrame(
        {
            "key": "key_detail?key=" + shown["key_name"].map(lambda n: quote(n, safe="")),
            "metric": shown["metric"],
            "direction": shown["direction"],
            "start": shown["start"],
            "end": shown["end"],
            "peak score": shown["peak_score"].round(3),
            "expected": shown["expected"].round(1),
            "observed": shown["observed"].round(1),
            "grain": shown["grain"],
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

st.subheader("Alerts")
state_file = state_path(settings.db_path)
config, problem = page_config(settings.config_path)
if problem:
    st.warning(f"Alerts config: {problem}", icon=":material/rule:")
cooldown = config.alerts.cooldown
st.caption(
    f"Alerts live in the dashboard's own state file (`{state_file.name}`). One alert per incident; a new "
    f"incident of the same key, metric and direction within {cooldown.total_seconds() / 3600:g} h of an active "
    "alert's end is merged into it. "
    + (
        "The collector service (`collectors serve`) posts new alerts to the configured webhook at its next check."
        if config.alerts.webhook_url_env
        else "No webhook configured ([alerts] webhook_url_env)."
    )
)
if st.button("Open alerts for these incidents", disabled=shown.empty, key="alerts_sync"):
    try:
        opened = open_alerts(state_file, shown, now, cooldown)
        st.success(f"Opened {opened} new alert(s).")
    except StoreError as exc:
        st.error(f"Alerts: {exc}")

try:
    alerts = list_alerts(state_file)
except StoreError as exc:
    st.error(f"Alerts: {exc}")
    st.stop()
if alerts.empty:
    st.info("No alerts yet.")
    st.stop()
st.dataframe(
    alerts[
        [
            "alert_id",
            "status",
            "key_name",
            "metric",
            "direction",
            "incident_start",
            "incident_end",
            "peak_score",
            "acknowledged_by",
            "delivered_at",
            "delivery_attempts",
            "last_error",
        ]
    ].round({"peak_score": 3}),
    hide_index=True,
    width="stretch",
    key="alerts_table",
)
active = alerts[alerts["status"] != "resolved"]
if active.empty:
    st.success("All alerts are resolved.")
    st.stop()
labels = {
    row.alert_id: f"{row.alert_id} · {row.status} · {row.key_name} {row.metric} {row.direction} "
    f"from {row.incident_start}"
    for row in active.itertuples(index=False)
}
status_of = dict(zip(active["alert_id"], active["status"], strict=True))
pick_col, who_col = st.columns(2)
chosen = pick_col.selectbox("Alert", list(labels), format_func=labels.get, key="alert_pick")
who = who_col.text_input("Who", key="alert_who")
ack_col, resolve_col = st.columns(2)
try:
    if ack_col.button("Acknowledge", key="alert_ack", disabled=status_of[chosen] != "open"):
        acknowledge(state_file, chosen, who, now)
        st.rerun()
    if resolve_col.button("Resolve", key="alert_resolve"):
        resolve(state_file, chosen, now)
        st.rerun()
except AlertError as exc:
    st.warning(str(exc))
except StoreError as exc:
    st.error(f"Alerts: {exc}")
