"""Traffic rollups for keys: hour/day series, what is unknown in them, like-for-like comparisons, hour-of-week
profiles, profile distance and top movers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from formatting import UTC_ZONE, day, day_span, moment, plural

GRAINS = {"hour": "h", "day": "D"}
# A path segment that names one object (a job or upload id) rather than a route: at least six characters with
# a digit in them ("job_58e4…", a UUID), unlike "v1" or "jobs".
_ID_SEGMENT = re.compile(r"(?<=/)(?=[^/?#]*\d)[^/?#]{6,}")


def endpoint_route(endpoint: str) -> str:
    """'GET /v1/jobs/job_58e4c1' → 'GET /v1/jobs/{id}': one bar per route, not one per job."""
    return _ID_SEGMENT.sub("{id}", endpoint)


def by_route(breakdown: pd.DataFrame, column: str = "endpoint") -> pd.DataFrame:
    """An events breakdown by endpoint regrouped by route, busiest first."""
    if breakdown.empty:
        return breakdown
    routed = breakdown.assign(**{column: breakdown[column].astype(str).map(endpoint_route)})
    summed = routed.groupby(column, as_index=False)[["calls", "credits"]].sum()
    return summed.sort_values("calls", ascending=False).reset_index(drop=True)


def rollup(
    frame: pd.DataFrame,
    time_col: str,
    value_cols: Sequence[str],
    grain: str,
    by: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Sum `value_cols` per `grain` bucket (and per `by`), zero-filling empty buckets inside [start, end)."""
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {', '.join(GRAINS)}, not {grain!r}")
    freq = GRAINS[grain]
    columns = [*([by] if by else []), "period", *value_cols]
    if frame.empty and (start is None or end is None):
        return pd.DataFrame(columns=columns)
    data = frame.assign(period=pd.to_datetime(frame[time_col]).dt.floor(freq))
    keys = [by, "period"] if by else ["period"]
    summed = data.groupby(keys, as_index=False)[list(value_cols)].sum() if not data.empty else data[columns]
    lo = pd.Timestamp(start).floor(freq) if start is not None else summed["period"].min()
    hi = pd.Timestamp(end) if end is not None else summed["period"].max() + pd.Timedelta(1, freq)
    periods = pd.date_range(lo, hi, freq=freq, inclusive="left")
    groups = sorted(summed[by].dropna().unique().tolist()) if by else [None]
    if by and not groups:
        return pd.DataFrame(columns=columns)
    if by:
        grid = pd.MultiIndex.from_product([groups, periods], names=[by, "period"]).to_frame(index=False)
    else:
        grid = pd.DataFrame({"period": periods})
    out = grid.merge(summed, on=keys, how="left")
    out[list(value_cols)] = out[list(value_cols)].fillna(0)
    return out[columns]


def profile_bins(hours: pd.Series, block_hours: int) -> np.ndarray:
    """Bin index of each UTC hour: weekday vs weekend, times the `block_hours`-long block of the day."""
    stamps = pd.to_datetime(hours)
    blocks = 24 // block_hours
    weekend = (stamps.dt.day_of_week >= 5).to_numpy().astype(int)
    return weekend * blocks + (stamps.dt.hour // block_hours).to_numpy().astype(int)


def week_profile(hours: pd.Series, counts: pd.Series, block_hours: int) -> np.ndarray:
    """Share of the counts in each (weekday/weekend × block of the day) bin; zeros when there is nothing."""
    n_bins = 2 * (24 // block_hours)
    totals = np.bincount(profile_bins(hours, block_hours), weights=counts.to_numpy(dtype=float), minlength=n_bins)
    total = totals.sum()
    return totals / total if total > 0 else totals


def profile_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance: the share of traffic that would have to move to make the profiles equal."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def busiest_block(profile: np.ndarray, block_hours: int) -> str:
    """Human label of the profile's busiest bin, e.g. 'weekdays 12:00–15:00 UTC'."""
    blocks = 24 // block_hours
    index = int(np.argmax(profile))
    day = "weekends" if index >= blocks else "weekdays"
    start = (index % blocks) * block_hours
    return f"{day} {start:02d}:00–{start + block_hours:02d}:00 UTC"


def top_movers(current: pd.DataFrame, previous: pd.DataFrame, value: str = "calls", limit: int = 10) -> pd.DataFrame:
    """Keys whose `value` changed most against the previous period (by absolute change).

    Both frames hold one row per key with `key_name` and `value`; keys absent from one side count as 0.
    """
    cur = current.groupby("key_name")[value].sum().rename("current")
    prev = previous.groupby("key_name")[value].sum().rename("previous")
    both = pd.concat([cur, prev], axis=1).fillna(0.0)
    both["change"] = both["current"] - both["previous"]
    both["change_pct"] = np.where(
        both["previous"] > 0, both["change"] / both["previous"].where(both["previous"] > 0), np.nan
    )
    both = both[both["change"] != 0]
    ranked = both.reindex(both["change"].abs().sort_values(ascending=False).index).head(limit)
    out = ranked.reset_index().rename(columns={"index": "key_name"})
    return out[["key_name", "current", "previous", "change", "change_pct"]]


# --- unknown is not zero --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unknown:
    """A span [start, end) nobody collected, and why: drawn as a gap, never as zero."""

    start: pd.Timestamp
    end: pd.Timestamp
    reason: str


def _clip(start: datetime, end: datetime, lo: datetime, hi: datetime, reason: str) -> list[Unknown]:
    a, b = max(pd.Timestamp(start), pd.Timestamp(lo)), min(pd.Timestamp(end), pd.Timestamp(hi))
    return [Unknown(a, b, reason)] if a < b else []


def _not_yet(start: datetime, end: datetime, read_at: datetime | None, what: str, tz: ZoneInfo) -> list[Unknown]:
    if read_at is None:
        return [Unknown(pd.Timestamp(start), pd.Timestamp(end), f"not collected: {what} was never read")]
    return _clip(read_at, end, start, end, f"not collected yet: {what} was last read {moment(read_at, tz)}")


def daily_unknown(
    start: date, end: date, first_day: date | None, read_at: datetime | None, tz: ZoneInfo = UTC_ZONE
) -> list[Unknown]:
    """Days of [start, end] the usage summary does not hold: before its first day, and after its last read."""
    lo, hi = pd.Timestamp(start), pd.Timestamp(end) + pd.Timedelta(days=1)
    if first_day is None:
        return [Unknown(lo, hi, "not collected: the usage summary holds no days yet")]
    spans = _clip(lo, pd.Timestamp(first_day), lo, hi, f"not collected: the usage summary starts on {day(first_day)}")
    if read_at is None:
        return [Unknown(lo, hi, "not collected: the usage summary was never read")]
    after = pd.Timestamp(read_at).floor("D") + pd.Timedelta(days=1)  # the day of the last read is partial
    return spans + _clip(after, hi, lo, hi, f"not collected yet: the usage summary was last read {moment(read_at, tz)}")


def hourly_calls_unknown(
    start: datetime,
    end: datetime,
    covered_since: datetime | None,
    gaps: Iterable[tuple[datetime, datetime]],
    read_at: datetime | None,
    tz: ZoneInfo = UTC_ZONE,
) -> list[Unknown]:
    """Hours of [start, end) with no hourly calls: before event polling began (the first whole hour after it),
    inside a window the events feed overflowed, and after the feed's last read."""
    if covered_since is None or pd.isna(covered_since):
        return [Unknown(pd.Timestamp(start), pd.Timestamp(end), "no hourly calls: this key's events were never polled")]
    first_hour = pd.Timestamp(covered_since).ceil("h")
    spans = _clip(
        start,
        first_hour,
        start,
        end,
        f"no hourly calls before event polling began ({moment(covered_since, tz)}); "
        "the Day view has every day's calls from the usage summary",
    )
    for gap_start, gap_end in gaps:
        spans += _clip(
            pd.Timestamp(gap_start).floor("h"),
            pd.Timestamp(gap_end).ceil("h"),
            start,
            end,
            f"events window overflowed between two polls ({moment(gap_start, tz)} – {moment(gap_end, tz)}): "
            "some calls were never seen",
        )
    if read_at is not None:
        read_at = pd.Timestamp(read_at).ceil("h")
    return spans + _not_yet(start, end, read_at, "the events feed", tz)


def hourly_jobs_unknown(
    start: datetime, end: datetime, read_at: datetime | None, tz: ZoneInfo = UTC_ZONE
) -> list[Unknown]:
    """Hours of [start, end) after the jobs list's last read (its history before is complete)."""
    return _not_yet(start, end, pd.Timestamp(read_at).ceil("h") if read_at is not None else None, "the jobs list", tz)


def mask_unknown(
    series: pd.DataFrame, columns: Sequence[str], spans: Sequence[Unknown], grain: str, period: str = "period"
) -> pd.DataFrame:
    """`series` with `columns` set to NaN (unknown) in every `grain` period that overlaps a span."""
    if series.empty or not spans:
        return series
    starts = pd.to_datetime(series[period])
    ends = starts + pd.Timedelta(1, GRAINS[grain])
    unknown = np.zeros(len(series), dtype=bool)
    for span in spans:
        unknown |= ((starts < span.end) & (ends > span.start)).to_numpy()
    out = series.copy()
    out[list(columns)] = out[list(columns)].astype(float)
    out.loc[unknown, list(columns)] = np.nan
    return out


def partial_period(read_at: datetime | None, grain: str) -> pd.Timestamp | None:
    """The period still in progress at the last read (drawn as partial), or None."""
    if read_at is None or pd.isna(read_at):
        return None
    return pd.Timestamp(read_at).floor(GRAINS[grain])


# --- like for like ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Which complete days of a range are compared with which earlier days, and the caption that says so."""

    current: tuple[date, date] | None  # the complete days compared (None: no complete day in range)
    previous: tuple[date, date] | None  # as many days just before; None: no comparable earlier data
    partial_day: date | None  # the day in range still in progress (left out of the comparison)
    note: str

    @property
    def comparable(self) -> bool:
        return self.current is not None and self.previous is not None


def like_for_like(
    start: date, end: date, first_day: date | None, read_at: datetime | None, tz: ZoneInfo = UTC_ZONE
) -> Comparison:
    """Compare only complete days with as many days just before them, and only when those were collected.

    A day is complete once the usage summary was read after it ended; the day of the last read is in
    progress and compared with nothing (its missing hours are not a drop). When the days before the range
    were never collected there is no change to show (a total is not a rise from zero).
    """
    last_read = pd.Timestamp(read_at) if read_at is not None and not pd.isna(read_at) else None
    partial = last_read.date() if last_read is not None and start <= last_read.date() <= end else None
    last_complete = last_read.date() - timedelta(days=1) if last_read is not None else None
    if last_complete is None or min(end, last_complete) < start:
        return Comparison(None, None, partial, "No change shown: no day of this range is complete yet.")
    current_end = min(end, last_complete)
    n = (current_end - start).days + 1
    previous = (start - timedelta(days=n), start - timedelta(days=1))
    if first_day is None or previous[0] < first_day:
        since = f"before {day(first_day)}" if first_day is not None else "yet"
        return Comparison(
            (start, current_end),
            None,
            partial,
            f"No change shown: nothing was collected {since}, so the {plural(n, 'day')} before this range are "
            "unknown (a total is not a rise from zero).",
        )
    return Comparison(
        (start, current_end),
        previous,
        partial,
        f"Changes: the {plural(n, 'complete day')} {day_span(start, current_end)} against the {plural(n, 'day')} "
        f"before ({day_span(*previous)}).",
    )


def unknown_everywhere(per_series: Sequence[Sequence[Unknown]]) -> list[Unknown]:
    """The spans unknown in every one of several series (where a chart of them all has nothing to show);
    each keeps the reason of the first series'."""
    if not per_series:
        return []
    common = list(per_series[0])
    for spans in per_series[1:]:
        common = [
            Unknown(max(a.start, b.start), min(a.end, b.end), a.reason)
            for a in common
            for b in spans
            if max(a.start, b.start) < min(a.end, b.end)
        ]
    return common


def combine_known(
    series: pd.DataFrame, columns: Sequence[str], group_of: pd.Series, name: str, by: str = "key_name"
) -> pd.DataFrame:
    """Per-key `series` summed into groups (`group_of`: key → group, e.g. its environment) per period, as
    [name, period, *columns]; a group's period is unknown (NaN) when any of its keys' is (a sum of some of
    its keys is not the group's total)."""
    data = series.assign(**{name: series[by].map(group_of)})
    grouped = data.groupby([name, "period"])[list(columns)]
    summed = grouped.sum(min_count=1)
    summed = summed.mask(grouped.agg(lambda s: s.isna().any()).astype(bool))
    return summed.reset_index()
