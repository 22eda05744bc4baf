"""Tables on the pages: human headings, numbers with separators, the first column pinned, widths that fit.

Every page shows its tables through `table()`, so a column reads the same on every page: the heading from
`formatting.LABELS`, counts as '1,234', credits as '1,234.50', and the identifying first column pinned while
the rest scrolls. Pages name only what differs (a link column, a wide "why", a help text).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from formatting import label

# Columns that hold credits (two decimals) whatever their dtype.
CREDIT_WORDS = ("credit", "delta", "refund", "expected_credits", "charged_credits", "cost", "difference")
# A table ships at most this many rows to the browser (10,000 keys' rows cost seconds to send and to draw);
# `capped` says how many it left out and how to narrow, and the CSV download keeps every row.
SHOWN_ROWS = 500
SHOWN_ROWS_HINT = "the CSV download holds them all; filter"  # "…; filter by name or owner to narrow"
# Long free text: wide enough to read a sentence without opening the cell.
WIDE = {"why", "detail", "details", "evidence", "message", "reason", "what", "error", "last_error", "note"}


def _is_credit(name: str) -> bool:
    return any(word in name.lower() for word in CREDIT_WORDS)


def column(name: str, series: pd.Series) -> Any:
    """The default column configuration for `series`: its human heading and, for numbers, a format."""
    heading = label(name)
    if pd.api.types.is_bool_dtype(series):
        return st.column_config.CheckboxColumn(heading)
    if pd.api.types.is_datetime64_any_dtype(series):  # stored instants are UTC (pages show them in a zone as text)
        return st.column_config.DatetimeColumn(heading, format="YYYY-MM-DD HH:mm [UTC]")
    if pd.api.types.is_numeric_dtype(series):
        if _is_credit(name):
            return st.column_config.NumberColumn(heading, format="%,.2f")
        values = pd.to_numeric(series, errors="coerce").dropna()
        whole = values.empty or bool((values == values.round()).all())
        return st.column_config.NumberColumn(heading, format="%,d" if whole else "%,.2f")
    if name in WIDE:
        return st.column_config.TextColumn(heading, width="large")
    return st.column_config.TextColumn(heading)


def column_config(
    frame: pd.DataFrame,
    overrides: Mapping[str, Any] | None = None,
    pin: int = 1,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Configuration for every column of `frame`; `overrides` replace single columns, `labels` only their
    headings; the first `pin` columns stay in view while the table scrolls sideways."""
    overrides = dict(overrides or {})
    config: dict[str, Any] = {}
    for position, name in enumerate(frame.columns):
        chosen = overrides.pop(name, None) or column(str(name), frame[name])
        if labels and name in labels and isinstance(chosen, dict):
            chosen = {**chosen, "label": labels[name]}
        if isinstance(chosen, dict) and position < pin:
            chosen = {**chosen, "pinned": True}
        config[str(name)] = chosen
    config.update({str(k): v for k, v in overrides.items()})  # e.g. None to hide a column
    return config


def table(
    frame: pd.DataFrame,
    overrides: Mapping[str, Any] | None = None,
    *,
    pin: int = 1,
    key: str | None = None,
    height: int | str = "auto",
    rows: int | None = None,
    labels: Mapping[str, str] | None = None,
    main: bool = False,
) -> Any:
    """st.dataframe with the shared column configuration; `rows` caps the height at that many rows. A page's
    `main` table (the one it is about) is marked so, for the check that it fits the screen."""
    if rows is not None:
        height = min(38 + 35 * max(len(frame), 1), 38 + 35 * rows)
    if main:
        with st.container(key="main_table"):
            return table(frame, overrides, pin=pin, key=key, height=height, labels=labels)
    return st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        height=height,
        column_config=column_config(frame, overrides, pin, labels),
        key=key,
    )


def capped(frame: pd.DataFrame, noun: str, narrow: str, limit: int | None = None) -> pd.DataFrame:
    """The first `limit` (default SHOWN_ROWS) rows of `frame`; when there are more, a caption says how many
    of how many are shown and how to narrow (`narrow`: "filter by key or day")."""
    limit = SHOWN_ROWS if limit is None else limit
    if len(frame) <= limit:
        return frame
    st.caption(f"Showing {limit:,} of {len(frame):,} {noun}; {narrow} to narrow.")
    return frame.head(limit)


def link_column(name: str, help: str | None = None) -> Any:
    """A key name shown as a link to its Key detail page (the value is `key_detail?key=NAME`)."""
    return st.column_config.LinkColumn(
        label(name), display_text=r"key=(.*)$", help=help or "Open the key's detail page"
    )
