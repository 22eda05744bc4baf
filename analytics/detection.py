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

from analytics.anomalies import DEFAULT_THRESHOLD, DetectorConfig, _score_block, incident_rows

METRICS = ("calls", "failed_jobs", "credits")
_ROW_COLUMNS = [
    "key_name", "metric", "direction", "start", "end", "peak_score", "expected", "observed", "grain",
    "normal_day", "job_size", "jobs", "learning",
]  # fmt: skip
INCIDENT_COLUMNS = [
    *_ROW_COLUMNS[:12], "impact", "day_share", "severity", "learning", "alert_worthy", "event",
]  # fmt: skip
CLI_COLUMNS = ["key_name", "metric", "direction", "start", "end", "peak_score", "grain", "severity", "alert_worthy"]

NORMAL_DAYS = 28  # a key's normal day: the median of this many days before the incident's
# A key's series is still learning its baseline for this long (a weekly rhythm has been seen once).
LEARNING_POINTS = {"hour": 7 * 24, "day": 14}
# What an incident must move, in the metric's own units, before it is worth a notice: a handful of calls
# or one failed job is someone trying the API, not an event.
MIN_IMPACT = {"calls": 25.0, "failed_jobs": 2.5, "credits": 0.0}
MIN_CREDIT_JOBS = 3.0
# ... and this share of the key's normal day: extra spend is news at half a normal day's spend; any other
# change at a twentieth of the day.
MIN_SHARE = {"spend": 0.5, "other": 0.05}
MEDIUM_SHARE, HIGH_SHARE = 0.15, 0.5
LINK_SLACK = pd.Timedelta(hours=1)
# The detector's windows are in points; at daily grain a point is a day, and 90 days of summary hold
# too few for hourly windows (a 168-point spread would still remember the first fortnight, when the
# day-of-week profile was being learned).  The same model, its windows in days: a few weeks each.  A
# day is 24 hourly points, so the same false-alarm rate per key and week allows a lower alert line
# (3.5 against 4 robust sigmas): on the stand-in with all but 3 days at daily grain, calls recall 0.84
# -> 0.88 for 0.6 -> 1.0 false alert-worthy incidents per 1,000 key-days.
DAILY_CONFIG = DetectorConfig(
    level_window=14.0, spread_window=28.0, warmup_points=14.0, regime_points=7.0, shift_points=7,
    shift_memory=28.0, z_half=3.5,
)  # fmt: skip


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
        for name in ("expected", "lower", "upper", "score", "level", "dev"):
            scored[name] = pd.DataFrame(parts[name][rows, cols], index=wide.index, columns=wide.columns)
        if metric in units:
            for name in ("expected", "lower", "upper", "dev"):
                scored[name] = scored[name] * units[metric]
            scored["unit"] = units[metric]
            scored["jobs"] = (
                frames["jobs"].reindex(index=wide.index, columns=wide.columns) if "jobs" in frames else None
            )
        out[metric] = scored
    return out


def key_frame(scored: dict[str, pd.DataFrame], key: str) -> pd.DataFrame:
    """One key's `score_frame`-shaped frame from `score_metrics` output, from its first hour on."""
    names = ("value", "expected", "lower", "upper", "score", "level")
    frame = pd.DataFrame({name: scored[name][key] for name in names})
    dev = scored["dev"][key].to_numpy()
    sign = np.where(dev > 0, "spike", np.where(dev < 0, "drop", ""))
    frame["direction"] = np.where(frame["level"].to_numpy() > 0, sign, "").astype(object)
    first = frame["value"].first_valid_index()
    return frame.loc[first:] if first is not None else frame.iloc[0:0]


def _normal_days(value: pd.DataFrame, grain: str) -> pd.DataFrame:
    """Per key and day: the median daily total of the `NORMAL_DAYS` days before it (causal), NaN until 7 are known.

    A day counts only when most of it is known (20 of 24 hours at hourly grain).
    """
    if grain == "hour":
        known = value.notna().resample("D").sum()
        totals = value.resample("D").sum(min_count=1).where(known >= 20)
    else:
        totals = value.resample("D").sum(min_count=1)
    return totals.shift(1).rolling(NORMAL_DAYS, min_periods=7).median()


def _scored_incidents(scored: dict[str, pd.DataFrame], metric: str, threshold: float, grain: str) -> list[dict]:
    """Incident rows, with their size, of every key in `score_metrics`-shaped output (only keys that alerted)."""
    score = scored["score"].to_numpy()
    alerting = np.flatnonzero((np.nan_to_num(score, nan=0.0) >= threshold).any(axis=0))
    if alerting.size == 0:
        return []
    level, value, expected, dev = (scored[name].to_numpy() for name in ("level", "value", "expected", "dev"))
    index, keys = scored["score"].index, scored["score"].columns
    normal = _normal_days(scored["value"].iloc[:, alerting], grain)
    unit = scored["unit"].to_numpy() if "unit" in scored else None
    jobs = scored["jobs"].to_numpy() if scored.get("jobs") is not None else None
    first_valid = np.argmax(np.isfinite(value), axis=0)
    learning_points = LEARNING_POINTS[grain]
    rows: list[dict] = []
    for pos, j in enumerate(alerting):
        sign = np.where(dev[:, j] > 0, "spike", np.where(dev[:, j] < 0, "drop", ""))
        direction = np.where(level[:, j] > 0, sign, "").astype(object)
        found = incident_rows(index, score[:, j], direction, value[:, j], expected[:, j], threshold, level[:, j])
        for r in found:
            a = index.get_loc(r["start"])
            day = pd.Timestamp(r["start"]).floor("D")
            normal_day = normal.iloc[:, pos].get(day, np.nan)
            rows.append(
                {
                    "key_name": str(keys[j]),
                    "metric": metric,
                    "direction": r["direction"],
                    "start": r["start"],
                    "end": r["end"],
                    "peak_score": float(r["peak_score"]),
                    "expected": float(r["expected"]),
                    "observed": float(r["observed"]),
                    "grain": grain,
                    "normal_day": float(normal_day) if pd.notna(normal_day) else np.nan,
                    "job_size": float(unit[a, j]) if unit is not None else np.nan,
                    "jobs": float(np.nansum(jobs[a : index.get_loc(r["end"]) + 1, j])) if jobs is not None else np.nan,
                    "learning": bool(a - first_valid[j] < learning_points),
                }
            )
    return rows


def detect(
    hourly: pd.DataFrame,
    now: datetime,
    threshold: float = DEFAULT_THRESHOLD,
    since: datetime | None = None,
    config: DetectorConfig | None = None,
    daily: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Incidents (`INCIDENT_COLUMNS`) at hourly grain, and at daily grain for calls before hourly coverage.

    `hourly` is the long frame [key_name, hour, metric, value]; `daily` (optional) is the usage summary's
    [key_name, day, value, hourly_from] calls per day, where `hourly_from` is the key's first hour of
    hourly calls (NaT when it has none): days not wholly covered by hourly calls are judged at daily grain.
    `start`/`end` are the first and last flagged hour (inclusive) or day; only incidents ending at or
    after `since` are kept (the whole history is still scored so baselines are warm).  Every incident
    carries its size (`impact`, `day_share`), `severity`, whether it is `alert_worthy`, and the `event`
    it belongs to (co-occurring incidents of one key share it).
    """
    rows: list[dict] = []
    for metric, scored in score_metrics(hourly, METRICS, now, config).items():
        rows.extend(_scored_incidents(scored, metric, threshold, "hour"))
    if daily is not None and not daily.empty:
        rows.extend(_daily_call_incidents(daily, now, threshold))
    return _finish(rows, since)


def daily_wide(daily: pd.DataFrame, now: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(calls per day, wholly covered by hourly calls) as wide frames: days up to yesterday, one column per key."""
    today = pd.Timestamp(now).floor("D")
    days = pd.to_datetime(daily["day"]).dt.floor("D")
    keep = days < today  # today is incomplete
    part = daily.loc[keep].assign(day=days[keep])
    if part.empty:
        empty = pd.DataFrame(index=pd.DatetimeIndex([], name="day"))
        return empty, empty
    value = part.pivot_table(index="day", columns="key_name", values="value", aggfunc="sum")
    index = pd.date_range(value.index.min(), today - pd.Timedelta(days=1), freq="D", name="day")
    value = value.reindex(index)
    # A key's days from its first summary day on are known (a missing day had no calls); before, unknown.
    started = value.notna().cummax()
    value = value.fillna(0.0).where(started)
    hourly_from = part.groupby("key_name")["hourly_from"].min() if "hourly_from" in part else pd.Series(dtype=object)
    hourly_from = pd.to_datetime(hourly_from.reindex(value.columns))
    day_end = pd.Series(index + pd.Timedelta(days=1), index=index)
    covered = pd.DataFrame(
        {key: (day_end >= hourly_from[key]).to_numpy() & (index >= hourly_from[key]) if pd.notna(hourly_from[key])
         else np.zeros(len(index), dtype=bool) for key in value.columns},
        index=index,
    )  # fmt: skip
    return value, covered


def key_daily_frame(daily: pd.DataFrame, key: str, now: datetime) -> pd.DataFrame:
    """One key's daily calls scored as `detect` scores them (`score_frame`-shaped, indexed by day)."""
    value, _ = daily_wide(daily[daily["key_name"] == key], now)
    if value.empty or key not in value.columns:
        return pd.DataFrame()
    parts = _score_block(value[[key]].to_numpy(dtype=float), value.index, DAILY_CONFIG)
    scored = {"value": value[[key]]}
    for name in ("expected", "lower", "upper", "score", "level", "dev"):
        scored[name] = pd.DataFrame(parts[name], index=value.index, columns=[key])
    return key_frame(scored, key)


def _daily_call_incidents(daily: pd.DataFrame, now: datetime, threshold: float) -> list[dict]:
    """Daily calls incidents starting on days hourly calls do not wholly cover (the whole daily history is scored)."""
    value, covered = daily_wide(daily, now)
    if value.empty:
        return []
    parts = _score_block(value.to_numpy(dtype=float), value.index, DAILY_CONFIG)
    scored = {"value": value}
    for name in ("expected", "lower", "upper", "score", "level", "dev"):
        scored[name] = pd.DataFrame(parts[name], index=value.index, columns=value.columns)
    rows = _scored_incidents(scored, "calls", threshold, "day")
    return [r for r in rows if not bool(covered.at[pd.Timestamp(r["start"]), r["key_name"]])]


def _severity(out: pd.DataFrame) -> pd.DataFrame:
    """Size in the metric's own units against the key's normal day; severity; alert-worthiness."""
    impact = (out["observed"] - out["expected"]).abs()
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(
            out["normal_day"] > 0, impact / out["normal_day"], np.where(out["normal_day"] == 0, np.inf, np.nan)
        )
    floor = out["metric"].map(MIN_IMPACT).astype(float)
    # Credits: at least MIN_CREDIT_JOBS of the key's typical charges, and a spike made of at least that many
    # jobs: one long video on a quiet key is a big charge, not a change in how the key spends (the
    # reconciliation checks that its charge matches its minutes).
    credits = out["metric"] == "credits"
    floor = floor.where(~credits, np.fmax(floor, MIN_CREDIT_JOBS * out["job_size"].fillna(0.0)))
    few_jobs = credits & (out["direction"] == "spike") & ~(out["jobs"].fillna(0.0) >= MIN_CREDIT_JOBS)
    out = out.assign(impact=impact, day_share=share)
    big = (share >= HIGH_SHARE) | ((out["direction"] == "drop") & (out["observed"] <= 0) & (impact >= floor))
    medium = share >= MEDIUM_SHARE
    out["severity"] = np.where(big, "high", np.where(medium, "medium", "low"))
    out["alert_worthy"] = (
        ~out["learning"].astype(bool)
        & ~few_jobs
        & (impact >= floor)
        & (
            np.nan_to_num(share, nan=np.inf)
            >= np.where(credits & (out["direction"] == "spike"), MIN_SHARE["spend"], MIN_SHARE["other"])
        )
    )
    return out


def _link_events(out: pd.DataFrame) -> pd.Series:
    """One event id per key for incidents whose spans overlap or touch (within `LINK_SLACK`)."""
    event = pd.Series("", index=out.index, dtype=object)
    span_end = out["end"] + pd.to_timedelta(np.where(out["grain"] == "day", 24, 1), unit="h")
    for key, part in out.sort_values("start").groupby("key_name", sort=False):
        current, reach = None, None
        for i in part.index:
            if current is None or out.at[i, "start"] > reach + LINK_SLACK:
                current, reach = f"{key}@{pd.Timestamp(out.at[i, 'start']):%Y-%m-%dT%H:%M}", span_end[i]
            reach = max(reach, span_end[i])
            event[i] = current
    return event


def _finish(rows: list[dict], since: datetime | None) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=_ROW_COLUMNS)
    if out.empty:
        out = pd.DataFrame(columns=INCIDENT_COLUMNS)
        out["start"] = pd.to_datetime(out["start"])
        out["end"] = pd.to_datetime(out["end"])
        return out
    out["start"] = pd.to_datetime(out["start"])
    out["end"] = pd.to_datetime(out["end"])
    out = _severity(out)
    out["event"] = _link_events(out)
    if since is not None:
        out = out[out["end"] >= pd.Timestamp(since)]
    return sort_incidents(out[INCIDENT_COLUMNS])


def sort_incidents(found: pd.DataFrame) -> pd.DataFrame:
    """Incidents in report order: by start, key, metric (then grain and direction, so ties have one order)."""
    order = ["start", "key_name", "metric", "grain", "direction"]
    return found.sort_values(order, kind="stable").reset_index(drop=True)
