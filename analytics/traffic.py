"""Traffic rollups for keys: hour/day series, hour-of-week profiles, profile distance and top movers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

GRAINS = {"hour": "h", "day": "D"}


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
