"""Key detail (deep link `?key=NAME`): identity, findings, traffic by hour or day, event breakdowns, jobs."""

from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from analytics.keys import FINDINGS
from analytics.traffic import rollup
from config import ConfigError
from service.key_actions import dashboard_config
from service.smoke import history as smoke_history
from service.smoke import run_smoke_checks_now
from store import StoreError, key_reads
from ui.annotations import annotation_form, chart_markers, markers_caption, with_markers
from ui.data import forget_reads, provenance_caption, read
from ui.format import local_time, number, plain, relative_age
from ui.key_findings import keys_with_findings
from ui.page import open_page
from untrusted import http_link


@st.cache_data(ttl=30, show_spinner=False)
def smoke_checks(db_path: str, key_name: str) -> pd.DataFrame:
    return smoke_history(db_path, key_name, limit=500)


settings, filters, now = open_page("Key detail")

db = str(settings.db_path)
view, _ = keys_with_findings(settings, now)
findings = view.findings.frame
inventory = view.inventory
names = inventory["key_name"].tolist()
requested = st.query_params.get("key")
if requested is not None and requested not in names:
    st.error(
        f"No configured key is named “{plain(requested)}”. It may have been renamed or removed from the config; "
        "pick a key below.",
        icon=":material/key_off:",
    )
# Seed the selector from the link only when the link changes, so a choice made here is not overridden.
if requested in names and st.session_state.get("detail_link") != requested:
    st.session_state["detail_key"] = requested
st.session_state["detail_link"] = requested
key_name = st.selectbox("Key", names, index=None, key="detail_key", placeholder="Choose a key")
if key_name is None:
    st.info("Choose a key, or open one from the Keys page.")
    st.stop()
if requested != key_name:
    st.query_params["key"] = key_name

key = inventory.set_index("key_name").loc[key_name]
st.subheader(plain(key_name, None))
cols = st.columns(5)
cols[0].metric("Environment", plain(key["environment"]))
cols[1].metric("Owner", plain(key["owner"], None) if isinstance(key["owner"], str) else "— none —")
cols[2].metric("Masked key", plain(key["masked_key"]))
rotation_base = key["rotated_at"] if pd.notna(key["rotated_at"]) else key["created_at"]
cols[3].metric(
    "Secret age",
    relative_age(rotation_base, now).replace(" ago", "") if pd.notna(rotation_base) else "?",
    help=f"Created {local_time(key['created_at'], filters.tz)}; "
    f"last rotated {local_time(key['rotated_at'], filters.tz)}",
)
cols[4].metric(
    "Last used",
    relative_age(key["last_used_at"], now),
    help=f"Newest call seen: {local_time(key['last_used_at'], filters.tz)}",
)

mine = findings[findings["key_name"] == key_name]
provenance_caption("findings", view.findings.provenance)
if mine.empty:
    st.success("No findings: the key follows every rule.", icon=":material/verified:")
else:
    st.markdown(
        "\n".join(
            f"- :orange-badge[{r.finding}] {FINDINGS.get(r.finding, r.finding)}: {plain(r.detail, None)}"
            for r in mine.itertuples(index=False)
        )
    )

start = datetime.combine(filters.start, datetime.min.time())
end = datetime.combine(filters.end, datetime.min.time()) + timedelta(days=1)
st.subheader("Traffic")
grain = st.radio(
    "Granularity", ["hour", "day"], index=1, key="detail_grain", horizontal=True, format_func=str.capitalize
)
traffic = read(key_reads.key_traffic, db, key_name, start, end)
if grain == "hour":
    series = rollup(traffic["hourly"], "hour", ["calls", "jobs", "failed"], "hour", start=start, end=min(end, now))
    covered = traffic["coverage"].iloc[0] if not traffic["coverage"].empty else None
    seen = "no events seen yet"
    if covered is not None and pd.notna(covered["first_event_at"]):
        seen = f"first event seen {local_time(covered['first_event_at'], filters.tz)}"
        if covered["gaps"]:
            seen += f"; {int(covered['gaps'])} coverage gap(s)"
    st.caption(
        f"Grain: hourly. Calls per hour come from the events feed, which only exists since collection "
        f"began polling it ({seen}); jobs and failed jobs per hour are complete from the jobs list."
    )
else:
    daily = traffic["daily"].assign(day=lambda d: pd.to_datetime(d["day"]))
    series = rollup(daily, "day", ["calls", "jobs", "failed"], "day", start=start, end=end)
    st.caption("Grain: daily, from the usage summary (complete for every day it covers).")
long = series.melt(id_vars="period", value_vars=["calls", "jobs", "failed"], var_name="metric", value_name="count")
chart = (
    alt.Chart(long)
    .mark_line(interpolate="step-after" if grain == "hour" else "linear")
    .encode(
        x=alt.X("period:T", title=f"{grain.capitalize()} (UTC)"),
        y=alt.Y("count:Q", title="Count"),
        color=alt.Color("metric:N", title="Metric"),
        tooltip=[alt.Tooltip("period:T", format="%Y-%m-%d %H:%M"), "metric:N", alt.Tooltip("count:Q", format=",")],
    )
    .properties(height=260)
)
found_markers = chart_markers(db, start, min(end, now), [key_name])
st.altair_chart(with_markers(chart, found_markers, "period"), width="stretch")
markers_caption(found_markers)
annotation_form(db, key_name, now)
totals = series[["calls", "jobs", "failed"]].sum()
st.caption(
    f"In range: {number(totals['calls'])} calls, {number(totals['jobs'])} jobs, {number(totals['failed'])} failed."
)

st.subheader("Calls by endpoint, status and model")
breakdowns = traffic["breakdowns"]
if breakdowns["endpoint"].empty:
    st.info(
        "No events seen for this key in the range: event breakdowns need the events feed, which only holds "
        "calls made since collection began."
    )
else:
    st.caption("From the events seen in the range (429 counted apart from other 4xx).")
    for column, (name, frame) in zip(st.columns(3), breakdowns.items(), strict=True):
        bars = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                y=alt.Y(f"{name}:N", sort="-x", title=name.replace("_", " ")),
                x=alt.X("calls:Q", title="Calls"),
                tooltip=[f"{name}:N", alt.Tooltip("calls:Q", format=","), alt.Tooltip("credits:Q", format=",.2f")],
            )
            .properties(height=max(120, 28 * len(frame)))
        )
        column.altair_chart(bars, width="stretch")

st.subheader("Jobs")
search = st.text_input("Find a job by job_id or request_id (part of it is enough)", key="detail_job_search")
jobs = read(key_reads.key_jobs, db, key_name, search or None, 200)
checks = smoke_checks(db, key_name)
smoke_paths = dict(zip(checks["job_id"], checks["path"], strict=True)) if not checks.empty else {}
if jobs.empty:
    st.info("No jobs match." if search else "This key has no jobs.")
else:
    st.caption(
        f"{len(jobs)} newest matching job(s) shown, newest first. Jobs a smoke check made are labelled: their "
        "credits are tests, left out of anomaly baselines."
    )
    shown = jobs.assign(
        created_at=jobs["created_at"].map(lambda t: local_time(t, filters.tz)),
        output_url=jobs["output_url"].map(http_link),  # a link only when it is an http(s) URL
        smoke_check=jobs["job_id"].map(lambda j: f"{smoke_paths[j]} path" if j in smoke_paths else ""),
    )
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            "output_url": st.column_config.LinkColumn("output_url"),
            "credits_charged": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    job_id = st.selectbox("Status history of job", jobs["job_id"].tolist(), key="detail_job")
    history = read(key_reads.job_history, db, job_id)
    if history.empty:
        st.info("No status transitions recorded for this job.")
    else:
        history = history.assign(observed_at=history["observed_at"].map(lambda t: local_time(t, filters.tz)))
        st.dataframe(history, hide_index=True, width="stretch")

st.subheader("Smoke checks")
st.caption(
    "Each check makes one job from a short known clip (it must complete, its output URL must answer, it must be "
    "charged billed minutes × the model's rate and show up in the next collection) and one from an unreachable URL "
    "(it must fail, uncharged). Grain: one row per path and check, newest first."
)
config, config_problem = dashboard_config(settings.config_path)
if config is not None and key_name not in {k.name for k in config.keys}:
    config, config_problem = None, "the key is not in the loaded key config"
if st.button(
    "Run smoke check",
    key="detail_smoke_run",
    disabled=config is None,
    help=f"Unavailable: {config_problem}" if config is None else "Both paths, now (a few credits, within the cap)",
):
    key_config = next(k for k in config.keys if k.name == key_name)  # type: ignore[union-attr]
    try:
        with st.spinner("Checking both paths against the API…"):
            run = run_smoke_checks_now(config, settings.db_path, [key_config], trigger="dashboard")  # type: ignore[arg-type]
    except (ConfigError, StoreError) as exc:  # an unpriced model, a database that cannot be opened
        st.error(f"The smoke check could not run: {plain(exc, None)}")
    else:
        smoke_checks.clear()
        forget_reads()  # the check collected the key's jobs once more
        checks = smoke_checks(db, key_name)
        for verdict in run.verdicts:
            text = f"{verdict.observation.path} path: {plain(verdict.detail, None)}"
            (st.success if verdict.ok else st.error)(text)
        if run.alerts_opened:
            st.warning(f"{run.alerts_opened} alert(s) opened: see the Anomalies page.")
        if run.store_error:
            st.error(f"The results could not be stored: {plain(run.store_error, None)}")
elif config is None:
    st.caption(f"Running a check here needs the key's secret: {plain(config_problem, None)}.")
if checks.empty:
    st.info("No smoke check has run for this key yet.", icon=":material/science:")
else:
    latest = checks.iloc[0]
    word = "passed" if bool(checks[checks["checked_at"] == latest["checked_at"]]["ok"].all()) else "failed"
    st.caption(f"Latest check {word}, {local_time(latest['checked_at'], filters.tz)}.")
    st.dataframe(
        checks.assign(
            checked_at=checks["checked_at"].map(lambda t: local_time(t, filters.tz)),
            ok=checks["ok"].map({True: "✓ pass", False: "✗ fail"}),
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "credits_charged": st.column_config.NumberColumn(format="%.2f"),
            "credits_expected": st.column_config.NumberColumn(format="%.2f"),
            "detail": st.column_config.TextColumn("detail", width="large"),
        },
    )
