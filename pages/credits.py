"""Credits: what we were charged versus what the jobs should cost, down to the job that explains it."""

import math
from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from analytics import credits
from analytics.export import csv_frame
from analytics.ledger import HEADER_ALIASES, REQUIRED_COLUMNS, LedgerResult, describe_size, parse_ledger
from analytics.pricing import PricingConfig
from formatting import day_span, for_export
from service import credits as credit_cases
from store import StoreError, credit_reads, reads
from ui.budgets_panel import budgets_section
from ui.charts import mark_partial, partial_opacity, periods, show, time_axis
from ui.data import page_config, provenance_caption, read
from ui.format import local_time, localize_column, number, plain
from ui.page import open_page
from ui.tables import SHOWN_ROWS_HINT, capped, table

CACHE_TTL_S = 30


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_billing(
    db_path: str, since: datetime, until: datetime, envs: tuple[str, ...], configured: PricingConfig
) -> credits.BillingData:
    return credit_cases.billing_data(db_path, since, until, list(envs), configured)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reconciling every job in the range…", max_entries=8)
def reconcile(
    db_path: str,
    policy: credits.ReconcileSettings,
    now: datetime,
    start: datetime,
    end: datetime,
    envs: tuple[str, ...],
) -> credit_cases.Judged:
    """Without a ledger: the range's judgement, read from the days the collector's refresh judged when they
    cover it, else judged now. All of it is small: a rerun (a filter or drill-down choice) unpickles these
    few rows instead of every job in range, and does not judge hundreds of thousands of jobs again."""
    return credit_cases.judge(db_path, policy, now, start, end, list(envs))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_all_jobs(db_path: str, since: datetime, until: datetime) -> pd.DataFrame:
    return credit_reads.jobs_with_charges(db_path, since, until)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_coverage(db_path: str, envs: tuple[str, ...]) -> pd.DataFrame:
    return credit_reads.event_coverage(db_path, list(envs))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_job_detail(db_path: str, job_id: str) -> credit_reads.JobDetail:
    return credit_reads.job_detail(db_path, job_id)


@st.cache_data(show_spinner=False, max_entries=4)
def check_ledger(data: bytes, max_bytes: int, mapping: tuple[tuple[str, str], ...] = ()) -> LedgerResult:
    return parse_ledger(data, max_bytes, dict(mapping))


def category_words(category: str) -> str:
    """A discrepancy category in words ('failed but charged'); its code goes to tooltips and exports."""
    return category.replace("_", " ")


def map_columns(result: LedgerResult, file_key: str) -> tuple[tuple[str, str], ...] | None:
    """The column-mapping step: the user says which of the file's columns is which; None until both required are."""
    st.warning(
        f"The columns {', '.join(f'`{c}`' for c in result.missing)} were not recognised in this file. "
        "Choose which of its columns hold them (optional ones may stay unset).",
        icon=":material/table_edit:",
    )
    options = ["—", *result.columns]
    chosen: dict[str, str] = {}
    unset = [c for c in HEADER_ALIASES if c not in result.recognized]
    cols = st.columns(min(4, len(unset)) or 1)
    for index, canonical in enumerate(unset):
        label = canonical + ("" if canonical in REQUIRED_COLUMNS else " (optional)")
        picked = cols[index % len(cols)].selectbox(label, options, key=f"ledger_map_{canonical}_{file_key}")
        if picked != "—":
            chosen[canonical] = picked
    if any(c not in chosen for c in result.missing):
        return None
    return tuple(sorted({**result.recognized, **chosen}.items()))


settings, filters, now = open_page("Credits")

config, problem = page_config(settings.config_path)
if problem:
    st.warning(f"Reconciliation settings not usable, using defaults: {plain(problem, None)}")
policy = config.reconciliation

start, end = credits.range_bounds(filters.start, filters.end, now)
envs = tuple(filters.environments)

budgets_section(str(settings.db_path), config.budgets, now, filters.tz)

# --- the team ledger: parsed in memory only; a bad file never reaches the collected data ----------
ledger = None
ledger_since = None
# The server refuses bodies over server.maxUploadSize (.streamlit/config.toml) before any of this runs.
upload_limit = min(policy.ledger_max_bytes, int(st.get_option("server.maxUploadSize")) * 1_048_576)
with st.expander("Team ledger (optional): compare your own job records", expanded=False):
    st.caption(
        "CSV (`,` `;` or tab; thousands separators and decimal commas are fine) or JSON Lines, with a job id "
        "and its credits, optionally `key_name, project_id, model, output_format, duration_seconds, status, "
        f"created_at`; common header names are recognised, others you map here. Up to "
        f"{describe_size(upload_limit)}, UTF-8. It is checked here and never stored."
    )
    upload = st.file_uploader(
        "Ledger file",
        type=["csv", "txt", "tsv", "jsonl", "ndjson"],
        key="ledger_upload",
        max_upload_size=max(1, math.floor(upload_limit / 1_048_576)),
    )
    if upload is not None:
        result = None
        if upload.size > policy.ledger_max_bytes:
            # Refused by its size alone: the bytes are never copied out or parsed.
            st.error(
                f"**{upload.name}** cannot be used: the file is {describe_size(upload.size)}; the limit is "
                f"{describe_size(policy.ledger_max_bytes)} (split the ledger by period, or raise "
                "[reconciliation] ledger_max_mb)."
            )
        else:
            data_bytes = upload.getvalue()
            result = check_ledger(data_bytes, policy.ledger_max_bytes)
            if result.needs_mapping:
                mapping = map_columns(result, f"{upload.file_id}")
                result = check_ledger(data_bytes, policy.ledger_max_bytes, mapping) if mapping else None
        if result is not None and result.ok:
            ledger = result.frame
            created = pd.to_datetime(ledger["created_at"]).dropna()
            default_since = created.min().date() if not created.empty else filters.start
            picked = st.date_input(
                "Ledger period starts (UTC)",
                value=default_since,
                max_value=now.date(),
                key="ledger_since",
                help="Provider jobs created from this day up to now should all be in the ledger.",
            )
            # The untouched default keeps the exact earliest timestamp: jobs earlier that day are outside.
            if not created.empty and picked == default_since:
                ledger_since = created.min().to_pydatetime()
            else:
                ledger_since = datetime(picked.year, picked.month, picked.day)
            st.success(
                f"Ledger **{upload.name}** ({result.file_format}): {len(ledger):,} rows; "
                f"period {local_time(ledger_since, filters.tz)} – now."
            )
        elif result is not None and not result.needs_mapping:
            lines = result.error_lines()
            st.error(
                f"**{upload.name}** cannot be used ({len(result.errors) + result.more_errors} problem(s)); "
                "fix the file and upload it again:\n\n" + "\n".join(f"- {line}" for line in lines)
            )

load_since = min(start, ledger_since) if ledger_since is not None else start
# The whole last day, not `now`, bounds the load so the cache key is stable across reruns; the
# analytics cut everything at `now` anyway.
load_until = datetime(filters.end.year, filters.end.month, filters.end.day) + timedelta(days=1)
try:
    coverage = load_coverage(str(settings.db_path), envs)
    if ledger is None:
        # The common case: judged once per data window and cached; the job rows stay out of the rerun path.
        # Judged as of the minute (as on the Keys page) so reruns within a minute share the cached judgement.
        minute = now.replace(second=0, microsecond=0)
        done = reconcile(str(settings.db_path), policy, minute, start, min(end, minute), envs)
        nothing, judged = done.nothing, done.judgement
        provenance_caption("discrepancies", done.provenance)
        data = None
    else:
        data = load_billing(str(settings.db_path), load_since, load_until, envs, policy.pricing)
        nothing = data.jobs.empty and data.daily.empty
except StoreError as exc:
    st.error(f"Cannot read the database: {plain(exc, None)}")
    st.stop()

if nothing:
    st.info("No jobs or usage collected in this range for the selected environments.")
    st.stop()

if data is not None:
    ledger_jobs = None
    if ledger_since is not None:
        # The ledger is matched against every environment's jobs, then narrowed to the selected ones.
        ledger_jobs = load_all_jobs(str(settings.db_path), ledger_since, load_until)
    judged = credits.judge_range(data, policy, now, start, end, ledger, ledger_since, ledger_jobs, envs)
found, summary, usage, pricing = judged.found, judged.summary, judged.usage, judged.pricing
rates = pricing.rates

st.caption(
    f"{day_span(filters.start, filters.end)} (UTC days) · environments: {', '.join(envs)} · "
    f"expected = billed minutes × model rate, {credits.ROUNDING_POLICIES[policy.rounding]}, "
    f"tolerance {policy.tolerance:g} credits · **pricing: {pricing.label}**"
)
if pricing.warning:
    st.warning(f"Pricing: {pricing.warning}. Over- and undercharges are judged with {pricing.label}.")
if judged.ledger_unjudged is not None and not judged.ledger_unjudged.empty:
    unjudged = judged.ledger_unjudged
    reasons = unjudged["window"].value_counts()
    st.info(
        f"{len(unjudged):,} ledger row(s) the provider never listed fall outside what its listing covers, so "
        "they are labelled, not judged: " + "; ".join(f"{n:,} {why}" for why, n in reasons.items()) + ".",
        icon=":material/label:",
    )
    with st.expander("Ledger rows not judged"):
        table(
            unjudged[["job_id", "key_name", "window", "credits", "created_at", "line"]],
            {"window": st.column_config.TextColumn("Why not judged", width="large")},
        )

# Two rows: a month's credits run to a dozen characters, which five columns at 1,400 px cut short.
cols = [*st.columns(3), *st.columns(3)[:2]]
cols[0].metric(
    "Charged",
    number(summary.charged, 2),
    help="Settled jobs' credits plus extra charge events (duplicates, charges for unlisted jobs).",
)
cols[1].metric(
    "Expected",
    number(summary.expected, 2),
    help="Billed minutes × model rate for completed jobs; failed jobs are expected to cost nothing.",
)
cols[2].metric("Net difference", number(summary.net_difference, 2), help="Charged − expected.")
cols[3].metric(
    "Refunds due",
    number(summary.refunds_due, 2),
    help="Overcharges, failed-but-charged jobs, duplicate and orphan charges.",
)
cols[4].metric(
    "Per successful output",
    "—" if summary.cost_per_successful_output is None else number(summary.cost_per_successful_output, 2),
    help="Cost per successful output: charged credits ÷ completed jobs that have an output URL.",
)
notes = [
    f"{summary.settled_jobs:,} settled jobs, {summary.successful_outputs:,} successful outputs",
    f"daily summaries billed {number(summary.summary_billed, 2)}",
]
if summary.in_flight_jobs:
    notes.append(f"{summary.in_flight_jobs:,} job(s) still running are not judged yet")
if summary.unpriced_jobs:
    notes.append(f"{summary.unpriced_jobs:,} job(s) on a model without a collected price count as expected")
if summary.missing_output_credits:
    notes.append(f"{number(summary.missing_output_credits, 2)} credits paid for jobs without an output link")
st.caption(" · ".join(notes))

# --- event coverage: duplicate and orphan charges can only be judged where events were collected ----
covered_since = pd.to_datetime(coverage["covered_since"]).dropna()
gap_count = int(coverage["gaps"].sum()) if not coverage.empty else 0
uncovered = summary.jobs - summary.events_covered_jobs
coverage_text = (
    "Duplicate and orphan charges come from the usage-events feed (the 100 most recent calls per "
    "poll), so they are judged only where events were collected: "
)
if covered_since.empty:
    coverage_text += "no events collected yet."
else:
    coverage_text += (
        f"since {local_time(covered_since.min(), filters.tz)} for the earliest key "
        f"(latest start {local_time(covered_since.max(), filters.tz)})"
    )
    coverage_text += f", with {gap_count} gap(s)." if gap_count else ", no gaps."
if uncovered > 0:
    coverage_text += f" {uncovered:,} of {summary.jobs:,} jobs in range were created outside that coverage."
if uncovered > 0 or gap_count:
    st.info(coverage_text, icon=":material/info:")
else:
    st.caption(coverage_text)
with st.expander("Event coverage per key"):
    # Keys with gaps first: those are the ones whose duplicate and orphan charges may be missing.
    by_gaps = coverage.sort_values(["gaps", "key_name"], ascending=[False, True], kind="stable")
    listed = capped(by_gaps, "keys (most gaps first)", f"{SHOWN_ROWS_HINT} environments in the sidebar")
    shown = listed.assign(
        covered_since=listed["covered_since"].map(lambda t: local_time(t, filters.tz)),
        last_event_at=listed["last_event_at"].map(lambda t: local_time(t, filters.tz)),
    )[["key_name", "environment", "covered_since", "last_event_at", "gaps", "gap_minutes"]]
    table(shown)
    if len(listed) < len(by_gaps):
        st.download_button(
            "Download event coverage (CSV)",
            lambda: csv_frame(for_export(by_gaps, filters.tz, times=("covered_since", "last_event_at"))),
            file_name=f"event_coverage_{now:%Y%m%d}.csv",
            mime="text/csv",
            key="download_coverage",
        )

# --- discrepancies -------------------------------------------------------------------------------
st.subheader("Discrepancies")
summary_days = judged.summary_days
explained_days = summary_days[summary_days["status"] == "explained"] if not summary_days.empty else summary_days
if not explained_days.empty:
    explained_credits = number(explained_days["explained_credits"].sum(), 2)
    st.caption(
        f"{len(explained_days):,} key-day(s) where the daily summary differs from the jobs and charge events only "
        f"by listed duplicate, orphan or failed-but-charged rows ({explained_credits} credits): those credits are "
        "reported once, in those rows, not again as a summary mismatch."
    )
if found.empty:
    st.success("No discrepancies in this range: every settled job was charged as expected.")
else:
    counts = found.groupby("category").agg(rows=("category", "size"), delta=("delta", "sum"))
    present = [c for c in credits.CATEGORIES if c in counts.index]
    st.caption(" · ".join(f"{category_words(c)} {int(counts.loc[c, 'rows']):,}" for c in present))
    fcols = st.columns(3)
    chosen_categories = fcols[0].multiselect(
        "Category",
        present,
        format_func=category_words,
        key="disc_category",
        help="Empty means all. " + "; ".join(f"{c}: {credits.CATEGORY_HELP[c]}" for c in present),
    )
    key_options = sorted(k for k in found["key_name"].dropna().unique())
    chosen_keys = fcols[1].multiselect("Key", key_options, key="disc_key", help="Empty means all.")
    day_options = sorted((d for d in found["day"].dropna().unique()), reverse=True)
    chosen_day = fcols[2].selectbox("Day (UTC)", ["All days", *day_options], key="disc_day")
    view = found
    if chosen_categories:
        view = view[view["category"].isin(chosen_categories)]
    if chosen_keys:
        view = view[view["key_name"].isin(chosen_keys)]
    if chosen_day != "All days":
        view = view[view["day"] == chosen_day]
    view = view.reset_index(drop=True)
    listed = capped(view, "discrepancies (in judged order)", f"{SHOWN_ROWS_HINT} by category, key or day")
    table(
        listed.assign(kind=listed["category"].map(category_words))[
            [
                "kind",
                "key_name",
                "delta",
                "refund_due",
                "day",
                "job_id",
                "expected_credits",
                "charged_credits",
                "detail",
                "pricing_source",
                "category",
            ]
        ],
        {
            "kind": st.column_config.TextColumn(
                "Discrepancy",
                help="; ".join(f"{category_words(c)} (`{c}`): {credits.CATEGORY_HELP[c]}" for c in present),
            ),
            "delta": st.column_config.NumberColumn("Difference", format="%+,.2f", help="Charged − expected credits"),
            "category": None,  # its code is in the heading's tooltip and the CSV
        },
        rows=12,
        main=True,
    )
    st.download_button(
        "Download discrepancies (CSV)",
        # Written when clicked: tens of thousands of rows would cost seconds on every view.
        lambda: csv_frame(for_export(view[[*credits.OUTPUT_COLUMNS, "detail"]])),
        file_name=f"credit_discrepancies_{filters.start}_{filters.end}.csv",
        mime="text/csv",
        help="Cells that a spreadsheet would run as formulas are neutralized.",
    )

    # Drill-down: one discrepancy, its job as listed, the status trail and every event naming it.
    labels = [f"{category_words(r.category)} · {r.key_name or '—'} · {r.job_id or r.day}" for r in listed.itertuples()]
    picked_label = st.selectbox("Drill into", ["—", *labels], key="disc_drill", help="A row of the table above.")
    if picked_label != "—":
        row = listed.iloc[labels.index(picked_label)]
        st.markdown(
            f"**{category_words(row['category'])}** — {credits.CATEGORY_HELP[row['category']]}. "
            f"{plain(row['detail'] or '', None)}",
            help=f"Category code: `{row['category']}`",
        )
        st.caption(f"Judged with pricing `{row['pricing_source']}`: {pricing.label}.")
        if row["category"] in credits.EXPLAINING and not summary_days.empty:
            # Where this row's credits stand in its key's daily summary: counted there, or what the summary left out.
            named = f"{row['category']} {row['job_id']}"
            day_row = summary_days[summary_days["explained_by"].map(lambda by: named in by)]
            if not day_row.empty:
                day = day_row.iloc[0]
                st.info(
                    f"Explained: the usage summary of `{day['key_name']}` on {day['day']} billed "
                    f"{number(day['summary_credits'], 2)} credits, {number(-day['delta'], 2)} less than its jobs "
                    f"and charge events ({number(day['charges'], 2)}); this row accounts for that difference "
                    f"({'; '.join(day['explained_by'])}), so it is not reported again as a summary mismatch.",
                    icon=":material/check_circle:",
                )
        if row["job_id"]:
            detail = load_job_detail(str(settings.db_path), str(row["job_id"]))
            if detail.job is None:
                st.caption(f"Job `{row['job_id']}` was never listed by the provider.")
            else:
                job = detail.job
                facts = {
                    "job": job["job_id"],
                    "key": job["key_name"],
                    "status": job["status"],
                    "billing status": job.get("billing_status"),
                    "model": job.get("model"),
                    "duration (s)": job.get("duration_seconds"),
                    "credits charged": job.get("credits_charged"),
                    "output URL": job.get("output_url") or "— none —",
                    "error": job.get("error") or "—",
                    "created": local_time(job["created_at"], filters.tz),
                }
                table(pd.DataFrame({"field": list(facts), "value": [str(v) for v in facts.values()]}))
                if not detail.history.empty:
                    st.caption(
                        "Status transitions as observed: "
                        + " → ".join(
                            f"{s} ({local_time(t, filters.tz)})"
                            for s, t in zip(detail.history["status"], detail.history["observed_at"], strict=True)
                        )
                    )
            if ledger is not None and row["job_id"] in set(ledger["job_id"]):
                st.caption("Ledger row")
                table(ledger[ledger["job_id"] == row["job_id"]])
            st.caption(f"Events naming this job ({len(detail.events)})")
            if detail.events.empty:
                st.caption("No events collected for this job (it may predate event coverage).")
            else:
                events = detail.events.assign(occurred_at=localize_column(detail.events["occurred_at"], filters.tz))
                table(events)
        elif row["category"] == "summary_mismatch":
            if data is None:  # the job rows are only read again for this drill-down
                data = load_billing(str(settings.db_path), load_since, load_until, envs, policy.pricing)
            day_jobs = data.jobs[
                (data.jobs["key_name"] == row["key_name"])
                & (pd.to_datetime(data.jobs["created_at"]).dt.strftime("%Y-%m-%d") == row["day"])
            ]
            st.caption(
                f"The usage summary billed {number(row['charged_credits'], 2)} credits to "
                f"`{row['key_name']}` on {row['day']}; its jobs and charge events add up to "
                f"{number(row['expected_credits'], 2)} ({len(day_jobs)} jobs)."
            )
            same_day = summary_days[(summary_days["key_name"] == row["key_name"]) & (summary_days["day"] == row["day"])]
            if not same_day.empty and same_day.iloc[0]["explained_credits"]:
                day = same_day.iloc[0]
                st.caption(
                    f"Already reported in their own rows and left out here: {number(day['explained_credits'], 2)} "
                    f"credits ({'; '.join(day['explained_by'])}). The {number(row['delta'], 2)} above is the "
                    "unexplained remainder."
                )
            table(
                day_jobs[
                    ["job_id", "credits_charged", "status", "model", "duration_seconds", "created_at", "charge_events"]
                ]
                .sort_values("credits_charged", ascending=False)
                .assign(created_at=lambda d: localize_column(d["created_at"], filters.tz)),
                rows=12,
            )

# --- spend over time ----------------------------------------------------------------------------
st.subheader("Credits over time")
if usage.empty:
    st.info("No settled jobs in this range.")
else:
    dimension = st.radio(
        "Group by",
        ["model", "key_name", "environment"],
        horizontal=True,
        key="credits_by",
        format_func=lambda d: {"key_name": "key"}.get(d, d),
    )
    series = credits.credits_over_time(usage, dimension)
    minute = now.replace(second=0, microsecond=0)
    jobs_read_at = read(reads.coverage, settings.db_path, list(envs), now=minute).jobs_read_at
    data = mark_partial(series.rename(columns={"day": "period"}), jobs_read_at, "day", filters.tz)
    data = periods(data, "day", filters.tz)
    heading = {"key_name": "Key", "model": "Model", "environment": "Environment"}[dimension]
    chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=time_axis("x", "day", filters.tz),
            y=alt.Y("credits:Q", title="Credits charged", stack=True),
            color=alt.Color("group:N", title=heading),
            opacity=partial_opacity(),
            tooltip=[
                alt.Tooltip("when:N", title="Day (UTC)"),
                alt.Tooltip("group:N", title=heading),
                alt.Tooltip("credits:Q", title="Credits charged", format=",.2f"),
                alt.Tooltip("expected:Q", title="Expected", format=",.2f"),
                alt.Tooltip("jobs:Q", title="Jobs", format=","),
                alt.Tooltip("state:N", title="Day"),
            ],
        )
        .properties(height=280)
    )
    show(chart)
    st.caption(
        "Grain: daily UTC days, by job creation time (from the jobs list, complete for all collected history); "
        "the faint bar is the day in progress."
    )

    st.subheader("Cost per successful output")
    per = credits.cost_per_successful_output(usage, dimension)
    if dimension == "key_name":
        st.download_button(
            "Download cost per key (CSV)",
            lambda: csv_frame(for_export(per)),
            file_name=f"cost_per_output_by_key_{filters.start}_{filters.end}.csv",
            mime="text/csv",
            key="download_cost_per_key",
        )
    table(
        capped(per, "keys (most credits first)", f"{SHOWN_ROWS_HINT} environments in the sidebar"),
        {
            "credits": st.column_config.NumberColumn("Credits charged", format="%,.2f"),
            "successful_outputs": st.column_config.NumberColumn("Successful outputs", format="%,d"),
            "cost_per_output": st.column_config.NumberColumn("Credits per output", format="%,.2f"),
        },
    )

with st.expander(f"Pricing used: {pricing.source}"):
    st.caption(pricing.label[:1].upper() + pricing.label[1:] + ".")
    table(
        pd.DataFrame(
            {
                "model": list(rates),
                "credits_per_minute": list(rates.values()),
                "source": [pricing.sources.get(m, pricing.source) for m in rates],
            }
        ),
        {"credits_per_minute": st.column_config.NumberColumn("Credits per minute", format="%,.2f")},
    )
    st.caption(
        f"Summary days are compared once they are over by {policy.summary_settle_minutes:g} minutes and "
        "both the summary and the jobs were collected after that. "
        f"Range ends {local_time(end, filters.tz)}; data loaded from "
        f"{local_time(load_since, filters.tz)}."
    )
