"""Per-key incidents on calls, failed jobs and credits from hourly series (pure: no store access).

`detect(hourly, now)` takes the long frame the store gives ([key_name, hour, metric, value]),
builds one wide hourly frame per metric (one column per key, shared index ending at the hour
before `now`), fills hours with no row with 0 from each key's first hour on (NaN values, e.g.
hours inside an events coverage gap, stay unknown and score 0), scores every column in one
vectorised `score_many` pass and merges consecutive flagged hours into incidents.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from analytics.anomalies import DEFAULT_THRESHOLD, DetectorConfig, _score_block, incidents, score_frame

METRICS = ("calls", "failed_jobs", "credits")
INCIDENT_COLUMNS = ["key_name", "metric", "direction", "start", "end", "peak_score", "expected", "observed", "grain"]
CLI_COLUMNS = ["key_name", "metric", "direction", "start", "end", "peak_score"]


def _last_hour(now: datetime) -> pd.Timestamp:
    """The last complete hour before `now` (an hour still in progress would look like a drop)."""
    return pd.Timestamp(now).floor("h") - pd.Timedelta(hours=1)


def wide_frame(hourly: pd.DataFrame, metric: str, now: datetime) -> pd.DataFrame:
    """Hourly frame (index: hour, columns: keys) for one metric; NaN before a key's first hour."""
    rows = hourly[hourly["metric"] == metric]
    end = _last_hour(now)
    rows = rows[pd.to_datetime(rows["hour"]) <= end]
    if rows.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="hour"))
    wide = rows.pivot_table(index="hour", columns="key_name", values="value", aggfunc="sum", dropna=False)
    # pivot_table drops all-NaN cells' distinction; rebuild: present-but-NaN stays NaN, absent becomes 0.
    present = rows.pivot_table(index="hour", columns="key_name", values="value", aggfunc="size", fill_value=0)
    nan_cells = rows[rows["value"].isna()].pivot_table(
        index="hour", columns="key_name", values="metric", aggfunc="size", fill_value=0
    )
    index = pd.date_range(pd.to_datetime(rows["hour"]).min(), end, freq="h", name="hour")
    wide = wide.reindex(index=index)
    present = present.reindex(index=index, columns=wide.columns, fill_value=0)
    first = rows.groupby("key_name")["hour"].min()
    started = pd.DataFrame(
        {k: index >= pd.Timestamp(first[k]) for k in wide.columns}, index=index, columns=wide.columns
    )
    wide = wide.where(present > 0, 0.0)
    if not nan_cells.empty:
        nan_mask = nan_cells.reindex(index=index, columns=wide.columns, fill_value=0) > 0
        wide = wide.mask(nan_mask)
    wide = wide.where(started)
    wide.columns.name = None
    return wide.astype(float)


def credit_units(hourly: pd.DataFrame, keys: pd.Index) -> pd.Series:
    """Per key, a large charge of one job: 90th percentile over hours with jobs of credits / jobs.

    Credits per hour are a compound count (jobs x charge per job, heavy-tailed by video length);
    scored raw, one long video on a quiet key is a "spike".  Scored in job-equivalents (rounded)
    the count-noise floor applies: one long video is not an alarm, many jobs at once are.
    Without a `jobs` metric the non-zero hourly credits stand in.
    """
    credits = hourly[hourly["metric"] == "credits"].set_index(["key_name", "hour"])["value"]
    jobs = hourly[hourly["metric"] == "jobs"].set_index(["key_name", "hour"])["value"]
    if not jobs.empty:
        both = pd.concat({"credits": credits, "jobs": jobs}, axis=1).dropna()
        both = both[(both["jobs"] > 0) & (both["credits"] > 0)]
        per_job = (both["credits"] / both["jobs"]).groupby(level=0).quantile(0.9)
    else:
        per_job = credits[credits > 0].groupby(level=0).quantile(0.9)
    return per_job.reindex(keys).where(lambda s: s > 0).fillna(1.0)


def score_wide(wide: pd.DataFrame, config: DetectorConfig | None = None) -> dict[str, pd.DataFrame]:
    """value/expected/lower/upper/score/direction frames for a wide frame in one vectorised pass.

    The same pass as `score_many` (whose scores equal these), keeping the band and expected
    values that `score_many` drops; re-running `score_frame` per key would cost a Python loop
    over every hour for each key.
    """
    cfg = config or DetectorConfig()
    parts = _score_block(wide.to_numpy(dtype=float), wide.index, cfg)
    out = {"value": wide}
    for name in ("expected", "lower", "upper", "score"):
        out[name] = pd.DataFrame(parts[name], index=wide.index, columns=wide.columns)
    sign = np.where(parts["dev"] > 0, "spike", np.where(parts["dev"] < 0, "drop", ""))
    out["direction"] = pd.DataFrame(
        np.where(parts["score"] > 0, sign, "").astype(object), index=wide.index, columns=wide.columns
    )
    return out


def key_frame(scored: dict[str, pd.DataFrame], key: str) -> pd.DataFrame:
    """One key's `score_frame`-shaped frame from `score_wide` output, from its first hour on."""
    frame = pd.DataFrame({name: scored[name][key] for name in ("value", "expected", "lower", "upper", "score")})
    frame["direction"] = scored["direction"][key]
    first = frame["value"].first_valid_index()
    return frame.loc[first:] if first is not None else frame.iloc[0:0]


def _incident_rows(frame: pd.DataFrame, key: str, metric: str, threshold: float, grain: str) -> list[dict]:
    found = incidents(frame, threshold)
    return [
        {
            "key_name": key,
            "metric": metric,
            "direction": r.direction,
            "start": r.start,
            "end": r.end,
            "peak_score": float(r.peak_score),
            "expected": float(r.expected),
            "observed": float(r.observed),
            "grain": grain,
        }
        for r in found.itertuples(index=False)
    ]


def detect(
    hourly: pd.DataFrame,
    now: datetime,
    threshold: float = DEFAULT_THRESHOLD,
    since: datetime | None = None,
    config: DetectorConfig | None = None,
) -> pd.DataFrame:
    """Incidents [key_name, metric, direction, start, end, peak_score, expected, observed, grain].

    `start`/`end` are the first and last flagged hour (inclusive, hour-aligned); only incidents
    ending at or after `since` are kept (the whole history is still scored so baselines are warm).
    """
    rows: list[dict] = []
    for metric in METRICS:
        wide = wide_frame(hourly, metric, now)
        if wide.empty or wide.shape[1] == 0:
            continue
        unit = credit_units(hourly, wide.columns) if metric == "credits" else None
        scored = score_wide(wide if unit is None else (wide / unit).round(), config)
        if unit is not None:
            for name in ("expected", "lower", "upper"):
                scored[name] = scored[name] * unit
            scored["value"] = wide
        flagged = [k for k in wide.columns if (scored["score"][k].fillna(0.0) >= threshold).any()]
        for key in flagged:
            rows.extend(_incident_rows(key_frame(scored, key), key, metric, threshold, "hour"))
    return _finish(rows, since)


def detect_daily_calls(
    daily: pd.DataFrame, now: datetime, threshold: float = DEFAULT_THRESHOLD, since: datetime | None = None
) -> pd.DataFrame:
    """Daily-grain call incidents for the days before hourly events coverage began.

    `daily` is [key_name, day, value, hourly_covered]; the full daily series is scored (so the
    baseline is warm) but only incidents starting on a day without hourly coverage are reported.
    """
    rows: list[dict] = []
    today = pd.Timestamp(now).floor("D")
    for key, part in daily.groupby("key_name", sort=True):
        series = part.set_index(pd.to_datetime(part["day"]))["value"].astype(float)
        series = series[series.index < today]  # today is incomplete
        if series.empty:
            continue
        index = pd.date_range(series.index.min(), series.index.max(), freq="D")
        series = series.groupby(level=0).sum().reindex(index, fill_value=0.0)
        covered = part.set_index(pd.to_datetime(part["day"]))["hourly_covered"]
        covered = covered.groupby(level=0).max().reindex(index, fill_value=False)
        frame = score_frame(series)
        for row in _incident_rows(frame, str(key), "calls", threshold, "day"):
            if not bool(covered.loc[row["start"]]):
                rows.append(row)
    return _finish(rows, since)


def _finish(rows: list[dict], since: datetime | None) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=INCIDENT_COLUMNS)
    if since is not None and not out.empty:
        out = out[pd.to_datetime(out["end"]) >= pd.Timestamp(since)]
    if out.empty:
        out = pd.DataFrame(columns=INCIDENT_COLUMNS)
        out["start"] = pd.to_datetime(out["start"])
        out["end"] = pd.to_datetime(out["end"])
        return out
    return out.sort_values(["start", "key_name", "metric"]).reset_index(drop=True)
