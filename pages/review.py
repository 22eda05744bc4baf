"""Weekly review: what needs a decision, what changed since last week, and the report to share."""

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from analytics import credits
from analytics.cli_keys import UsageError, rules_from_file
from analytics.keys import Rules
from analytics.review import build_review, default_week, load_inputs, week_bounds
from analytics.review_render import charts, render, sections
from store import StoreError
from store.decisions import DECISIONS, Decision, last_decisions, record
from store.state_file import state_path
from ui.filters import utc_now
from ui.format import plain
from ui.key_actions import action_panel
from ui.page import open_page

WEEKS_OFFERED = 12


@st.cache_data(ttl=60, show_spinner="Building the review…")
def review_inputs(db_path: str, week: str, now: datetime, config_path: str | None) -> tuple[dict, str | None]:
    """Store inputs of the review (decisions are read fresh on every run, not cached)."""
    problem = None
    try:
        rules = rules_from_file(config_path)
    except UsageError as exc:
        rules, problem = Rules(), f"{exc}; using the default rules"
    try:
        settings = credits.load_settings(config_path)
    except credits.ReconcileConfigError as exc:
        settings, problem = credits.ReconcileSettings(), f"{exc}; using the default reconciliation settings"
    return load_inputs(db_path, week, now, rules, settings, state_db=None), problem


settings, filters, now = open_page("Weekly review")

latest = default_week(now)
latest_start, _ = week_bounds(latest)
weeks = [default_week(latest_start + timedelta(days=7 * (1 - i))) for i in range(WEEKS_OFFERED)]
week = st.selectbox(
    "ISO week", weeks, index=0, key="review_week", help="Default: the last full week. Compared with the week before."
)
db = str(settings.db_path)
state = state_path(settings.db_path)
try:
    inputs, problem = review_inputs(
        db, week, now.replace(second=0, microsecond=0), str(settings.config_path) if settings.config_path else None
    )
    decided = last_decisions(state)
except StoreError as exc:
    st.error(f"Cannot build the review: {plain(exc, None)}")
    st.stop()
if problem:
    st.warning(plain(problem, None), icon=":material/rule:")
review = build_review({**inputs, "decisions": decided}, week, now)

info = review["week"]
act = info["activity"]
st.caption(f"{info['start'][:10]} to {info['end'][:10]} (UTC), compared with {info['previous_week']}.")
if not info["has_activity"]:
    st.info("No calls or jobs were recorded in this week.")
if not info["complete"]:
    st.warning(f"This week is not over: figures run to {info['generated_at']}.")
cols = st.columns(4)
for col, name in zip(cols, ("calls", "jobs", "failed", "credits"), strict=True):
    pct = act[name]["change_pct"]
    col.metric(name.capitalize(), f"{act[name]['current']:,.0f}", None if pct is None else f"{pct:+.1f}% WoW")

st.subheader("Keys needing a decision")
needed = review["decisions_needed"]
if not needed:
    st.success("No flagged keys this week.")
for item in needed:
    key = item["key_name"]
    labels = ", ".join(f["label"] + (" (new)" if f["new"] else "") for f in item["findings"])
    last = item["last_decision"]
    header = f"{'🆕 ' if item['new'] else ''}{plain(f'{key}: {labels}', None)}"
    with st.expander(header, expanded=item["new"]):
        for finding in item["findings"]:
            st.markdown(f"- **{plain(finding['label'], None)}**: {plain(finding['detail'], None)}")
        if last:
            st.markdown(
                f"Last decision: **{plain(last['decision'])}** by {plain(last['decided_by'], None)} on "
                f"{str(last['decided_at'])[:10]} (week {plain(last['week'])})"
                + (f": {plain(last['note'], None)}" if last["note"] else "")
            )
        else:
            st.caption("No decision recorded yet.")
        with st.form(f"decide_{key}", clear_on_submit=True):
            who = st.text_input("Who", key=f"who_{key}")
            choice = st.selectbox("Decision", DECISIONS, key=f"decision_{key}")
            note = st.text_area("Note", key=f"note_{key}", height=68)
            if st.form_submit_button("Record decision"):
                try:
                    record(state, Decision(key, choice, who, note, week), now=utc_now())
                except ValueError as exc:
                    st.error(plain(exc, None))
                except StoreError as exc:
                    st.error(f"Could not store the decision: {plain(exc, None)}")
                else:
                    st.toast(f"Recorded {choice} for {plain(key, None)}")
                    st.rerun()
        if last and last["decision"] in ("disable", "rotate"):
            # The meeting decided to act: do it here, behind the same guardrails as the Keys page.
            if st.toggle(f"{plain(last['decision']).capitalize()} it now", key=f"act_{key}"):
                action_panel(settings, now, prefix=f"review_{key}", key=key, action=last["decision"])

for title, rows, _columns, note in sections(review)[1:]:
    st.subheader(title)
    if note:
        st.caption(plain(note, None))  # some notes carry an error message from the data
    if rows:
        st.dataframe(pd.DataFrame(rows)[[c for c, _ in _columns]], hide_index=True, width="stretch")
    else:
        st.caption("None.")
    if title == "Top movers by calls":
        for chart_title, chart in charts(review):
            st.markdown(f"**{chart_title}**")
            st.altair_chart(chart, width="stretch")

st.subheader("Export")
left, middle, right = st.columns(3)
for col, fmt, mime in (
    (left, "html", "text/html"),
    (middle, "md", "text/markdown"),
    (right, "json", "application/json"),
):
    col.download_button(
        f"Download {fmt.upper()}",
        render(review, fmt),
        file_name=f"key_review_{week}.{fmt}",
        mime=mime,
        key=f"download_{fmt}",
    )
