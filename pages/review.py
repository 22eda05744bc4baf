"""Weekly review: what needs a decision, what changed since last week, and the report to share."""

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from analytics import credits
from analytics.keys import Rules
from analytics.review import attach_decisions, default_week, not_compared_because, week_bounds
from analytics.review_render import charts, render, sections
from formatting import delta_color, number, signed
from service import review as review_cases
from store import StoreError
from store.decisions import DECISIONS, Decision, last_decisions, record
from store.state_file import state_path
from ui.data import page_config, provenance_caption
from ui.filters import utc_now
from ui.format import plain
from ui.key_actions import action_panel
from ui.page import open_page
from ui.tables import table

WEEKS_OFFERED = 12


@st.cache_data(ttl=60, show_spinner="Building the review…")
def week_review(
    db_path: str, week: str, now: datetime, rules: Rules, settings: credits.ReconcileSettings
) -> review_cases.WeekReview:
    """The review without decisions (they are read fresh on every run and attached): the one the collector's
    refresh stored for this week when it stands for `now`, else built from one snapshot of the store.
    Shared by every session: six people opening it in a meeting build it once."""
    return review_cases.week_review(db_path, week, now, rules, settings, state_db=None)


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def flagged_keys(review_id: str, _review: dict) -> list[tuple[str, bool, str]]:
    """(expander title, expanded?, Markdown) per key needing a decision, its text from data escaped: built
    once per review and decisions, not per session (escaping every finding costs more than drawing it)."""
    out = []
    for item in _review["decisions_needed"]:
        labels = ", ".join(f["label"] + (" (new)" if f["new"] else "") for f in item["findings"])
        last = item["last_decision"]
        lines = [f"- **{plain(f['label'], None)}**: {plain(f['detail'], None)}" for f in item["findings"]]
        if last:
            lines.append(
                f"\nLast decision: **{plain(last['decision'])}** by {plain(last['decided_by'], None)} on "
                f"{str(last['decided_at'])[:10]} (week {plain(last['week'])})"
                + (f": {plain(last['note'], None)}" if last["note"] else "")
            )
        else:
            lines.append("\n*No decision recorded yet.*")
        name = item["key_name"]
        header = f"{'🆕 ' if item['new'] else ''}{plain(f'{name}: {labels}', None)}"
        out.append((header, bool(item["new"]), "\n".join(lines)))
    return out


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def section_tables(review_id: str, _review: dict) -> list[tuple[str, str, pd.DataFrame | None, dict[str, str]]]:
    """(title, escaped note, table or None, headings) per report section after the first, built once per review;
    the headings are the report's own (the HTML and Markdown exports use the same)."""
    out = []
    for title, rows, columns, note in sections(_review)[1:]:
        frame = pd.DataFrame(rows)[[c for c, _ in columns]] if rows else None
        out.append((title, plain(note, None) if note else "", frame, dict(columns)))  # notes may carry an error
    return out


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def chart_specs(review_id: str, _review: dict) -> list[tuple[str, dict]]:
    """The report's charts as Vega-Lite specs, built (and validated) once per review, not per session."""
    return [(title, chart.to_dict()) for title, chart in charts(_review)]


@st.cache_data(ttl=60, show_spinner=False, max_entries=16)
def exports(review_id: str, _review: dict, fmt: str) -> str:
    """A rendered download (the HTML one draws its charts to PNG): once per review and decisions, not per rerun
    or session. Keyed by `review_id`, not the review itself: hashing the whole review costs more than a rerun."""
    return render(_review, fmt)


settings, filters, now = open_page("Weekly review")

latest = default_week(now)
latest_start, _ = week_bounds(latest)
weeks = [default_week(latest_start + timedelta(days=7 * (1 - i))) for i in range(WEEKS_OFFERED)]
week = st.selectbox(
    "ISO week", weeks, index=0, key="review_week", help="Default: the last full week. Compared with the week before."
)
db = str(settings.db_path)
state = state_path(settings.db_path)
config, problem = page_config(settings.config_path)
if problem:
    st.warning(plain(problem, None), icon=":material/rule:")
try:
    built = week_review(db, week, now.replace(second=0, microsecond=0), config.rules, config.reconciliation)
    decided = last_decisions(state)
except StoreError as exc:
    st.error(f"Cannot build the review: {plain(exc, None)}")
    st.stop()
provenance_caption("this review", built.provenance)
review = attach_decisions(built.review, decided)
origin = built.provenance
# What identifies this review's rendering across sessions: the database, the week, the results it was built
# from (or its minute), and the decisions attached.
review_id = "|".join(
    [db, week, origin.as_of.isoformat(), str(origin.meta.refresh_id if origin.meta else "now"), decided.to_csv()]
)

info = review["week"]
act = info["activity"]
st.caption(f"{info['start'][:10]} to {info['end'][:10]} (UTC), compared with {info['previous_week']}.")
if not info["has_activity"]:
    st.info("No calls or jobs were recorded in this week.")
if not info["complete"]:
    st.warning(f"This week is not over: figures run to {info['generated_at']}.")
# Week over week only when like for like (the review says).
because = not_compared_because(info)
comparable = not because
for col, name in zip(st.columns(4), ("calls", "jobs", "failed", "credits"), strict=True):
    pct = act[name]["change_pct"]
    col.metric(
        {"failed": "Failed jobs"}.get(name, name.capitalize()),
        number(act[name]["current"], 2 if name == "credits" else 0),
        None if pct is None or not comparable else signed(pct, 1, minus="-") + " %",
        delta_color=delta_color(name),
        delta_description="vs the week before" if comparable and pct is not None else None,
    )
if not comparable:
    st.caption(f"No week-over-week change shown: {because}.")

st.subheader("Keys needing a decision")
needed = review["decisions_needed"]
if not needed:
    st.success("No flagged keys this week.")
for header, expanded, text in flagged_keys(review_id, review):
    with st.expander(header, expanded=expanded):
        st.markdown(text)  # one element per key: a fleet flags dozens, each session draws them all
if needed:
    # One form for every flagged key: a meeting records a few decisions, and a form per key would put
    # four widgets per flagged key on every rerun of every session (hundreds at a fleet's size).
    with st.form("decide", clear_on_submit=True):
        names = [item["key_name"] for item in needed]
        key_col, who_col, choice_col = st.columns([2, 1, 1])
        key = key_col.selectbox("Key", names, key="decide_key", help="The flagged keys above, newest findings first.")
        who = who_col.text_input("Who", key="decide_who")
        choice = choice_col.selectbox(
            "Decision", DECISIONS, index=None, placeholder="Choose…", key="decide_choice", help="Nothing is preset."
        )
        note = st.text_area("Note", key="decide_note", height=68)
        if st.form_submit_button("Record decision"):
            try:
                if choice is None:
                    raise ValueError("choose a decision (keep, rotate, disable, delete or investigate)")
                record(state, Decision(key, choice, who, note, week), now=utc_now())
            except ValueError as exc:
                st.error(plain(exc, None))
            except StoreError as exc:
                st.error(f"Could not store the decision: {plain(exc, None)}")
            else:
                st.toast(f"Recorded {choice} for {plain(key, None)}")
                st.rerun()

# The meeting decided to act on a key: do it here, behind the same guardrails as the Keys page.
decided_to_act = {
    item["key_name"]: item["last_decision"]["decision"]
    for item in needed
    if item["last_decision"] and item["last_decision"]["decision"] in ("disable", "rotate")
}
if decided_to_act:
    st.markdown("**Act on a decision**")
    acting = st.selectbox(
        "Key decided on", list(decided_to_act), key="act_key", format_func=lambda k: f"{k}: {decided_to_act[k]}"
    )
    if st.toggle(f"{decided_to_act[acting].capitalize()} {acting} now", key="act_now"):
        action_panel(settings, now, prefix=f"review_{acting}", key=acting, action=decided_to_act[acting])

main_shown = False
for title, note, frame, headings in section_tables(review_id, review):
    st.subheader(title)
    if note:
        st.caption(note)
    if frame is not None:
        table(frame, labels=headings, main=not main_shown)  # the first table: stale keys
        main_shown = True
    else:
        st.caption("None.")
    if title == "Top movers by calls":
        for column, (chart_title, spec) in zip(st.columns(2), chart_specs(review_id, review), strict=False):
            column.markdown(f"**{chart_title}**")
            # The report's charts are drawn for A4 (fixed size); here they fill their column and are tall
            # enough to read (Streamlit's height holds the axes and legend too).
            column.vega_lite_chart({**spec, "width": "container", "height": 240}, width="stretch", theme=None)

st.subheader("Export")
left, middle, right = st.columns(3)
for col, fmt, mime in (
    (left, "html", "text/html"),
    (middle, "md", "text/markdown"),
    (right, "json", "application/json"),
):
    col.download_button(
        f"Download {fmt.upper()}",
        exports(review_id, review, fmt),
        file_name=f"key_review_{week}.{fmt}",
        mime=mime,
        key=f"download_{fmt}",
    )
