"""Charts on the pages: one Altair theme, times in the operator's zone, unknown spans drawn as gaps with their
reason, and the period still in progress drawn as partial (never as a cliff)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import altair as alt
import pandas as pd
import streamlit as st

from analytics.traffic import Unknown, partial_period
from formatting import COLORS, DAY_FORMAT, moment, register_theme, wall_time, zone_name

GAP_LABEL = "not collected"
register_theme()  # pages run without dashboard.py in tests (AppTest of one page file): the theme holds there too


# Altair checks a whole spec against its JSON schema every time it is converted, i.e. on every rerun: ~40 ms a
# chart, most of a warm rerun of a page with eight. The specs come from the same code every time; the test suite
# sets RBV_VALIDATE_CHARTS=1 (tests/conftest.py), so every chart the pages draw is checked there.
VALIDATE = os.environ.get("RBV_VALIDATE_CHARTS", "") == "1"


def show(chart: alt.TopLevelMixin, key: str | None = None) -> None:
    """Draw with the product's theme (registered by `formatting`), not Streamlit's, at the container's width."""
    if not VALIDATE:
        # An instance attribute (Altair's own __setattr__ would take it for a chart property).
        object.__setattr__(chart, "to_dict", functools.partial(type(chart).to_dict, chart, validate=False))
    st.altair_chart(chart, width="stretch", theme=None, key=key)


def when(values: pd.Series, grain: str, tz: ZoneInfo) -> pd.Series:
    """Tooltip text for periods: a day as '2026-11-20', an hour in the one time format with its zone."""
    if grain == "day":
        return pd.to_datetime(values).dt.strftime(DAY_FORMAT)
    return values.map(lambda t: moment(t, tz))


def time_axis(field: str, grain: str, tz: ZoneInfo, title: str | None = None, **kwargs: Any) -> alt.X:
    """An x axis of wall-clock times in `tz` (see `formatting.wall_time`) drawn on a UTC scale."""
    heading = title or ("Day" if grain == "day" else "Hour")
    axis = alt.Axis(labelOverlap="greedy", labelSeparation=6, format="%d %b" if grain == "day" else "%d %b %H:%M")
    if grain == "day":  # a bar fills its day
        kwargs.setdefault("timeUnit", "utcyearmonthdate")
    return alt.X(
        f"{field}:T",
        title=f"{heading} ({zone_name(tz) if grain != 'day' else 'UTC days'})",
        scale=alt.Scale(type="utc"),
        axis=axis,
        **kwargs,
    )


def periods(frame: pd.DataFrame, grain: str, tz: ZoneInfo, field: str = "period") -> pd.DataFrame:
    """`frame` with its period as wall time for the axis (`x`) and as text for tooltips (`when`). Days stay
    UTC days: the usage summary's days are UTC days, whatever the operator's zone."""
    stamps = pd.to_datetime(frame[field])
    x = stamps if grain == "day" else wall_time(stamps, tz)
    return frame.assign(x=x, when=when(stamps, grain, tz))


def gaps(spans: Sequence[Unknown], grain: str, tz: ZoneInfo) -> alt.Chart | None:
    """Grey bands over the spans nobody collected, with the reason on hover; None when there are none."""
    if not spans:
        return None
    frame = pd.DataFrame(
        {
            "start": [s.start for s in spans],
            "end": [s.end for s in spans],
            "reason": [s.reason for s in spans],
        }
    )
    if grain != "day":
        frame["start"], frame["end"] = wall_time(frame["start"], tz), wall_time(frame["end"], tz)
    frame["from"] = [moment(s.start, tz) if grain != "day" else s.start.strftime(DAY_FORMAT) for s in spans]
    frame["to"] = [moment(s.end, tz) if grain != "day" else s.end.strftime(DAY_FORMAT) for s in spans]
    frame["state"] = GAP_LABEL
    return (
        alt.Chart(frame)
        .mark_rect(color=COLORS["gap"], opacity=0.55)
        .encode(
            x=alt.X("start:T", scale=alt.Scale(type="utc")),
            x2="end:T",
            tooltip=[
                alt.Tooltip("state:N", title="Data"),
                alt.Tooltip("reason:N", title="Why"),
                alt.Tooltip("from:N", title="From"),
                alt.Tooltip("to:N", title="To"),
            ],
            description=alt.Description("reason:N"),
        )
    )


def with_gaps(chart: alt.Chart, spans: Sequence[Unknown], grain: str, tz: ZoneInfo) -> alt.TopLevelMixin:
    """`chart` drawn over its gap bands (the bands first, so the data stays on top)."""
    band = gaps(spans, grain, tz)
    return chart if band is None else alt.layer(band, chart)


def mark_partial(frame: pd.DataFrame, read_at: datetime | None, grain: str, tz: ZoneInfo) -> pd.DataFrame:
    """A `state` column: 'partial: read to …' for the `grain` period in progress at the last read, else 'complete'."""
    partial = partial_period(read_at, grain)
    state = pd.Series("complete", index=frame.index, dtype=object)
    if partial is not None and not frame.empty:
        state[pd.to_datetime(frame["period"]) == partial] = f"partial: read to {moment(read_at, tz)}"
    return frame.assign(state=state)


def partial_opacity() -> alt.Opacity:
    """Bars of the period in progress drawn faint, with the legend saying why."""
    return alt.condition("datum.state == 'complete'", alt.value(0.9), alt.value(0.35))


def lines(
    frame: pd.DataFrame,
    series: dict[str, tuple[str, str]],
    grain: str,
    tz: ZoneInfo,
    *,
    spans: Sequence[Unknown] = (),
    read_at: datetime | None = None,
    y_title: str = "Count",
    height: int = 220,
    fmt: str = ",",
) -> alt.TopLevelMixin:
    """One line per column of `frame` (`series`: column → (label, colour)) over its `period`, from zero up.

    Unknown values (NaN) break the line and `spans` are drawn as grey bands with their reason; the period in
    progress at the last read (`read_at`) is a hollow point, not the end of the line (a day half over is not a drop).
    """
    data = mark_partial(frame, read_at, grain, tz)
    long = data.melt(id_vars=["period", "state"], value_vars=list(series), var_name="column", value_name="value")
    long["series"] = long["column"].map(lambda c: series[c][0])
    long = periods(long, grain, tz)
    color = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(domain=[label for label, _ in series.values()], range=[c for _, c in series.values()]),
        legend=alt.Legend(orient="top"),
    )
    tooltip = [
        alt.Tooltip("when:N", title="Day (UTC)" if grain == "day" else f"Hour ({zone_name(tz)})"),
        alt.Tooltip("series:N", title="Series"),
        alt.Tooltip("value:Q", title="Value", format=fmt),
        alt.Tooltip("state:N", title="Period"),
    ]
    x = time_axis("x", grain, tz)
    y = alt.Y("value:Q", title=y_title, scale=alt.Scale(domainMin=0, nice=True))
    complete = long[long["state"] == "complete"]
    line = (
        alt.Chart(complete)
        .mark_line(
            interpolate="step-after" if grain == "hour" else "linear",
            invalid="break-paths-show-domains",
            point=alt.OverlayMarkDef(size=30, opacity=0, filled=True),
        )
        .encode(x=x, y=y, color=color, tooltip=tooltip)
    )
    layers = [line]
    in_progress = long[(long["state"] != "complete") & long["value"].notna()]
    if not in_progress.empty:
        layers.append(
            alt.Chart(in_progress)
            .mark_point(filled=False, size=70, strokeWidth=2)
            .encode(x=x, y=y, color=color, tooltip=tooltip)
        )
    chart = alt.layer(*layers).properties(height=height)
    band = gaps(spans, grain, tz)
    return chart if band is None else alt.layer(band, *layers).properties(height=height)
