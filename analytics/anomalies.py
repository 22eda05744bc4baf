"""Causal spike/drop scores in [0, 1] for per-key traffic series: smooth rates, bursty counts, seasonal traffic, spend.

One forward pass per series (`analytics._kernel`, every series in one compiled call), in four stages.

1. Forecast.  Three one-step-ahead forecasters run side by side: a robust EWMA level; the same plus an
   hour-of-day profile; the same plus an hour-of-week profile (sub-hourly data shares hourly slots; daily
   data has a day-of-week profile).  The simplest is used unless another has been clearly tighter on points
   the model in use found ordinary (`switch_ratio`, with hysteresis), so seasonality is decided causally and
   one incident does not flip the forecast it is judged against.  Updates are winsorised to each model's
   band and points far outside it do not feed its scale, so an incident neither drags the baseline nor
   widens the band that must catch the next one; a slot still learning takes values as they are.
2. New normals.  A shift that holds on one side of the band for `shift_points` points re-anchors the level
   on their median, so a changed level stops alerting after a bounded time; for `shift_memory` points after
   that, a value that fits the old level again (and not the new) restores it: an outage that ended is
   recovery, not a second incident.
3. Evidence z: |value - expected| / spread.  The spread is the model's, widened in warm-up and kept above
   noise floors: relative (`rel_floor` of the expected value: the detector is scale-invariant) and, for
   count-like series (every value so far a non-negative integer), compound counting noise
   u * max(1, 1.25 sqrt(expected / u)), so 0 -> 3 calls is not an alarm.  u is the burst size learned from
   quiet points (a job is a submit plus its polls; values that score as anomalies never teach it, and only
   once no run through them adds up to an incident).  Where counting noise sets the spread, runs of 2-4
   points leaning the same way add up (a few failed jobs an hour for three hours), and a run of silent
   points is judged by the total expected over it; drops in non-negative series are boosted by their
   depth (silence where traffic was due is an outage).
4. Tail and onset.  Each series' own `tail_quantile` of z so far (exceedance rates on a grid of levels,
   averaged over `tail_window` points, from a normal's as prior) says how heavy its tails run: z is divided
   by how much heavier than a normal's they are (never less than 1), so a series whose points routinely land
   6 sigma out learns that this is its normal, and one threshold fits smooth rates and heavy-tailed spend
   alike.  The level is that z mapped to [0, 1] (z_half at one half) times a warm-up ramp.  The alert score
   is the level, except that within an episode (a run of points at least `episode_z` out on one side) only
   its first point past the alert line, or one `episode_growth` times bigger than the last alerted,
   scores above the line: an incident alerts when it starts and again if it grows, not at every point.

`DEFAULT_THRESHOLD` = 0.5 means z = z_half = 4 robust sigmas after the tail factor.

Measured (`make bench-anomalies`; README "Anomaly detection"): on the NAB-style dev kit in ../shared the
NAB subsets score 77.4 (section 1b; numenta 73.8, ARTime 73.4), cloudMonitoring 65.3, no false alerts on
artificialNoAnomaly; knobs were chosen on principles and checked there, not fitted per file.

Conventions: NaN values score 0.0 (no evidence) and do not update any state; the input is processed
positionally in the given order (no sorting, repeated timestamps allowed); seasonal slots come from the
timestamps, so missing timestamps simply skip slots.  The interval is the median positive step of the
first 1,000 timestamps, so appending points never changes earlier scores once the series is that long
(and for a regular index never).
"""

from __future__ import annotations

import dataclasses
from statistics import NormalDist

import numpy as np
import pandas as pd

from analytics._kernel import score_columns

DEFAULT_THRESHOLD = 0.5
"""Score at or above which a point alerts (its level, at or above which a point is out of the band)."""


_FRAME_COLUMNS = ["value", "expected", "lower", "upper", "score", "level", "direction"]


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Tuning knobs; windows are in points so the detector works at any interval."""

    seasonal: bool = True
    level_window: float = 96.0
    spread_window: float = 168.0
    season_depth: float = 5.0
    slot_min_history: int = 2
    min_history: int = 8
    warmup_points: float = 24.0
    switch_ratio: float = 0.85
    fit_clip: float = 5.0
    scale_band: float = 3.0
    level_band: float = 1.5
    regime_points: float = 24.0
    shift_points: int = 24  # consecutive same-side points outside the band after which the level re-anchors
    shift_memory: float = 168.0  # points during which a return to the level before a re-anchoring is recovery
    raw_floor: float = 0.3
    rel_floor: float = 0.05
    count_floor: float = 1.0
    count_floor_sqrt: float = 1.25
    unit_prior: float = 3.0
    unit_cap: float = 25.0
    unit_max_z: float = 4.0  # a burst further out than this never teaches the burst unit
    run_points: int = 4  # longest run whose counting-noise evidence adds up
    run_min_z: float = 0.8
    drop_boost: float = 2.5
    z_half: float = 4.0
    tail_quantile: float = 0.99
    tail_window: float = 1500.0  # points the tail's exceedance rates average over (all of them until then)
    tail_prior: float = 1500.0
    tail_levels: int = 28
    tail_alert_weight: float = 1.0  # how much a point past the alert line teaches the tail
    episode_z: float = 3.0
    episode_gap: int = 2
    episode_growth: float = 2.0  # an episode alerts again once it is this many times its last alerted size
    interval_samples: int = 1000


def _infer_interval(index: pd.Index, cfg: DetectorConfig) -> pd.Timedelta | None:
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return None
    head = index[: cfg.interval_samples + 1].as_unit("ns").asi8
    diffs = np.diff(head)
    diffs = diffs[diffs > 0]
    if diffs.size == 0:
        return None
    return pd.Timedelta(int(np.median(diffs)), unit="ns")


def _seasonal_slots(index: pd.Index, interval: pd.Timedelta | None) -> list[tuple[np.ndarray, int]]:
    """(slot per row, samples per slot per cycle) for each season the interval supports."""
    if interval is None or not isinstance(index, pd.DatetimeIndex):
        return []
    seconds = (index.hour * 3600 + index.minute * 60 + index.second).to_numpy()
    dow = index.day_of_week.to_numpy().astype(np.int64)
    if interval >= pd.Timedelta(days=1):
        return [(dow, 1)]
    # Sub-hourly data shares hourly slots: minute-level profiles would need months to learn.
    bucket = max(interval, pd.Timedelta(hours=1))
    bucket_s = int(bucket.total_seconds())
    per_bucket = max(int(round(bucket / interval)), 1)
    day_slot = (seconds // bucket_s).astype(np.int64)
    n_day = int(np.ceil(86400 / bucket_s))
    return [(day_slot, per_bucket), (dow * n_day + day_slot, per_bucket)]


# DetectorConfig's float knobs in the order the compiled pass takes them (z_alert last: derived).
_FLOAT_PARAMS = (
    "level_window", "spread_window", "season_depth", "slot_min_history", "min_history", "warmup_points",
    "switch_ratio", "fit_clip", "scale_band", "level_band", "regime_points", "shift_points", "shift_memory",
    "raw_floor", "rel_floor", "count_floor", "count_floor_sqrt", "unit_prior", "unit_cap", "unit_max_z",
    "run_points", "run_min_z", "drop_boost", "z_half", "tail_quantile", "tail_window", "tail_prior",
    "tail_alert_weight", "episode_z", "episode_gap", "episode_growth",
)  # fmt: skip


def _tail_reference(q: float) -> float:
    """|z| exceeded with probability 1 - q by a normal variable."""
    return float(NormalDist().inv_cdf(1.0 - (1.0 - q) / 2.0))


def z_alert(cfg: DetectorConfig) -> float:
    """The z (after the tail factor) at which the level reaches DEFAULT_THRESHOLD."""
    return cfg.z_half * float(np.sqrt(DEFAULT_THRESHOLD / (1.0 - DEFAULT_THRESHOLD)))


def _score_block(x: np.ndarray, index: pd.Index, cfg: DetectorConfig) -> dict[str, np.ndarray]:
    """expected, lower, upper, score, level, dev for an (n points, m series) block, in one compiled pass."""
    n, m = x.shape
    seasons = _seasonal_slots(index, _infer_interval(index, cfg)) if cfg.seasonal else []
    slots = np.array([s for s, _ in seasons], dtype=np.int64).reshape(len(seasons), n)
    n_slots = np.array([int(s.max()) + 1 if n else 1 for s, _ in seasons], dtype=np.int64)
    per_slot = np.array([per for _, per in seasons], dtype=np.float64)
    params = np.array([float(getattr(cfg, name)) for name in _FLOAT_PARAMS] + [z_alert(cfg)])
    ref = _tail_reference(cfg.tail_quantile)
    levels = ref * np.sqrt(2.0) ** np.arange(cfg.tail_levels)
    normal_rates = np.array([2.0 * (1.0 - NormalDist().cdf(v)) for v in levels])
    out = np.empty((6, m, n))
    score_columns(np.ascontiguousarray(x.T), slots, n_slots, per_slot, params, levels, normal_rates, out)
    expected, spread, tail, score, level, dev = (part.T for part in out)
    # Band edges sit exactly where the level crosses DEFAULT_THRESHOLD (after warm-up).
    half = z_alert(cfg) * spread * tail
    return {"expected": expected, "lower": expected - half, "upper": expected + half, "score": score,
            "level": level, "dev": dev}  # fmt: skip


def _as_float(values: pd.Series | pd.DataFrame) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        return values.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def score_frame(series: pd.Series, config: DetectorConfig | None = None) -> pd.DataFrame:
    """Per point: value, expected, lower, upper, score, direction ("spike"/"drop"/"").

    `direction` is the sign of value - expected wherever the score is positive, "" where it
    is 0 (NaN value, warm-up, exactly as expected).  The band [lower, upper] is where the
    score stays below DEFAULT_THRESHOLD once warmed up; NaN until a baseline exists.
    """
    cfg = config or DetectorConfig()
    x = _as_float(series)
    out = pd.DataFrame(index=series.index)
    out["value"] = x
    if len(x) == 0:
        for col in _FRAME_COLUMNS[1:6]:
            out[col] = np.array([], dtype=float)
        out["direction"] = np.array([], dtype=object)
        return out
    parts = _score_block(x.reshape(-1, 1), series.index, cfg)
    for col in ("expected", "lower", "upper", "score", "level"):
        out[col] = parts[col][:, 0]
    dev = parts["dev"][:, 0]
    sign = np.where(dev > 0, "spike", np.where(dev < 0, "drop", ""))
    out["direction"] = np.where(parts["level"][:, 0] > 0, sign, "").astype(object)
    return out


def spike_scores(series: pd.Series, config: DetectorConfig | None = None) -> pd.Series:
    """Causal anomaly score in [0, 1] per point, aligned to `series` (NaN values score 0)."""
    return score_frame(series, config)["score"].rename(series.name)


def spike_directions(series: pd.Series, config: DetectorConfig | None = None) -> pd.Series:
    """ "spike" / "drop" / "" per point, as in `score_frame`."""
    return score_frame(series, config)["direction"].rename(series.name)


def score_many(frame: pd.DataFrame, config: DetectorConfig | None = None) -> pd.DataFrame:
    """Scores for a wide frame (one column per series, shared index) in one vectorised pass.

    Column j equals `spike_scores(frame.iloc[:, j])`.
    """
    cfg = config or DetectorConfig()
    x = _as_float(frame)
    if x.shape[0] == 0 or x.shape[1] == 0:
        return pd.DataFrame(np.zeros(x.shape), index=frame.index, columns=frame.columns)
    parts = _score_block(x, frame.index, cfg)
    return pd.DataFrame(parts["score"], index=frame.index, columns=frame.columns)


_REJOIN_GAP = DetectorConfig.episode_gap  # points below the line that do not end an episode

_INCIDENT_COLUMNS = [
    "start",
    "end",
    "points",
    "peak_at",
    "peak_score",
    "direction",
    "observed",
    "expected",
    "delta",
    "ratio",
]


def incidents(frame_or_scores: pd.DataFrame | pd.Series, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Merge consecutive points at or above `threshold` into incidents.

    Accepts a `score_frame` result (then an incident is a run of points whose level is at or above
    the threshold, split where the direction changes, kept when one of its points alerted, and its
    magnitude is reported as observed/expected sums, their delta and ratio) or a bare score Series
    (direction "" and NaN magnitudes).  Positions, not timestamps, define "consecutive".
    """
    if isinstance(frame_or_scores, pd.DataFrame):
        frame = frame_or_scores
        scores = frame["score"].to_numpy(dtype=float)
        level = frame["level"].to_numpy(dtype=float) if "level" in frame else scores
        direction = frame["direction"].to_numpy(dtype=object)
        observed = frame["value"].to_numpy(dtype=float)
        expected = frame["expected"].to_numpy(dtype=float)
    else:
        scores = level = frame_or_scores.to_numpy(dtype=float)
        direction = np.full(len(scores), "", dtype=object)
        observed = expected = np.full(len(scores), np.nan)
    rows = incident_rows(frame_or_scores.index, scores, direction, observed, expected, threshold, level)
    return pd.DataFrame(rows, columns=_INCIDENT_COLUMNS)


def incident_rows(
    index: pd.Index,
    scores: np.ndarray,
    direction: np.ndarray,
    observed: np.ndarray,
    expected: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    level: np.ndarray | None = None,
) -> list[dict[str, object]]:
    """`incidents` on plain arrays: one dict per run of points whose level is flagged (the columns of `incidents`).

    Without `level` the scores are the level.  A run counts only if one of its points alerted (score at or
    above the threshold): the alert score holds back the later points of an episode, the level does not.
    """
    level = scores if level is None else level
    flagged = np.nan_to_num(level, nan=0.0) >= threshold
    positions = np.flatnonzero(flagged)
    if positions.size == 0:
        return []
    # A run breaks where the next flagged point is not adjacent or leans the other way.
    breaks = (np.diff(positions) != 1) | (direction[positions[1:]] != direction[positions[:-1]])
    starts = positions[np.r_[True, breaks]]
    ends = positions[np.r_[breaks, True]]
    alerted = np.nan_to_num(scores, nan=0.0) >= threshold
    spans: list[list[int]] = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        if alerted[a : b + 1].any():
            spans.append([a, b])
        elif spans and a - spans[-1][1] <= _REJOIN_GAP + 1 and direction[a] == direction[spans[-1][0]]:
            spans[-1][1] = b  # a held-back stretch of the same episode after a brief dip: the incident goes on
    return [_incident(index, level, direction, observed, expected, a, b) for a, b in spans]


def _incident(
    index: pd.Index,
    scores: np.ndarray,
    direction: np.ndarray,
    observed: np.ndarray,
    expected: np.ndarray,
    a: int,
    b: int,
) -> dict[str, object]:
    peak = a + int(np.argmax(scores[a : b + 1]))
    obs = float(np.nansum(observed[a : b + 1]))
    exp = float(np.nansum(expected[a : b + 1]))
    has_mag = bool(np.isfinite(observed[a : b + 1]).any())
    return {
        "start": index[a],
        "end": index[b],
        "points": b - a + 1,
        "peak_at": index[peak],
        "peak_score": float(scores[peak]),
        "direction": direction[a],
        "observed": obs if has_mag else np.nan,
        "expected": exp if has_mag else np.nan,
        "delta": obs - exp if has_mag else np.nan,
        "ratio": obs / exp if has_mag and exp != 0 else np.nan,
    }
