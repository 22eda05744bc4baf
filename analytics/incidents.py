"""Incidents as an operator reads them: which are still open, worst first, in words, and per key and day.

Pure over the detector's incident frame (`analytics.detection.INCIDENT_COLUMNS`), `now` passed in.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

SEVERITY_RANK = {"high": 3, "medium": 2, "low": 1}
UNITS = {"calls": "calls", "failed_jobs": "failed jobs", "credits": "credits"}
METRIC_WORDS = {"calls": "Calls", "failed_jobs": "Failed jobs", "credits": "Credits", "calls daily": "Calls per day"}


def last_period(now: datetime, grain: str) -> pd.Timestamp:
    """The last complete period the detector scored as of `now` (the hour or day in progress is not scored)."""
    moment = pd.Timestamp(now)
    return moment.floor("D") - pd.Timedelta(days=1) if grain == "day" else moment.floor("h") - pd.Timedelta(hours=1)


def is_open(found: pd.DataFrame, now: datetime) -> pd.Series:
    """True for incidents still going on: flagged up to the last period scored."""
    if found.empty:
        return pd.Series(dtype=bool)
    ends = pd.to_datetime(found["end"])
    last = found["grain"].map(lambda g: last_period(now, g))
    return (ends >= pd.to_datetime(last)).astype(bool)


def worst_first(found: pd.DataFrame) -> pd.DataFrame:
    """Highest severity first, then the largest share of the key's normal day, then the highest score."""
    if found.empty:
        return found
    rank = found["severity"].map(SEVERITY_RANK).fillna(0)
    share = pd.to_numeric(found.get("day_share", pd.Series(np.nan, index=found.index)), errors="coerce")
    order = pd.DataFrame({"rank": rank, "share": share.fillna(0).replace(np.inf, 1e12), "score": found["peak_score"]})
    return found.loc[order.sort_values(["rank", "share", "score"], ascending=False).index]


def in_words(row: pd.Series | dict) -> str:
    """'12 calls where about 0.2 were expected, over 3 hours' (the detector's score is for tooltips)."""
    unit = UNITS.get(row["metric"], str(row["metric"]).replace("_", " "))
    span = (pd.Timestamp(row["end"]) - pd.Timestamp(row["start"])) / pd.Timedelta(hours=1)
    if row["grain"] == "day":
        days = int(span / 24) + 1
        length = f"{days} day" + ("s" if days != 1 else "")
    else:
        hours = int(span) + 1
        length = f"{hours} hour" + ("s" if hours != 1 else "")
    digits = 2 if row["metric"] == "credits" else 0
    observed = f"{float(row['observed']):,.{digits}f}"
    expected = float(row["expected"])
    about = f"{expected:,.{digits if expected >= 10 else 1}f}"
    return f"{observed} {unit} where about {about} were expected, over {length}"


def score_words(score: float) -> str:
    """The detector's score (0–1) as a phrase: how far outside the key's normal range the peak was."""
    if score >= 0.9:
        return "far outside its normal range"
    if score >= 0.7:
        return "well outside its normal range"
    if score >= 0.5:
        return "outside its normal range"
    return "near the edge of its normal range"


def by_day(found: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """[key_name, day, severity, incidents, worst] per key and UTC day of [start, end] an incident touches; the
    day's severity is its worst incident's."""
    columns = ["key_name", "day", "severity", "incidents", "worst"]
    if found.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    for row in found.itertuples(index=False):
        first = max(pd.Timestamp(row.start).floor("D"), lo)
        last = min(pd.Timestamp(row.end).floor("D"), hi)
        for day in pd.date_range(first, last, freq="D"):
            rows.append((row.key_name, day, row.severity, SEVERITY_RANK.get(row.severity, 0), in_words(row._asdict())))
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows, columns=["key_name", "day", "severity", "rank", "words"])
    frame = frame.sort_values("rank", ascending=False)
    grouped = frame.groupby(["key_name", "day"], sort=False)
    out = grouped.agg(severity=("severity", "first"), incidents=("severity", "size"), worst=("words", "first"))
    return out.reset_index()[columns].sort_values(["key_name", "day"]).reset_index(drop=True)


def window(found: pd.DataFrame, now: datetime, hours: int = 24) -> pd.DataFrame:
    """Incidents open now or ended within the last `hours`, with an `open` column, worst first."""
    if found.empty:
        return found.assign(open=pd.Series(dtype=bool))
    marked = found.assign(open=is_open(found, now))
    recent = pd.to_datetime(marked["end"]) >= pd.Timestamp(now) - timedelta(hours=hours)
    return worst_first(marked[marked["open"] | recent])
