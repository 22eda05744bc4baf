"""Incidents: the one place that reads the collected series, runs the detector and says which run it used.

`detect_incidents` is what a refresh stores and what runs when nothing stored fits; the daily grain and
severity the detector will grow land here too (every column `detect` returns is stored as it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from analytics.detection import detect, key_frame, score_metric
from service.results import Provenance, provenance, usable
from store import Source, anomaly_reads, result_tables


@dataclass(frozen=True)
class Detected:
    incidents: pd.DataFrame  # whatever columns analytics.detection.detect returns
    keys: list[str]  # the keys that had a series to score


def detect_incidents(source: Source, now: datetime, since: datetime | None = None) -> Detected:
    """Read every key's hourly series up to `now` and detect (the whole history is scored, baselines warm)."""
    hourly = anomaly_reads.hourly_series(source, now, ordered=False)  # detect pivots: row order is moot
    keys = sorted(hourly["key_name"].unique().tolist())
    return Detected(detect(hourly, now, since=since), keys)


@dataclass(frozen=True)
class Incidents:
    frame: pd.DataFrame
    keys: list[str]
    provenance: Provenance


def stored_incidents(db_path: Source, now: datetime, since: datetime | None = None) -> Incidents | None:
    """The stored incidents ending at or after `since`, when they stand for `now` (else None)."""
    meta = usable(db_path, "incidents", now)
    if meta is None:
        return None
    frame = result_tables.incidents(db_path, since)
    return Incidents(frame, result_tables.series_keys(db_path), provenance(db_path, now, meta))


def incidents(db_path: Source, now: datetime, since: datetime | None = None) -> Incidents:
    """Incidents ending at or after `since`: stored when they stand for `now`, else detected now."""
    stored = stored_incidents(db_path, now, since)
    if stored is not None:
        return stored
    found = detect_incidents(db_path, now, since)
    return Incidents(found.incidents, found.keys, provenance(db_path, now, None))


def key_series(db_path: Source, now: datetime, metric: str, key: str) -> pd.DataFrame:
    """One key's scored series for a chart: that key alone is read and scored (its score is its own history's)."""
    scored = score_metric(anomaly_reads.hourly_series(db_path, now, keys=[key]), metric, now)
    if scored is None or key not in scored["value"].columns:
        return pd.DataFrame()
    return key_frame(scored, key)


def overlapping(found: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Incidents that touch [start, end)."""
    if found.empty:
        return found
    return found[(pd.to_datetime(found["end"]) >= pd.Timestamp(start)) & (pd.to_datetime(found["start"]) < end)]
