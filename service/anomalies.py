"""Incidents: the one place that reads the collected series, runs the detector and says which run it used.

`detect_incidents` is what a refresh stores and what runs when nothing stored fits; every column `detect`
returns (grain, severity, alert-worthiness, linked events, and whatever it grows next) is stored as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from analytics.detection import detect, key_daily_frame, key_frame, score_metric, sort_incidents
from service.results import Provenance, provenance, usable
from store import Source, anomaly_reads, result_tables


@dataclass(frozen=True)
class Detected:
    incidents: pd.DataFrame  # whatever columns analytics.detection.detect returns
    keys: list[str]  # the keys that had a series to score


def detect_incidents(
    source: Source, now: datetime, since: datetime | None = None, keys: list[str] | None = None
) -> Detected:
    """Every incident, hourly and daily grain, as of `now`: the whole history is scored (baselines warm);
    calls before hourly coverage come from the usage summary. With `keys`, of that key group only (each
    key's incidents are its own: groups' incidents together are the fleet's, see analytics.detection)."""
    hourly = anomaly_reads.hourly_series(source, now, keys=keys, ordered=False)  # detect pivots: order is moot
    daily = anomaly_reads.daily_calls(source, until=now, keys=keys)
    keys = sorted(set(hourly["key_name"].unique()) | set(daily["key_name"].unique()))
    return Detected(detect(hourly, now, since=since, daily=daily), keys)


def combine_detected(found: Sequence[Detected]) -> Detected:
    """Disjoint key groups' incidents as one detect_incidents over all their keys gives them."""
    frames = [d.incidents for d in found if not d.incidents.empty]
    frame = sort_incidents(pd.concat(frames, ignore_index=True)) if frames else found[0].incidents
    return Detected(frame, sorted(k for d in found for k in d.keys))


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
    """One key's scored series for a chart: that key alone is read and scored (its score is its own history's);
    metric "calls daily" is the usage summary's calls, day by day."""
    if metric == "calls daily":
        return key_daily_frame(anomaly_reads.daily_calls(db_path, until=now, keys=[key]), key, now)
    scored = score_metric(anomaly_reads.hourly_series(db_path, now, keys=[key]), metric, now)
    if scored is None or key not in scored["value"].columns:
        return pd.DataFrame()
    return key_frame(scored, key)


def overlapping(found: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Incidents that touch [start, end)."""
    if found.empty:
        return found
    return found[(pd.to_datetime(found["end"]) >= pd.Timestamp(start)) & (pd.to_datetime(found["start"]) < end)]


def recent_values(db_path: Source, now: datetime, key: str, metric: str, grain: str, since: datetime) -> pd.DataFrame:
    """[period, value] of one key's metric from `since` up to the last complete period, for a small chart beside
    an incident: no scoring, just what was collected (calls nobody collected stay unknown: NaN)."""
    moment = pd.Timestamp(now)
    until = (moment.floor("D") if grain == "day" else moment.floor("h")).to_pydatetime()  # the period in progress
    found = anomaly_reads.key_recent(db_path, key, metric, grain, since, until)
    return pd.DataFrame({"period": pd.to_datetime(found["period"]), "value": found["value"].where(found["known"])})
