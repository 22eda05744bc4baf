"""Anomalies: per-key chart with the expected band and flagged hours, and the incidents list."""

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from analytics.alert_job import notifiable, open_and_deliver
from analytics.alerts import cooldown_from_config, webhook_url_from_config
from analytics.anomalies import DEFAULT_THRESHOLD
from analytics.detection import METRICS, detect, key_daily_frame, key_frame, score_metric
from store import StoreError
from store.alert_store import (
    AlertError,
    acknowledge,
    list_alerts,
    resolve,
)
from store.anomaly_reads import daily_calls, hourly_series
from store.state_file import state_path
from ui.format import plain
from ui.page import open_page


# Incidents need the whole fleet's hourly history scored; they change when the last complete hour does,
# so the page keys them by that hour and keeps them for it. Only small frames are cached (a cache hit
# unpickles its value, so caching the millions of hourly rows would make every rerun slow).
@st.cache_data(ttl=3600, max_entries=4, show_spinner="Scoring every key's hourly history…")
def load(db_path: str, now: datetime) -> tuple[list[str], pd.DataFrame]:
    hourly = hourly_series(db_path, now, ordered=False)  # the detector pivots: row order does not matter
    daily = daily_calls(db_path, until=now)
    keys = sorted(set(hourly["key_name"].unique()) | set(daily["key_name"].unique()))
    return keys, detect(hourly, now, daily=daily)


@st.cache_data(ttl=60, show_spinner=False)
def key_series(db_path: str, now: datetime, metric: str, key: str) -> pd.DataFrame:
    """The chart's series: the chosen key alone is read and scored (each key's score depends on its own history)."""
    if metric == "calls daily":
        return key_daily_frame(daily_calls(db_path, until=now, keys=[key]), key, now)
    scored = score_metric(hourly_series(db_path, now, keys=[key]), metric, now)
    if scored is None or key not in scored["value"].columns:
        return pd.DataFrame()
    return key_frame(scored, key)


def in_words(row: pd.Series) -> str:
    """'12 calls where about 0.2 were expected, over 3 hours'."""
    unit = {"calls": "calls", "failed_jobs": "failed jobs", "credits": "credits"}[row["metric"]]
    span = (pd.Timestamp(row["end"]) - pd.Timestamp(row["start"])) / pd.Timedelta(hours=1)
    length = f"{int(span / 24) + 1} day(s)" if row["grain"] == "day" else f"{int(span) + 1} hour(s)"
    return f"{row['observed']:,.0f} {unit} where about {row['expected']:,.1f} were expected, over {length}"


def config_sections(config_path: Path | None) -> dict[str, Any]:
    """The config TOML's tables (empty without a config); only `[alerts]` is used here."""
    if config_path is None:
        return {}
    try:
        return tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        st.warning(f"Alerts: cannot read the config ({type(exc).__name__}); using defaults.")
        return {}


settings, filters, now = open_page("Anomalies")
st.caption(
    "Calls are judged per hour from when event polling began and per day before it (the usage summary); failed "
    "jobs and credits per hour over the whole job history. Scores are causal: a point is flagged at score ≥ "
    f"{DEFAULT_THRESHOLD}. An incident is alert-worthy when it is past its key's first week and large against the "
    "key's normal day; severity is its size as a share of that day (high ≥ 50 %, medium ≥ 15 %). Times are UTC."
)

keys, found = load(str(settings.db_path), now.replace(minute=0, second=0, microsecond=0))
if not keys:
    st.info("No hourly data yet: collect jobs or events first.")
    st.stop()
left, right = st.columns(2)
default_key = found["key_name"].iloc[-1] if not found.empty else keys[0]
key = left.selectbox("Key", keys, index=keys.index(default_key), key="anomaly_key")
metric = right.selectbox(
    "Metric", [*METRICS, "calls daily"], key="anomaly_metric", help="calls daily: the usage summary, day by day"
)

frame = key_series(str(settings.db_path), now.replace(minute=0, second=0, microsecond=0), metric, key)
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
sections = config_sections(settings.config_path)
try:
    cooldown = cooldown_from_config(sections)
except ValueError as exc:
    st.error(f"Alerts config: {plain(exc, None)}")
    st.stop()
try:
    webhook, undeliverable = webhook_url_from_config(sections), None
except ValueError as exc:  # alerts still open and list; each records why it was not sent
    webhook, undeliverable = None, str(exc)
    st.error(f"Alerts webhook: {plain(exc, None)}")
st.caption(
    f"Alerts live in the dashboard's own state file ({plain(state_file.name)}). One alert per incident; a new "
    f"incident of the same key, metric and direction within {cooldown.total_seconds() / 3600:g} h of an active "
    "alert's end is merged into it. "
    + (
        "New alerts are posted to the configured webhook; undelivered ones are posted again."
        if webhook
        else "No webhook configured ([alerts] webhook_url_env)."
        if not undeliverable
        else "The configured webhook cannot be posted to (see above)."
    )
)
if st.button("Open alerts for these incidents", disabled=shown.empty, key="alerts_sync"):
    try:
        run = open_and_deliver(state_file, notifiable(shown), now, cooldown, webhook, undeliverable)
        note = f" Delivered {run.delivered}, failed {run.failed}." if webhook or undeliverable else ""
        st.success(f"Opened {run.opened} new alert(s).{note}")
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
