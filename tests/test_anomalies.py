"""Tests for the causal spike/drop detector in analytics.anomalies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.anomalies import (
    DEFAULT_THRESHOLD,
    incidents,
    score_frame,
    score_many,
    spike_directions,
    spike_scores,
)

THR = DEFAULT_THRESHOLD


def seasonal_counts(days: int = 21, seed: int = 0, base: float = 40.0, freq: str = "1h") -> pd.Series:
    """Poisson calls with a day/night rhythm and quieter weekends."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-03-04", periods=int(days * pd.Timedelta("1D") / pd.Timedelta(freq)), freq=freq)
    hour = index.hour.to_numpy() + index.minute.to_numpy() / 60
    daily = 0.55 + 0.45 * np.sin((hour - 8) / 24 * 2 * np.pi)
    weekly = np.where(index.day_of_week.to_numpy() >= 5, 0.6, 1.0)
    per_point = pd.Timedelta(freq) / pd.Timedelta("1h")
    lam = base * per_point * daily * weekly
    return pd.Series(rng.poisson(lam).astype(float), index=index, name="calls")


def noisy_rate(n: int = 400, seed: int = 0, scale: float = 1.0) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-03-04", periods=n, freq="1h")
    values = scale * (5.0 + rng.normal(0, 0.3, n))
    return pd.Series(values, index=index, name="rate")


def busy_positions(series: pd.Series, day: int) -> np.ndarray:
    """Positions of the 14:00-16:00 busy hours on weekday `day` (0-based from the start)."""
    index = series.index
    day_start = index[0].normalize() + pd.Timedelta(days=day)
    mask = (index >= day_start + pd.Timedelta(hours=14)) & (index < day_start + pd.Timedelta(hours=17))
    return np.flatnonzero(mask)


# --- shape, range, causality -------------------------------------------------------------


def _variant(kind: str, n: int, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    if kind == "seasonal":
        s = seasonal_counts(days=max(n // 24 + 1, 2), seed=seed).iloc[:n]
    elif kind == "rate":
        s = noisy_rate(n, seed, scale=10 ** rng.uniform(-2, 6))
    elif kind == "nan":
        s = seasonal_counts(days=max(n // 24 + 1, 2), seed=seed).iloc[:n].copy()
        s.iloc[rng.choice(n, size=n // 5, replace=False)] = np.nan
    elif kind == "dupes":
        s = noisy_rate(n, seed)
        idx = s.index.to_numpy().copy()
        dup = rng.choice(np.arange(1, n), size=n // 20 + 1, replace=False)
        idx[dup] = idx[dup - 1]
        s.index = pd.DatetimeIndex(idx)
    else:  # 5-minute, no daily rhythm at this length
        s = seasonal_counts(days=2, seed=seed, freq="5min").iloc[:n]
    return s


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["seasonal", "rate", "nan", "dupes", "5min"]),
    seed=st.integers(0, 10_000),
    n=st.integers(30, 420),
    cut=st.floats(0.05, 0.95),
)
def test_appending_future_points_never_changes_earlier_scores(kind: str, seed: int, n: int, cut: float) -> None:
    full = _variant(kind, n, seed)
    k = max(int(len(full) * cut), 1)
    whole = score_frame(full)
    prefix = score_frame(full.iloc[:k])
    np.testing.assert_array_equal(prefix["score"].to_numpy(), whole["score"].to_numpy()[:k])
    np.testing.assert_array_equal(prefix["expected"].to_numpy(), whole["expected"].to_numpy()[:k])


@pytest.mark.parametrize("kind", ["seasonal", "rate", "nan", "dupes", "5min"])
def test_scores_in_unit_interval_and_aligned(kind: str) -> None:
    s = _variant(kind, 300, seed=3)
    scores = spike_scores(s)
    assert scores.index.equals(s.index)
    assert scores.name == s.name
    assert len(scores) == len(s)
    assert scores.notna().all()
    assert ((scores >= 0) & (scores <= 1)).all()
    frame = score_frame(s)
    assert list(frame.columns) == ["value", "expected", "lower", "upper", "score", "level", "direction"]
    pd.testing.assert_series_equal(frame["score"].rename(s.name), scores)
    assert set(spike_directions(s)) <= {"spike", "drop", ""}


def test_score_many_matches_single_series() -> None:
    cols = {f"k{i}": seasonal_counts(days=10, seed=i, base=5.0 + 30 * i) for i in range(4)}
    wide = pd.DataFrame(cols)
    wide.iloc[50:70, 1] = np.nan
    many = score_many(wide)
    assert many.shape == wide.shape
    for col in wide:
        np.testing.assert_allclose(many[col].to_numpy(), spike_scores(wide[col]).to_numpy(), rtol=0, atol=1e-12)


def test_empty_and_non_datetime_index() -> None:
    assert len(spike_scores(pd.Series([], dtype=float))) == 0
    s = pd.Series(np.r_[np.full(60, 10.0) + np.tile([0.1, -0.1], 30), 100.0])
    scores = spike_scores(s)
    assert scores.iloc[-1] > THR
    assert scores.iloc[:-1].max() < THR


def test_scale_invariant_for_rates() -> None:
    s = noisy_rate(300, seed=5)
    s.iloc[200] *= 3
    small = spike_scores(s * 1e-2).to_numpy()
    big = spike_scores(s * 1e5).to_numpy()
    np.testing.assert_allclose(small, big, rtol=0, atol=1e-9)
    assert small[200] > THR


# --- warm-up, gaps, degenerate series -------------------------------------------------------


def test_warm_up_does_not_storm() -> None:
    for seed in range(5):
        s = seasonal_counts(days=3, seed=seed)
        assert spike_scores(s).iloc[:48].max() < THR
        assert spike_scores(noisy_rate(48, seed)).max() < THR
    assert spike_scores(seasonal_counts(days=1)).iloc[0] == 0.0


def test_nan_run_scores_zero_and_no_alarm_on_resume() -> None:
    s = seasonal_counts(days=21, seed=11)
    s.iloc[300:340] = np.nan
    scores = spike_scores(s)
    assert (scores.iloc[300:340] == 0.0).all()
    assert scores.iloc[340:400].max() < THR


def test_missing_timestamps_no_alarm_on_resume() -> None:
    s = seasonal_counts(days=21, seed=12)
    gappy = pd.concat([s.iloc[:300], s.iloc[345:]])
    scores = spike_scores(gappy)
    assert scores.iloc[300:360].max() < THR


def test_repeated_timestamps_are_kept_in_order() -> None:
    s = seasonal_counts(days=14, seed=13)
    idx = s.index.to_numpy().copy()
    idx[[100, 101, 200]] = idx[[99, 100, 199]]
    dup = pd.Series(s.to_numpy(), index=pd.DatetimeIndex(idx), name="calls")
    scores = spike_scores(dup)
    assert scores.index.equals(dup.index)
    assert scores.max() < THR
    dup.iloc[250] = dup.iloc[226:250].max() * 5 + 50
    assert spike_scores(dup).iloc[250] > THR


def test_all_zero_series_has_no_alarm() -> None:
    index = pd.date_range("2024-01-01", periods=500, freq="1h")
    assert (spike_scores(pd.Series(0.0, index=index)) == 0.0).all()


@pytest.mark.parametrize("level", [5.0, 100.0, 0.37])
def test_constant_series_quiet_then_jump_scores_high(level: float) -> None:
    index = pd.date_range("2024-01-01", periods=300, freq="1h")
    s = pd.Series(level, index=index)
    assert (spike_scores(s) == 0.0).all()
    # 5 -> 20: counts are judged against counting noise (sd ~ sqrt(5)), so 5 -> 15 is 4.5 sd, not an alarm
    s.iloc[250] = level * 4
    scores = spike_scores(s)
    assert scores.iloc[250] > THR
    assert scores.iloc[:250].max() == 0.0


def test_count_noise_zero_to_three_calls_is_not_an_alarm() -> None:
    index = pd.date_range("2024-01-01", periods=400, freq="1h")
    s = pd.Series(0.0, index=index)
    s.iloc[380] = 3.0
    assert spike_scores(s).iloc[380] < THR
    low = pd.Series(np.random.default_rng(1).poisson(0.3, 400).astype(float), index=index)
    assert spike_scores(low).max() < THR


def _quiet_key_with_clumps(seed: int, hours: int = 1200) -> pd.Series:
    """A quiet key: a job now and then arrives as a clump of 4-8 calls (submit plus polls)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=hours, freq="1h")
    values = np.where(rng.random(hours) < 0.05, rng.integers(4, 9, hours), rng.poisson(0.1, hours))
    return pd.Series(values.astype(float), index=index)


def test_clumps_on_a_quiet_key_are_learned_as_noise() -> None:
    s = _quiet_key_with_clumps(seed=5)
    scores = spike_scores(s)
    # after a week of seeing jobs arrive as clumps, a clump is not an alarm
    assert scores.iloc[168:].max() < THR


def test_an_incident_on_a_quiet_key_does_not_teach_it_that_bursts_are_normal() -> None:
    s = _quiet_key_with_clumps(seed=6)
    s.iloc[600] = 60.0
    s.iloc[601] = 55.0
    s.iloc[1000] = 60.0
    scores = spike_scores(s)
    assert scores.iloc[600] > THR and scores.iloc[1000] > THR


def test_a_run_of_small_counts_where_none_are_expected_is_an_incident() -> None:
    index = pd.date_range("2024-01-01", periods=600, freq="1h")
    rng = np.random.default_rng(8)
    failed = pd.Series((rng.random(600) < 0.01).astype(float), index=index)
    alone = failed.copy()
    alone.iloc[500] = 4.0
    failed.iloc[500:504] = 4.0  # a failure storm on a small key
    frame = score_frame(failed)
    one_hour = score_frame(alone)["level"].iloc[500]
    # the hours that follow the first add their evidence: each is clearly further out than one hour alone
    assert frame["level"].iloc[501:503].min() > max(THR, one_hour + 0.1)
    assert frame["score"].iloc[500:504].max() >= THR
    assert frame["score"].iloc[:500].max() < THR


def test_a_sustained_incident_on_a_quiet_key_does_not_widen_its_own_band() -> None:
    # 3, 2, 2, 3 failures an hour where almost none are expected: no hour alone is an incident, and the
    # first hours must not teach the burst size that then measures the later ones (seed 5 of the stand-in).
    index = pd.date_range("2024-01-01", periods=900, freq="1h")
    failed = pd.Series((np.random.default_rng(3).random(900) < 0.02).astype(float), index=index)
    failed.iloc[700:706] = [3.0, 2.0, 2.0, 3.0, 1.0, 2.0]
    scores = spike_scores(failed)
    assert scores.iloc[700:706].max() >= THR
    assert scores.iloc[:700].max() < THR


def test_hours_of_silence_add_up_to_an_outage() -> None:
    # ~20 calls an hour in clumps of 5: one silent hour is noise, eight in a row (160 calls due) an outage.
    rng = np.random.default_rng(12)
    index = pd.date_range("2024-03-04", periods=24 * 21, freq="1h")
    s = pd.Series(rng.poisson(4.0, len(index)) * 5.0, index=index)
    start = 24 * 18 + 10
    one = s.copy()
    one.iloc[start] = 0.0
    assert spike_scores(one).iloc[start] < THR
    s.iloc[start : start + 8] = 0.0
    frame = score_frame(s).iloc[start : start + 8]
    assert frame["score"].max() >= THR
    assert (frame["direction"][frame["score"] >= THR] == "drop").all()
    # and the evidence is causal: it grows with the run, it does not reach back to its first hour
    assert frame["score"].iloc[0] < THR


def test_run_evidence_does_not_add_up_a_seasonal_models_small_misses() -> None:
    s = seasonal_counts(days=21, seed=23)
    pos = busy_positions(s, day=16)
    s.iloc[pos] = (s.iloc[pos] * 1.3).round()  # a mild, sustained rise (still counts): each hour a few sigma out
    assert spike_scores(s).iloc[pos].max() < THR


# --- detection ----------------------------------------------------------------------------


def test_spike_in_busy_hours_is_flagged_as_spike() -> None:
    s = seasonal_counts(days=21, seed=21)
    pos = busy_positions(s, day=16)
    s.iloc[pos] = s.iloc[pos] * 4
    frame = score_frame(s)
    # the incident alerts once, when it starts, and every hour of it is out of the band
    assert frame["score"].iloc[pos[0]] > THR
    assert (frame["level"].iloc[pos] > THR).all()
    assert (frame["direction"].iloc[pos] == "spike").all()
    assert frame["score"].iloc[pos[0] - 48 : pos[0]].max() < THR
    found = incidents(frame)
    assert (found["start"].iloc[0], found["end"].iloc[0]) == (s.index[pos[0]], s.index[pos[-1]])


def test_drop_to_zero_in_busy_hours_is_flagged_as_drop() -> None:
    s = seasonal_counts(days=21, seed=22)
    pos = busy_positions(s, day=16)
    s.iloc[pos] = 0.0
    frame = score_frame(s)
    assert frame["score"].iloc[pos[0]] > THR
    assert (frame["level"].iloc[pos] > THR).all()
    assert (frame["direction"].iloc[pos] == "drop").all()
    assert frame["expected"].iloc[pos].min() > 20


def test_quiet_hours_zero_is_not_a_drop() -> None:
    s = seasonal_counts(days=21, seed=23, base=6.0)
    night = np.flatnonzero((s.index.hour >= 2) & (s.index.hour < 4) & (s.index.day == 21))
    s.iloc[night] = 0.0
    assert spike_scores(s).iloc[night].max() < THR


def test_first_incident_does_not_mask_an_identical_second() -> None:
    s = seasonal_counts(days=21, seed=31)
    first, second = busy_positions(s, day=14), busy_positions(s, day=16)
    baseline = s.copy()
    for pos in (first, second):
        s.iloc[pos] = s.iloc[pos] * 5
    frame = score_frame(s)
    only_second = baseline.copy()
    only_second.iloc[second] = only_second.iloc[second] * 5
    clean = score_frame(only_second)
    assert frame["score"].iloc[first[0]] > THR and frame["level"].iloc[first].min() > THR
    assert frame["score"].iloc[second[0]] > THR and frame["level"].iloc[second].min() > THR
    # The earlier incident may widen the band a little, not hide the second one.
    assert frame["level"].iloc[second].max() >= 0.9 * clean["level"].iloc[second].max()


def test_five_minute_series_with_daily_rhythm() -> None:
    s = seasonal_counts(days=6, seed=41, base=60.0, freq="5min")
    spike_at = len(s) - 100
    s.iloc[spike_at : spike_at + 3] = s.iloc[spike_at - 12 : spike_at].mean() * 4 + 30
    frame = score_frame(s)
    assert frame["score"].iloc[spike_at] > THR
    assert (frame["level"].iloc[spike_at : spike_at + 3] > THR).all()
    scores = frame["score"]
    normal = scores.drop(scores.index[spike_at : spike_at + 6])
    assert (normal > THR).mean() < 0.005


# --- incidents ----------------------------------------------------------------------------


def test_incidents_merge_consecutive_points_and_report_direction() -> None:
    s = seasonal_counts(days=21, seed=51)
    up, down = busy_positions(s, day=15), busy_positions(s, day=17)
    s.iloc[up] = s.iloc[up] * 4
    s.iloc[down] = 0.0
    frame = score_frame(s)
    inc = incidents(frame)
    assert len(inc) == 2
    first, second = inc.iloc[0], inc.iloc[1]
    assert (first["start"], first["end"], first["points"]) == (s.index[up[0]], s.index[up[-1]], 3)
    assert first["direction"] == "spike" and second["direction"] == "drop"
    assert first["ratio"] > 2.5 and first["delta"] > 0
    assert second["observed"] == 0.0 and second["delta"] < 0
    assert first["peak_score"] == frame["level"].iloc[up].max()


def test_incidents_from_bare_scores() -> None:
    index = pd.date_range("2024-01-01", periods=7, freq="1h")
    scores = pd.Series([0.1, 0.6, 0.7, 0.2, 0.9, 0.95, 0.99], index=index)
    inc = incidents(scores, threshold=0.5)
    assert list(inc["points"]) == [2, 3]
    assert list(inc["start"]) == [index[1], index[4]]
    assert list(inc["end"]) == [index[2], index[6]]
    assert list(inc["peak_score"]) == [0.7, 0.99]
    assert incidents(scores, threshold=0.999).empty


# --- onsets, new normals, recovery, heavy tails -------------------------------------------


def test_a_level_shift_alerts_at_its_onset_and_becomes_normal_within_a_bounded_time() -> None:
    rng = np.random.default_rng(61)
    index = pd.date_range("2024-03-04", periods=600, freq="5min")
    values = 50.0 + rng.normal(0, 1.0, 600)
    values[400:] += 20.0  # the service moved to a new, higher level and stays there
    frame = score_frame(pd.Series(values, index=index))
    assert frame["score"].iloc[400] >= THR
    # one alert for the shift, not one per point while the band catches up
    assert (frame["score"].iloc[401:] >= THR).sum() == 0
    # the new level is normal once it has held for `shift_points` points
    assert frame["level"].iloc[400 + 30 :].max() < THR
    assert frame["expected"].iloc[-1] == pytest.approx(70.0, abs=2.0)


def test_recovery_from_a_long_outage_is_not_a_second_incident() -> None:
    s = seasonal_counts(days=21, seed=62, base=40.0)
    start = 24 * 16 + 9
    s.iloc[start : start + 30] = 0.0  # 30 silent hours, longer than a shift takes to become normal
    frame = score_frame(s)
    found = incidents(frame)
    assert len(found) == 1 and found["direction"].iloc[0] == "drop"
    assert found["start"].iloc[0] == s.index[start]
    assert frame["score"].iloc[start + 30 : start + 60].max() < THR


def test_a_deepening_drop_alerts_once_it_doubles_not_at_every_point() -> None:
    rng = np.random.default_rng(63)
    index = pd.date_range("2024-03-04", periods=700, freq="1min")
    values = 1000.0 + rng.normal(0, 10.0, 700)
    values[600:612] = np.linspace(900, 40, 12)  # the traffic drains away over twelve minutes
    scores = spike_scores(pd.Series(values, index=index))
    alerts = np.flatnonzero(scores.iloc[600:612].to_numpy() >= THR)
    assert 1 <= len(alerts) <= 3  # its start, and again as it grows: not twelve alerts


def test_recurring_spikes_of_a_heavy_tailed_series_become_normal_a_bigger_one_does_not() -> None:
    rng = np.random.default_rng(64)
    index = pd.date_range("2024-03-04", periods=3000, freq="5min")
    values = rng.normal(1.0, 0.05, 3000)
    spikes = rng.choice(np.arange(3000), size=90, replace=False)
    values[spikes] += rng.uniform(2.0, 3.0, 90)  # a load balancer's routine bursts, 3 % of points
    values[2900] = 30.0
    scores = spike_scores(pd.Series(values, index=index))
    late = scores.iloc[1500:2900]
    assert (late >= THR).mean() < 0.002  # the routine bursts no longer alert once learned
    assert scores.iloc[2900] >= THR
