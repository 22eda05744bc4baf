"""Credits: what we were charged versus what the jobs should cost, down to the job that explains it."""

from datetime import datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from analytics import credits
from analytics.export import csv_frame
from analytics.ledger import LedgerResult, parse_ledger
from store import StoreError, credit_reads
from ui.format import local_time, localize_column, number
from ui.page import open_page

CACHE_TTL_S = 30


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def load_billing(db_path: str, since: datetime, until: datetime, envs: tuple[str, ...]) -> credits.BillingData:
    return _billing(db_path, since, until, envs)


def _billing(db_path: str, since: datetime, until: datetime, envs: tuple[str, ...]) -> credits.BillingData:
    envs_list = list(envs)
    return credits.BillingData(
        jobs=credit_reads.jobs_with_charges(db_path, since, until, envs_list),
        orphan_events=credit_reads.orphan_charge_events(db_path, since, until, envs_list),
        daily=credit_reads.daily_charges(db_path, since.date(), until.date(), envs_list),
        rates=credit_reads.pricing_rates(db_path),
        jobs_listed_at=credit_reads.jobs_listed_at(db_path),
    )


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reconciling every job in the range…", max_entries=8)
def reconcile(
    db_path: str,
    since: datetime,
    until: datetime,
    envs: tuple[str, ...],
    policy: credits.ReconcileSettings,
    now: datetime,
    start: datetime,
    end: datetime,
) -> tuple[bool, pd.DataFrame, credits.CreditSummary, pd.DataFrame, dict[str, float]]:
    """Without a ledger: (no data?, discrepancies, summary, settled jobs per day, rates), all small.

    A rerun (a filter or drill-down choice) then unpickles these few rows instead of every job in range
    and does not judge hundreds of thousands of jobs again.
    """
    data = _billing(db_path, since, until, envs)
    judged = credits.judge_range(data, policy, now, start, end)
    return data.jobs.empty and data.daily.empty, judged.found, judged.summary, judged.usage, data.rates


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
def check_ledger(data: bytes, max_bytes: int) -> LedgerResult:
    return parse_ledger(data, max_bytes)


settings, filters, now = open_page("Credits")

try:
    policy = credits.load_settings(settings.config_path)
except credits.ReconcileConfigError as exc:
    st.warning(f"Reconciliation settings not usable, using defaults: {exc}")
    policy = credits.ReconcileSettings()

start, end = credits.range_bounds(filters.start, filters.end, now)
envs = tuple(filters.environments)

# --- the team ledger: parsed in memory only; a bad file never reaches the collected data ----------
ledger = None
ledger_since = None
with st.expander("Team ledger (optional): compare your own job records", expanded=False):
    st.caption(
        "A CSV with `job_id` and `credits`, optionally `key_name, project_id, model, output_format, "
        f"duration_seconds, status, created_at`. Up to {policy.ledger_max_bytes / 1_048_576:.0f} MB, UTF-8. "
        "It is checked here and never stored."
    )
    upload = st.file_uploader("Ledger CSV", type=["csv", "txt"], key="ledger_upload")
    if upload is not None:
        result = check_ledger(upload.getvalue(), policy.ledger_max_bytes)
        if result.ok:
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
                f"Ledger **{upload.name}**: {len(ledger):,} rows; period {ledger_since:%d %b %Y %H:%M} – now (UTC)."
            )
        else:
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
        nothing, found, summary, usage, rates = reconcile(
            str(settings.db_path), load_since, load_until, envs, policy, minute, start, min(end, minute)
        )
        data = None
    else:
        data = load_billing(str(settings.db_path), load_since, load_until, envs)
        nothing, rates = data.jobs.empty and data.daily.empty, data.rates
except StoreError as exc:
    st.error(f"Cannot read the database: {exc}")
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
    found, summary, usage = judged.found, judged.summary, judged.usage

st.caption(
    f"{filters.start:%d %b %Y} – {filters.end:%d %b %Y} (UTC days) · environments: {', '.join(envs)} · "
    f"expected = billed minutes × model rate, {credits.ROUNDING_POLICIES[policy.rounding]}, "
    f"tolerance {policy.tolerance:g} credits"
)

cols = st.columns(5)
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
    "Cost per successful output",
    "—" if summary.cost_per_successful_output is None else number(summary.cost_per_successful_output, 2),
    help="Charged credits ÷ completed jobs that have an output URL.",
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
    shown = coverage.assign(
        covered_since=coverage["covered_since"].map(lambda t: local_time(t, filters.tz)),
        last_event_at=coverage["last_event_at"].map(lambda t: local_time(t, filters.tz)),
    )[["key_name", "environment", "covered_since", "last_event_at", "gaps", "gap_minutes"]]
    st.dataframe(shown, hide_index=True, width="stretch")

# --- discrepancies -------------------------------------------------------------------------------
st.subheader("Discrepancies")
if found.empty:
    st.success("No discrepancies in this range: every settled job was charged as expected.")
else:
    counts = found.groupby("category").agg(rows=("category", "size"), delta=("delta", "sum"))
    present = [c for c in credits.CATEGORIES if c in counts.index]
    st.caption(" · ".join(f"`{c}` {int(counts.loc[c, 'rows'])}" for c in present))
    fcols = st.columns(3)
    chosen_categories = fcols[0].multiselect(
        "Category",
        present,
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
    st.dataframe(
        view[
            [
                "category",
                "key_name",
                "job_id",
                "day",
                "expected_credits",
                "charged_credits",
                "delta",
                "refund_due",
                "detail",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            name: st.column_config.NumberColumn(format="%.2f")
            for name in ("expected_credits", "charged_credits", "delta", "refund_due")
        },
    )
    st.download_button(
        "Download discrepancies (CSV)",
        csv_frame(view[[*credits.OUTPUT_COLUMNS, "detail"]]),
        file_name=f"credit_discrepancies_{filters.start}_{filters.end}.csv",
        mime="text/csv",
        help="Cells that a spreadsheet would run as formulas are neutralized.",
    )

    # Drill-down: one discrepancy, its job as listed, the status trail and every event naming it.
    labels = [f"{r.category} · {r.key_name or '—'} · {r.job_id or r.day}" for r in view.itertuples()]
    picked_label = st.selectbox("Drill into", ["—", *labels], key="disc_drill")
    if picked_label != "—":
        row = view.iloc[labels.index(picked_label)]
        st.markdown(f"**{row['category']}** — {credits.CATEGORY_HELP[row['category']]}. {row['detail'] or ''}")
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
                st.dataframe(
                    pd.DataFrame({"field": list(facts), "value": [str(v) for v in facts.values()]}),
                    hide_index=True,
                    width="stretch",
                )
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
                st.dataframe(ledger[ledger["job_id"] == row["job_id"]], hide_index=True, width="stretch")
            st.caption(f"Events naming this job ({len(detail.events)})")
            if detail.events.empty:
                st.caption("No events collected for this job (it may predate event coverage).")
            else:
                events = detail.events.assign(occurred_at=localize_column(detail.events["occurred_at"], filters.tz))
                st.dataframe(events, hide_index=True, width="stretch")
        elif row["category"] == "summary_mismatch":
            if data is None:  # the job rows are only read again for this drill-down
                data = load_billing(str(settings.db_path), load_since, load_until, envs)
            day_jobs = data.jobs[
                (data.jobs["key_name"] == row["key_name"])
                & (pd.to_datetime(data.jobs["created_at"]).dt.strftime("%Y-%m-%d") == row["day"])
            ]
            st.caption(
                f"The usage summary billed {number(row['charged_credits'], 2)} credits to "
                f"`{row['key_name']}` on {row['day']}; its jobs and charge events add up to "
                f"{number(row['expected_credits'], 2)} ({len(day_jobs)} jobs)."
            )
            st.dataframe(
                day_jobs[
                    ["job_id", "created_at", "status", "model", "duration_seconds", "credits_charged", "charge_events"]
                ].sort_values("credits_charged", ascending=False),
                hide_index=True,
                width="stretch",
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
    chart = (
        alt.Chart(series)
        .mark_bar()
        .encode(
            x=alt.X("day:T", title="Day (UTC)"),
            y=alt.Y("credits:Q", title="Credits charged", stack=True),
            color=alt.Color("group:N", title=dimension.replace("_name", "")),
            tooltip=[
                alt.Tooltip("day:T"),
                "group:N",
                alt.Tooltip("credits:Q", format=",.2f"),
                alt.Tooltip("expected:Q", format=",.2f"),
                alt.Tooltip("jobs:Q", format=","),
            ],
        )
        .properties(height=280)
    )
    st.altair_chart(chart, width="stretch")
    st.caption("Grain: daily, by job creation time (from the jobs list, complete for all collected history).")

    st.subheader("Cost per successful output")
    per = credits.cost_per_successful_output(usage, dimension)
    st.dataframe(
        per.rename(
            columns={
                "credits": "credits charged",
                "successful_outputs": "successful outputs",
                "cost_per_output": "credits per output",
            }
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "credits charged": st.column_config.NumberColumn(format="%.2f"),
            "credits per output": st.column_config.NumberColumn(format="%.2f"),
        },
    )

with st.expander("Pricing used"):
    if rates:
        st.dataframe(pd.DataFrame({"model": list(rates), "credits per minute": list(rates.values())}), hide_index=True)
    else:
        st.warning("No pricing collected yet: expected credits cannot be computed.")
    st.caption(
        f"Summary days are compared once they are over by {policy.summary_settle_minutes:g} minutes and "
        "both the summary and the jobs were collected after that. "
        f"Range ends {local_time(end, filters.tz)}; data loaded from "
        f"{local_time(load_since, filters.tz)}."
    )
