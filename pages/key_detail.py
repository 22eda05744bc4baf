"""Key detail (deep link `?key=NAME`): identity, findings, traffic by hour or day, event breakdowns, jobs."""

from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from analytics.traffic import (
    by_route,
    daily_unknown,
    hourly_calls_unknown,
    hourly_jobs_unknown,
    mask_unknown,
    rollup,
)
from config import ConfigError
from formatting import COLORS, count, plural
from service.key_actions import dashboard_config
from service.smoke import history as smoke_history
from service.smoke import run_smoke_checks_now
from store import StoreError, key_reads, reads
from ui.annotations import Markers, annotation_form, chart_markers, markers_caption, with_markers
from ui.charts import lines, show
from ui.data import forget_reads, provenance_caption, read
from ui.format import local_time, plain, relative_age
from ui.key_findings import badge, key_with_findings
from ui.page import open_page
from ui.tables import table
from untrusted import http_link


@st.cache_data(ttl=30, show_spinner=False)
def smoke_checks(db_path: str, key_name: str) -> pd.DataFrame:
    return smoke_history(db_path, key_name, limit=500)


settings, filters, now = open_page("Key detail")
db, tz = str(settings.db_path), filters.tz


def choose_key(names: list[str]) -> str:
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
    return key_name


def fact(column: st.delta_generator.DeltaGenerator, label: str, value: str, help: str | None = None) -> None:
    """A labelled fact in full (a metric would cut an owner's name to 'platform-…')."""
    column.caption(label, help=help)
    column.markdown(f"**{value}**")


def identity(key: pd.Series) -> None:
    st.subheader(plain(key.name, None))
    cols = st.columns([1, 2, 1.3, 1, 1.3])
    fact(cols[0], "Environment", plain(key["environment"]))
    fact(cols[1], "Owner", plain(key["owner"], None) if isinstance(key["owner"], str) else "— none —")
    fact(cols[2], "Masked key", plain(key["masked_key"]))
    rotation_base = key["rotated_at"] if pd.notna(key["rotated_at"]) else key["created_at"]
    fact(
        cols[3],
        "Secret age",
        relative_age(rotation_base, now).replace(" ago", "") if pd.notna(rotation_base) else "unknown",
        help=f"Created {local_time(key['created_at'], tz)}; last rotated {local_time(key['rotated_at'], tz)}",
    )
    fact(
        cols[4],
        "Last used",
        relative_age(key["last_used_at"], now),
        help=f"Newest call seen: {local_time(key['last_used_at'], tz)}",
    )


def findings_of(key_name: str, view) -> None:
    mine = view.findings.frame[view.findings.frame["key_name"] == key_name]
    provenance_caption("findings", view.findings.provenance)
    if mine.empty:
        st.success("No findings: the key follows every rule.", icon=":material/verified:")
        return
    for row in mine.itertuples(index=False):
        left, right = st.columns([1, 4], vertical_alignment="center")
        with left:
            badge(row.finding)
        right.markdown(plain(row.detail, None))


def traffic(key_name: str) -> dict:
    start = datetime.combine(filters.start, datetime.min.time())
    end = datetime.combine(filters.end, datetime.min.time()) + timedelta(days=1)
    st.subheader("Traffic")
    grain = st.radio(
        "Granularity", ["hour", "day"], index=1, key="detail_grain", horizontal=True, format_func=str.capitalize
    )
    data = read(key_reads.key_traffic, db, key_name, start, end)
    held = read(reads.coverage, db, now=now.replace(second=0, microsecond=0))
    marked = chart_markers(db, start, min(end, now), [key_name])
    if grain == "hour":
        hourly_traffic(data, held, start, min(end, now), marked)
    else:
        daily_traffic(data, held, marked)
    markers_caption(marked)
    annotation_form(db, key_name, now)
    return data


def hourly_traffic(data: dict, held: reads.Coverage, start: datetime, end: datetime, marked: Markers) -> None:
    series = rollup(data["hourly"], "hour", ["calls", "jobs", "failed"], "hour", start=start, end=end)
    since = data["calls_coverage"]["since"]
    covered = since["covered_since"].iloc[0] if not since.empty else None
    gaps = data["calls_coverage"]["gaps"][["gap_start", "gap_end"]].itertuples(index=False)
    call_spans = hourly_calls_unknown(start, end, covered, list(gaps), held.events_read_at, tz)
    job_spans = hourly_jobs_unknown(start, end, held.jobs_read_at, tz)
    calls = mask_unknown(series, ["calls"], call_spans, "hour")
    jobs = mask_unknown(series, ["jobs", "failed"], job_spans, "hour")
    st.caption(
        f"Grain: hourly, times in {tz.key}. Calls per hour come from the events feed, so they exist only since "
        f"event polling began ({local_time(covered, tz)}); the hours before are grey, not zero (hover for why), and "
        "the Day view has every day's calls. Jobs and failed jobs per hour are complete from the jobs list."
    )
    panels("hour", (calls, call_spans, held.events_read_at), (jobs, job_spans, held.jobs_read_at), marked)
    totals(calls, jobs, "hour")


def daily_traffic(data: dict, held: reads.Coverage, marked: Markers) -> None:
    daily = data["daily"].assign(day=lambda d: pd.to_datetime(d["day"]))
    start = datetime.combine(filters.start, datetime.min.time())
    end = datetime.combine(filters.end, datetime.min.time()) + timedelta(days=1)
    series = rollup(daily, "day", ["calls", "jobs", "failed"], "day", start=start, end=end)
    spans = daily_unknown(filters.start, filters.end, held.first_day, held.summary_read_at, tz)
    series = mask_unknown(series, ["calls", "jobs", "failed"], spans, "day")
    st.caption(
        "Grain: daily UTC days, from the usage summary (complete for every day it covers). The hollow point is "
        "the day in progress; grey bands are days nobody collected."
    )
    panels("day", (series, spans, held.summary_read_at), (series, spans, held.summary_read_at), marked)
    totals(series, series, "day")


def panels(grain: str, calls: tuple, jobs: tuple, marked: Markers) -> None:
    """Calls, then jobs with failed jobs, each (series, unknown spans, last read) on its own axis: a handful of
    failed jobs stays visible beside thousands of calls. Both carry the key's markers."""
    for (frame, spans, read_at), series, title, height, key in (
        (calls, {"calls": ("Calls", COLORS["observed"])}, "Calls", 200, "detail_calls_chart"),
        (jobs, {"jobs": ("Jobs", COLORS["partial"]), "failed": ("Failed jobs", COLORS["failed"])}, "Jobs", 170,
         "detail_jobs_chart"),
    ):  # fmt: skip
        chart = lines(
            frame,
            series,
            grain,
            tz,
            spans=spans,
            read_at=read_at,
            y_title=f"{title} per {grain}",
            height=height,
        )
        show(with_markers(chart, marked, grain, tz), key=key)


def totals(calls: pd.DataFrame, jobs: pd.DataFrame, grain: str) -> None:
    unknown = int(calls["calls"].isna().sum())
    note = f" ({plural(unknown, grain)} of calls nobody collected are not counted)" if unknown else ""
    st.caption(
        f"In range: {count(calls['calls'].sum())} calls{note}, {count(jobs['jobs'].sum())} jobs, "
        f"{count(jobs['failed'].sum())} failed."
    )


def breakdowns(data: dict) -> None:
    st.subheader("Calls by endpoint, status and model")
    found = data["breakdowns"]
    if found["endpoint"].empty:
        st.info(
            "No events seen for this key in the range: event breakdowns need the events feed, which only holds "
            "calls made since collection began."
        )
        return
    st.caption(
        "From the events seen in the range. Endpoints are grouped by route (`{id}` stands for any job or upload "
        "id); 429 (rate limited) is a status class of its own, apart from the other 4xx errors."
    )
    frames = {"endpoint": by_route(found["endpoint"]), "status_class": found["status_class"], "model": found["model"]}
    titles = {"endpoint": "Endpoint (route)", "status_class": "Status class", "model": "Model"}
    for column, (name, frame) in zip(st.columns(3), frames.items(), strict=True):
        bars = (
            alt.Chart(frame)
            .mark_bar(color=COLORS["observed"])
            .encode(
                y=alt.Y(f"{name}:N", sort="-x", title=titles[name], axis=alt.Axis(labelLimit=180)),
                x=alt.X("calls:Q", title="Calls"),
                tooltip=[
                    alt.Tooltip(f"{name}:N", title=titles[name]),
                    alt.Tooltip("calls:Q", title="Calls", format=","),
                    alt.Tooltip("credits:Q", title="Credits", format=",.2f"),
                ],
            )
            .properties(height=max(120, 28 * len(frame)))
        )
        with column:
            show(bars)


def jobs_of(key_name: str) -> None:
    st.subheader("Jobs")
    search = st.text_input("Find a job by job id or request id (part of it is enough)", key="detail_job_search")
    jobs = read(key_reads.key_jobs, db, key_name, search or None, 200)
    if jobs.empty:
        st.info("No jobs match." if search else "This key has no jobs.")
        return
    checks = smoke_checks(db, key_name)
    smoke_paths = dict(zip(checks["job_id"], checks["path"], strict=True)) if not checks.empty else {}
    st.caption(
        f"{len(jobs)} newest matching job(s), newest first; times in {tz.key}. Jobs a smoke check made are labelled: "
        "their credits are tests, left out of anomaly baselines."
    )
    shown = jobs.assign(
        created_at=jobs["created_at"].map(lambda t: local_time(t, tz)),
        output_url=jobs["output_url"].map(http_link),  # a link only when it is an http(s) URL
        smoke_check=jobs["job_id"].map(lambda j: f"{smoke_paths[j]} path" if j in smoke_paths else ""),
    )[
        [
            "job_id",
            "status",
            "created_at",
            "model",
            "credits_charged",
            "duration_seconds",
            "billing_status",
            "output_url",
            "error",
            "smoke_check",
            "output_format",
            "request_ids",
        ]
    ]
    table(
        shown,
        {
            "output_url": st.column_config.LinkColumn("Output"),
            "duration_seconds": st.column_config.NumberColumn("Duration (s)", format="%,.1f"),
            "error": st.column_config.TextColumn("Error", width="medium"),
        },
        rows=12,
        main=True,
    )
    job_id = st.selectbox("Status history of job", jobs["job_id"].tolist(), key="detail_job")
    history = read(key_reads.job_history, db, job_id)
    if history.empty:
        st.info("No status transitions recorded for this job.")
    else:
        table(history.assign(observed_at=history["observed_at"].map(lambda t: local_time(t, tz))))


def smoke_section(key_name: str) -> None:
    st.subheader("Smoke checks")
    st.caption(
        "Each check makes one job from a short known clip (it must complete, its output URL must answer, it must be "
        "charged billed minutes × the model's rate and show up in the next collection) and one from an unreachable "
        "URL (it must fail, uncharged). Grain: one row per path and check, newest first."
    )
    config, config_problem = dashboard_config(settings.config_path)
    if config is not None and key_name not in {k.name for k in config.keys}:
        config, config_problem = None, "the key is not in the loaded key config"
    checks = smoke_checks(db, key_name)
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
        return
    latest = checks.iloc[0]
    word = "passed" if bool(checks[checks["checked_at"] == latest["checked_at"]]["ok"].all()) else "failed"
    st.caption(f"Latest check {word}, {local_time(latest['checked_at'], tz)}.")
    table(
        checks.assign(
            checked_at=checks["checked_at"].map(lambda t: local_time(t, tz)),
            ok=checks["ok"].map({True: "✓ pass", False: "✗ fail"}),
        ),
        {"ok": st.column_config.TextColumn("Result")},
    )


chosen = choose_key(read(key_reads.key_names, db))
view, _ = key_with_findings(settings, now, chosen)
identity(view.inventory.set_index("key_name").loc[chosen])
findings_of(chosen, view)
breakdowns(traffic(chosen))
jobs_of(chosen)
smoke_section(chosen)
