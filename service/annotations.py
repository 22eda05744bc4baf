"""Annotations: markers on the traffic and anomaly charts. People add deploys and notes (a page form,
`python -m analytics annotate`); key rotations in the config, decisions recorded in the weekly review and
smoke-check failures (their alerts) appear by themselves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from store import StoreError, annotations, decisions, reads
from store.alert_store import list_alerts
from store.state_file import state_path

KINDS = ("deploy", "rotation", "decision", "smoke_check", "note")
COLUMNS = ["at", "key_name", "kind", "text", "source"]
MAX_TEXT = 500


@dataclass(frozen=True)
class Markers:
    """A chart's markers, and the sources that could not be read (left out of the chart, and said so)."""

    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    unreadable: tuple[str, ...] = ()


class AnnotationError(ValueError):
    """An annotation that cannot be stored as given (unknown key or kind, empty or overlong text)."""


def add_annotation(
    db_path: str | Path, key_name: str | None, at: datetime, text: str, kind: str, who: str, now: datetime
) -> int:
    """Store one annotation for `key_name` (None: every key) at `at`; returns its id."""
    if kind not in KINDS:
        raise AnnotationError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    text = (text or "").strip()
    if not text or len(text) > MAX_TEXT or not text.isprintable():
        raise AnnotationError(f"the text must be 1 to {MAX_TEXT} printable characters on one line")
    who = (who or "").strip()
    if not who or len(who) > 200 or not who.isprintable():
        raise AnnotationError("say who adds the annotation (up to 200 printable characters)")
    if key_name is not None:
        known = reads.key_scopes(db_path)["key_name"].tolist()
        if key_name not in known:
            hint = f" (known: {', '.join(known[:10])}{', …' if len(known) > 10 else ''})" if known else ""
            raise AnnotationError(f"no configured key named {key_name!r}{hint}")
    return annotations.add(state_path(db_path), key_name, at, kind, text, who, now)


def markers(db_path: str | Path, start: datetime, end: datetime, keys: list[str] | None = None) -> Markers:
    """Every marker in [start, end] for `keys` (None: all), oldest first: entered ones, config rotations, review
    decisions and smoke-check failures. A source that cannot be read is left out and named in `unreadable`."""
    state = state_path(db_path)
    parts: list[pd.DataFrame] = []
    unreadable: list[str] = []
    try:
        entered = annotations.between(state, start, end)
        entered = entered.rename(columns={"marked_at": "at"})
        parts.append(entered.assign(source="entered by " + entered["created_by"].astype(str))[COLUMNS])
    except StoreError:
        unreadable.append("entered markers")
    try:
        rotated = reads.rotations(db_path)
        parts.append(
            pd.DataFrame(
                {"at": rotated["rotated_at"], "key_name": rotated["key_name"], "kind": "rotation",
                 "text": "key rotated", "source": "the key config"}
            )
        )  # fmt: skip
    except StoreError:
        unreadable.append("key rotations")
    try:
        decided = decisions.all_decisions(state)
        parts.append(
            pd.DataFrame(
                {
                    "at": decided["decided_at"],
                    "key_name": decided["key_name"],
                    "kind": "decision",
                    "text": decided["decision"]
                    + " ("
                    + decided["decided_by"]
                    + ")"
                    + decided["note"].map(lambda n: f": {n}" if n else ""),
                    "source": "weekly review " + decided["week"],
                }
            )
        )
    except StoreError:
        unreadable.append("review decisions")
    try:
        alerts = list_alerts(state)
        smoke = alerts[alerts["kind"] == "smoke_check"] if not alerts.empty else alerts
        parts.append(
            pd.DataFrame(
                {"at": smoke["incident_start"], "key_name": smoke["key_name"], "kind": "smoke_check",
                 "text": "smoke check failed: " + smoke["direction"].astype(str).str.replace("_", " "),
                 "source": "alerts"}
            )
        )  # fmt: skip
    except StoreError:
        unreadable.append("smoke-check failures")
    parts = [p for p in parts if not p.empty]
    if not parts:
        return Markers(unreadable=tuple(unreadable))
    found = pd.concat(parts, ignore_index=True)
    found["at"] = pd.to_datetime(found["at"])
    found = found[(found["at"] >= pd.Timestamp(start)) & (found["at"] <= pd.Timestamp(end))]
    if keys is not None:
        found = found[found["key_name"].isna() | found["key_name"].isin(keys)]
    return Markers(found.sort_values("at", kind="stable").reset_index(drop=True), tuple(unreadable))
