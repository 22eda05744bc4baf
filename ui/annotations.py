"""Markers on charts (deploys, rotations, decisions, smoke-check failures) and the form that adds one."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import altair as alt
import pandas as pd
import streamlit as st

from formatting import COLORS, moment, wall_time
from service.annotations import KINDS, AnnotationError, Markers, add_annotation, markers
from store import StoreError
from ui.format import plain

KIND_LABELS = {
    "deploy": "deploy",
    "rotation": "rotation",
    "decision": "decision",
    "smoke_check": "smoke-check failure",
    "note": "note",
}


@st.cache_data(ttl=30, show_spinner=False)
def _markers(db_path: str, start: datetime, end: datetime, keys: tuple[str, ...] | None) -> Markers:
    try:
        return markers(db_path, start, end, list(keys) if keys is not None else None)
    except StoreError:
        return Markers(unreadable=("markers",))


def chart_markers(db_path: str, start: datetime, end: datetime, keys: list[str] | None) -> Markers:
    """The markers for a chart's keys and range, as of the minute (a marker added here shows at once: adding one
    clears this cache; other sessions see it within 30 s)."""
    minute = end.replace(second=0, microsecond=0)
    return _markers(db_path, start, minute, tuple(keys) if keys is not None else None)


def with_markers(
    chart: alt.TopLevelMixin, marked: Markers, grain: str, tz: ZoneInfo, x_field: str = "x"
) -> alt.TopLevelMixin:
    """`chart` with a dashed vertical rule at each marker, on the chart's own time axis (`ui.charts`: hours as wall
    time in `tz` on a UTC scale, days as UTC days); hover: what, when (with its zone), which key, from where."""
    found = marked.frame
    if found.empty:
        return chart
    at = pd.to_datetime(found["at"])
    data = pd.DataFrame(
        {
            x_field: at if grain == "day" else wall_time(at, tz),
            "when": at.map(lambda t: moment(t, tz)),
            "kind": found["kind"].map(KIND_LABELS).fillna(found["kind"]).to_numpy(),
            "text": found["text"].to_numpy(),
            "key_name": found["key_name"].fillna("every key").to_numpy(),
            "source": found["source"].to_numpy(),
        }
    )
    rules = (
        alt.Chart(data)
        .mark_rule(strokeDash=[4, 3], strokeWidth=1.5, color=COLORS["neutral"])
        .encode(
            x=alt.X(f"{x_field}:T", scale=alt.Scale(type="utc")),
            tooltip=[
                alt.Tooltip("when:N", title="When"),
                alt.Tooltip("kind:N", title="Marker"),
                alt.Tooltip("text:N", title="What"),
                alt.Tooltip("key_name:N", title="Key"),
                alt.Tooltip("source:N", title="From"),
            ],
        )
    )
    if isinstance(chart, alt.LayerChart):  # one more layer, not a layer nested in a layer: the spec stays flat
        flat = chart.copy(deep=False)
        flat.layer = [*chart.layer, rules]
        return flat
    return alt.layer(chart, rules)


def markers_caption(marked: Markers) -> None:
    found = marked.frame
    if not found.empty:
        counts = found["kind"].map(KIND_LABELS).fillna(found["kind"]).value_counts()
        st.caption(
            "Dashed lines mark "
            + ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in counts.items())
            + " (hover for details; add a deploy or note on the Key detail page or with "
            "`python -m analytics annotate`)."
        )
    if marked.unreadable:
        st.caption(f"Not marked: {', '.join(marked.unreadable)} (could not be read just now).")


def annotation_form(db_path: str, key_name: str, now: datetime) -> None:
    """Add a marker for `key_name`: a deploy, a note, …; stored in the dashboard's own state file."""
    with st.expander("Add a marker to this key's charts"), st.form("annotation_form", clear_on_submit=True):
        left, middle, right = st.columns(3)
        kind = left.selectbox("Kind", [k for k in KINDS if k != "smoke_check"], format_func=KIND_LABELS.get)
        day = middle.date_input("Day (UTC)", value=now.date(), max_value=now.date(), key="annotation_day")
        at_time = right.time_input("Time (UTC)", value=time(now.hour, now.minute), key="annotation_time")
        text = st.text_input("What happened", max_chars=500, key="annotation_text")
        who = st.text_input("Who", max_chars=200, key="annotation_who")
        if st.form_submit_button("Add marker"):
            try:
                add_annotation(db_path, key_name, datetime.combine(day, at_time), text, kind, who, now)
                _markers.clear()
                st.success("Marker added: it shows on the charts from the next rerun.")
            except AnnotationError as exc:
                st.warning(plain(exc, None))
            except StoreError as exc:
                st.error(f"Markers: {plain(exc, None)}")
