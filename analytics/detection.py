"""Per-key incidents on calls, failed jobs and credits from hourly series (pure: no store access).

`detect(hourly, now)` takes the long frame the store gives ([key_name, hour, metric, value]),
builds one wide hourly frame per metric (one column per key, shared index ending at the hour
before `now`), fills hours with no row with 0 from each key's first hour on (NaN values, e.g.
hours inside an events coverage gap, stay unknown and score 0), scores every column of every
metric in one vectorised pass (as `score_many` does) and merges consecutive flagged hours into incidents.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from analytics.anomalies import DEFAULT_THRESHOLD, DetectorConfig, _score_block, incident_rows, incidents, score_frame

METRICS = ("calls", "failed_jobs", "credits")
INCIDENT_COLUMNS = ["key_name", "metric", "direction", "start", "end", "peak_score", "expected", "observed", "grain"]
CLI_COLUMNS = ["key_name", "metric", "direction", "start", "end", "peak_score"]


def _last_hour(now: datetime) -> pd.Timestamp:
    """The last complete hour before `now` (an hour still in progress would look like a drop)."""
    return pd.Timestamp(now).floor("h") - pd.Timedelta(hours=1)


def wide_frame(hourly: pd.DataFrame, metric: str, now: datetime) -> pd.DataFrame:
    """Hourly frame (index: hour, columns: keys) for one metric; NaN before a key's first hour.

    Repeated (key, hour) rows are summed; a cell with any NaN row stays NaN (unknown).
    """
    return wide_frames(hourly, [metric], now).get(metric, pd.DataFrame(index=pd.DatetimeIndex([], name="hour")))


def wide_frames(hourly: pd.DataFrame, metrics: Sequence[str], now: datetime) -> dict[str, pd.DataFrame]:
    """`wide_frame` for each metric that has rows, factorising the long frame's columns once.

    Filtering a multi-million-row long frame per metric (string compares, then copying its string
    columns) cost more than the bincounts that build the wide frames.
    """
    end = _last_hour(now)
    hours = pd.to_datetime(hourly["hour"])
    unit = hours.dt.unit  # the index keeps the input's resolution
    ns = hours.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    keep = ns <= end.as_unit("ns").value
    metric_codes, metric_names = pd.factorize(hourly["metric"])
    key_codes, key_names = pd.factorize(hourly["key_name"], sort=True)
    values = hourly["value"].to_numpy(dtype=float)
    hour_ns = pd.Timedelta(hours=1).value
    out: dict[str, pd.DataFrame] = {}
    for metric in metrics:
        found = np.flatnonzero(metric_names == metric)
        if found.size == 0:
            continue
        rows = np.flatnonzero(keep & (metric_codes == found[0]))
        if rows.size == 0:
            continue
        # The keys with rows for this metric, renumbered in order (a bincount, not a sort).
        present = np.bincount(key_codes[rows], minlength=len(key_names)) > 0
        present_keys = np.flatnonzero(present)
        codes = (np.cumsum(present) - 1)[key_codes[rows]]
        first_ns = int(ns[rows].min())
        index = pd.date_range(pd.Timestamp(first_ns).as_unit(unit), end, freq="h", name="hour")
        pos = (ns[rows] - first_ns) // hour_ns
        out[metric] = _wide(index, pos, codes, values[rows], key_names[present_keys])
    return out


def _wide(
    index: pd.DatetimeIndex, pos: np.ndarray, codes: np.ndarray, values: np.ndarray, keys: pd.Index
) -> pd.DataFrame:
    """Sum values into (hour position, key code) cells; see `wide_frame` for what NaN means."""
    n, m = len(index), len(keys)
    cell = pos * m + codes
    unknown = np.isnan(values)
    total = np.bincount(cell, weights=np.where(unknown, 0.0, values), minlength=n * m).reshape(n, m)
    present = np.bincount(cell, minlength=n * m).reshape(n, m) > 0
    nan_cell = np.bincount(cell[unknown], minlength=n * m).reshape(n, m) > 0
    first = np.full(m, n, dtype=np.int64)
    np.minimum.at(first, codes, pos)
    started = np.arange(n)[:, None] >= first[None, :]
    wide = np.where(present, total, 0.0)
    wide[nan_cell | ~started] = np.nan
    return pd.DataFrame(wide, index=index, columns=pd.Index(keys, name=None))


def credit_units(jobs: pd.DataFrame, credits: pd.DataFrame) -> pd.DataFrame:
    """Per key and hour, the charge that counts as one unit of credits noise (causal).

    Hourly credits are a compound count: N jobs times a heavy-tailed charge X per job (video
    length).  Their variance is E[N] E[X^2], so credits / u with u = E[X^2] / E[X] has variance
    equal to its mean: a count the detector's count-noise floor understands.  One long video on
    a quiet key is then one unit, not a spike; many jobs at once are.  E[X] and E[X^2] come from
    hourly sums only, using every hour strictly before t: with n jobs and sum S in an hour,
    E[S^2] = n E[X^2] + n (n - 1) E[X]^2, n from the `jobs` wide frame; when it is empty every non-zero hour counts as
    one job.  Hours before any charge use that hour's own mean charge.
    """
    s = credits.fillna(0.0)
    if jobs.empty:
        n = (s > 0).astype(float)
    else:
        n = jobs.reindex(index=s.index, columns=s.columns).fillna(0.0)
    sum_s, sum_s2 = s.cumsum().shift(1), (s * s).cumsum().shift(1)
    sum_n, sum_nn = n.cumsum().shift(1), (n * (n - 1.0)).cumsum().shift(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sum_s / sum_n
        second = np.fmax((sum_s2 - mean * mean * sum_nn) / sum_n, mean * mean)
        unit = second / mean
        unit = unit.where(np.isfinite(unit) & (unit > 0)).fillna(s / n.where(n > 0))
    return unit.where(unit > 0).ffill().fillna(1.0)


def score_metric(
    hourly: pd.DataFrame, metric: str, now: datetime, config: DetectorConfig | None = None
) -> dict[str, pd.DataFrame] | None:
    """value/expected/lower/upper/score/dev (value - expected) frames, one column per key, for one metric
    of the long hourly frame; None when it has no series.

    Credits are scored in units of `credit_units` (a count the count-noise floor understands)
    and their value, expected and band are reported back in credits.
    """
    return score_metrics(hourly, [metric], now, config).get(metric)


def score_metrics(
    hourly: pd.DataFrame, metrics: Sequence[str], now: datetime, config: DetectorConfig | None = None
) -> dict[str, dict[str, pd.DataFrame]]:
    """`score_metric` for several metrics in one vectorised pass (metrics with no series are left out).

    The metrics' wide frames share one hourly index (each padded with NaN before its own first hour,
    which no state sees), so the detector's per-hour loop runs once for every key and metric instead of
    once per metric: its cost is mostly per hour, not per column.
    """
    frames = wide_frames(hourly, [*metrics, "jobs"], now)
    wides = {m: frames[m] for m in metrics if m in frames and frames[m].shape[1] > 0}
    empty = pd.DataFrame(index=pd.DatetimeIndex([], name="hour"))
    units = {m: credit_units(frames.get("jobs", empty), wides[m]) for m in wides if m == "credits"}
    if not wides:
        return {}
    index = min((w.index for w in wides.values()), key=lambda i: i[0])
    blocks = [(wides[m] / units[m]).round() if m in units else wides[m] for m in wides]
    x = np.hstack([b.reindex(index).to_numpy(dtype=float) for b in blocks])
    parts = _score_block(x, index, config or DetectorConfig())
    out: dict[str, dict[str, pd.DataFrame]] = {}
    first = 0
    for metric, wide in wides.items():
        cols = slice(first, first + wide.shape[1])
        start = index.get_loc(wide.index[0])
        rows = slice(start, start + len(wide.index))
        first = cols.stop
        scored = {"value": wide}
        for name in ("expected", "lower", "upper", "score", "dev"):
            scored[name] = pd.DataFrame(parts[name][rows, cols], index=wide.index, columns=wide.columns)
        if metric in units:
            for name in ("expected", "lower", "upper"):
                scored[name] = scored[name] * units[metric]
        out[metric] = scored
    return out


def key_frame(scored: dict[str, pd.DataFrame], key: str) -> pd.DataFrame:
    """One key's `score_frame`-shaped frame from `score_metrics` output, from its first hour on."""
    frame = pd.DataFrame({name: scored[name][key] for name in ("value", "expected", "lower", "upper", "score")})
    dev = scored["dev"][key].to_numpy()
    sign = np.where(dev > 0, "spike", np.where(dev < 0, "drop", ""))
    frame["direction"] = np.where(frame["score"].to_numpy() > 0, sign, "").astype(object)
    first = frame["value"].first_valid_index()
    return frame.loc[first:] if first is not None else frame.iloc[0:0]


def _incident_rows(frame: pd.DataFrame, key: str, metric: str, threshold: float, grain: str) -> list[dict]:
    found = incidents(frame, threshold)
    return [_labelled(r, key, metric, grain) for r in found.to_dict("records")]


def _labelled(found: dict, key: str, metric: str, grain: str) -> dict:
    return {
        "key_name": key,
        "metric": metric,
        "direction": found["direction"],
        "start": found["start"],
        "end": found["end"],
        "peak_score": float(found["peak_score"]),
        "expected": float(found["expected"]),
        "observed": float(found["observed"]),
        "grain": grain,
    }


def _scored_incidents(scored: dict[str, pd.DataFrame], metric: str, threshold: float) -> list[dict]:
    """Incident rows of every key in `score_metrics` output, touching only the keys that flagged."""
    score = scored["score"].to_numpy()
    flagged = np.flatnonzero((np.nan_to_num(score, nan=0.0) >= threshold).any(axis=0))
    value, expected, dev = (scored[name].to_numpy() for name in ("value", "expected", "dev"))
    index, keys = scored["score"].index, scored["score"].columns
    rows: list[dict] = []
    for j in flagged:
        sign = np.where(dev[:, j] > 0, "spike", np.where(dev[:, j] < 0, "drop", ""))
        direction = np.where(score[:, j] > 0, sign, "").astype(object)
        found = incident_rows(index, score[:, j], direction, value[:, j], expected[:, j], threshold)
        rows.extend(_labelled(r, str(keys[j]), metric, "hour") for r in found)
    return rows


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
    for metric, scored in score_metrics(hourly, METRICS, now, config).items():
        rows.extend(_scored_incidents(scored, metric, threshold))
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
