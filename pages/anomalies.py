"""Anomalies: per-key chart with the expected band and flagged hours, and the incidents list."""

from datetime import datetime
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from analytics.alerts import notifiable
from analytics.anomalies import DEFAULT_THRESHOLD
from analytics.detection import METRICS
from service import anomalies
from service.alerts import deliver_pending, open_alerts
from store import StoreError
from store.alert_store import (
    AlertError,
    acknowledge,
    list_alerts,
    resolve,
)
from store.state_file import state_path
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


def in_words(row: pd.Series) -> str:
    """'12 calls where about 0.2 were expected, over 3 hours'."""
    unit = {"calls": "calls", "failed_jobs": "failed jobs", "credits": "credits"}[row["metric"]]
    span = (pd.Timestamp(row["end"]) - pd.Timestamp(row["start"])) / pd.Timedelta(hours=1)
    length = f"{int(span / 24) + 1} day(s)" if row["grain"] == "day" else f"{int(span) + 1} hour(s)"
    return f"{row['observed']:,.0f} {unit} where about {row['expected']:,.1f} were expected, over {length}"


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
    st.altair_chart(band + line + points, width="stretch")

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
            "what": shown.apply(in_words, axis=1),
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

st.subheader("Alerts")
state_file = state_path(settings.db_path)
config, problem = page_config(settings.config_path)
if problem:
    st.error(f"Alerts config: {plain(problem, None)}")
cooldown = config.alerts.cooldown
try:  # the page never posts, but a URL it can see is wrong is worth saying (without the URL)
    webhook, undeliverable = config.alerts.webhook_url(), None
except ValueError as exc:  # alerts still open and list; each records why it was not sent
    webhook, undeliverable = None, str(exc)
    st.error(f"Alerts webhook: {plain(exc, None)}")
st.caption(
    f"Alerts live in the dashboard's own state file ({plain(state_file.name)}). One alert per incident; a new "
    f"incident of the same key, metric and direction within {cooldown.total_seconds() / 3600:g} h of an active "
    "alert's end is merged into it. "
    + (
        "The collector service (`collectors serve`) posts new alerts to the configured webhook at its next "
        "check, and posts undelivered ones again."
        if webhook or (config.alerts.webhook_url_env and not undeliverable)
        else "No webhook configured ([alerts] webhook_url_env)."
        if not undeliverable
        else "The configured webhook cannot be posted to (see above)."
    )
)
if st.button("Open alerts for these incidents", disabled=shown.empty, key="alerts_sync"):
    try:
        opened = open_alerts(state_file, notifiable(shown), now, cooldown)
        if undeliverable:  # recorded on each pending alert; nothing is sent from the dashboard
            deliver_pending(state_file, None, now, undeliverable=undeliverable)
        st.success(f"Opened {opened} new alert(s).")
    except StoreError as exc:
        st.error(f"Alerts: {plain(exc, None)}")

try:
    alerts = list_alerts(state_file)
except StoreError as exc:
    st.error(f"Alerts: {plain(exc, None)}")
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
    st.warning(plain(exc, None))
except StoreError as exc:
    st.error(f"Alerts: {plain(exc, None)}")
