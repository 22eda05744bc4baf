"""Unit tests for analytics.detection.detect, and the anomalies CLI on the collected stand-in world."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from analytics.detection import CLI_COLUMNS, INCIDENT_COLUMNS, detect, wide_frame
from tests.conftest import ROOT, SIM_NOW

NOW = datetime(2026, 3, 1, 0, 0)


def _long(key: str, metric: str, values: np.ndarray, drop_zeros: bool = False) -> pd.DataFrame:
    hours = pd.date_range(end=pd.Timestamp(NOW) - pd.Timedelta(hours=1), periods=len(values), freq="h")
    frame = pd.DataFrame({"key_name": key, "hour": hours, "metric": metric, "value": values.astype(float)})
    return frame[frame["value"] != 0] if drop_zeros else frame


def _daily_shape(n: int, rng: np.random.Generator, level: float = 40.0) -> np.ndarray:
    hour = np.arange(n) % 24
    return rng.poisson(level * (1.0 + 0.6 * np.sin(2 * np.pi * hour / 24))).astype(float)


def test_spike_and_drop_are_found_with_direction_and_hours():
    rng = np.random.default_rng(1)
    calls = _daily_shape(24 * 21, rng)
    calls[-30:-27] *= 8  # spike 3 hours
    calls[-10:-6] = 0  # silence 4 hours
    found = detect(_long("a", "calls", calls), NOW)
    assert list(found.columns) == INCIDENT_COLUMNS
    spikes = found[found["direction"] == "spike"]
    drops = found[found["direction"] == "drop"]
    hours = pd.date_range(end=pd.Timestamp(NOW) - pd.Timedelta(hours=1), periods=len(calls), freq="h")
    assert ((spikes["start"] <= hours[-28]) & (spikes["end"] >= hours[-28])).any()
    assert ((drops["start"] <= hours[-7]) & (drops["end"] >= hours[-10])).any()
    assert len(found) <= 3
    assert (found["grain"] == "hour").all()


def test_missing_hours_are_zero_from_first_hour_and_nan_stays_unknown():
    values = np.array([1.0, 0.0, 0.0, 2.0, np.nan, 3.0])
    long = _long("k", "failed_jobs", values, drop_zeros=True)
    wide = wide_frame(long, "failed_jobs", NOW)
    assert wide["k"].tolist()[:4] == [1.0, 0.0, 0.0, 2.0]
    assert np.isnan(wide["k"].iloc[4]) and wide["k"].iloc[5] == 3.0
    assert wide.index[-1] == pd.Timestamp(NOW) - pd.Timedelta(hours=1)


def test_series_is_extended_to_now_so_silence_at_the_end_counts():
    rng = np.random.default_rng(2)
    calls = _daily_shape(24 * 21, rng, level=60)
    long = _long("a", "calls", calls)
    later = NOW + pd.Timedelta(hours=6)
    # No rows at all for the last 6 hours: with the series ending at `now`, that is a drop.
    found = detect(long[long["value"] > 0], later)
    assert (found["direction"] == "drop").any()


def test_quiet_and_constant_series_have_no_incidents():
    rng = np.random.default_rng(3)
    frames = [
        _long("zero", "failed_jobs", np.zeros(24 * 14)),
        _long("const", "calls", np.full(24 * 14, 7.0)),
        _long("sparse", "failed_jobs", (rng.random(24 * 14) < 0.05).astype(float)),
    ]
    assert detect(pd.concat(frames), NOW).empty


def test_since_filters_and_now_pins_the_end():
    rng = np.random.default_rng(4)
    calls = _daily_shape(24 * 21, rng)
    calls[24 * 10 : 24 * 10 + 3] *= 8
    long = _long("a", "calls", calls)
    assert not detect(long, NOW).empty
    assert detect(long, NOW, since=NOW - pd.Timedelta(days=3)).empty
    # Pinned earlier `now`: the hours after it are ignored entirely.
    assert detect(long, NOW - pd.Timedelta(days=15)).empty


def test_credits_one_long_video_is_not_an_incident_but_a_burst_is():
    rng = np.random.default_rng(5)
    jobs = rng.poisson(2.0, 24 * 21).astype(float)
    per_job = rng.lognormal(3.5, 1.0, len(jobs))
    credits = jobs * per_job
    credits[24 * 15] = 40 * 60.0  # one 40-minute video
    jobs_b = jobs.copy()
    credits[-20:-17] += 60 * 30.0 * 5  # a burst of many jobs
    jobs_b[-20:-17] += 30
    long = pd.concat([_long("c", "credits", credits), _long("c", "jobs", jobs_b)])
    found = detect(long, NOW)
    hours = pd.date_range(end=pd.Timestamp(NOW) - pd.Timedelta(hours=1), periods=len(jobs), freq="h")
    assert ((found["start"] <= hours[-19]) & (found["end"] >= hours[-19])).any()


def _daily(key: str, values: np.ndarray, hourly_from: pd.Timestamp | None) -> pd.DataFrame:
    days = pd.date_range(end=pd.Timestamp(NOW).floor("D") - pd.Timedelta(days=1), periods=len(values), freq="D")
    return pd.DataFrame({"key_name": key, "day": days, "value": values.astype(float), "hourly_from": hourly_from})


def test_calls_before_hourly_coverage_are_judged_per_day_and_after_it_per_hour():
    rng = np.random.default_rng(6)
    dates = pd.date_range(end=pd.Timestamp(NOW).floor("D") - pd.Timedelta(days=1), periods=60, freq="D")
    weekday = dates.day_of_week < 5
    days = rng.poisson(np.where(weekday, 1000.0, 320.0)).astype(float)
    spike, outage = (int(np.flatnonzero(weekday[:-n])[-1]) for n in (24, 11))  # weekdays 24 and 11 days back
    days[spike] = np.median(days[spike - 7 : spike][weekday[spike - 7 : spike]]) * 2.3  # before event polling began
    days[outage] *= 0.56  # a six-hour outage cut this one by 44 %
    days[-3] *= 2.5  # after polling began: that is the hourly detector's to judge
    hourly_from = pd.Timestamp(NOW).floor("D") - pd.Timedelta(days=7)
    hours = _daily_shape(24 * 7, rng, level=40)
    found = detect(_long("a", "calls", hours), NOW, daily=_daily("a", days, hourly_from))
    by_day = found[found["grain"] == "day"].set_index("start")
    assert by_day.loc[dates[spike], "direction"] == "spike"
    assert by_day.loc[dates[outage], "direction"] == "drop"
    assert not (by_day.index >= hourly_from.floor("D")).any()
    assert by_day.loc[[dates[spike], dates[outage]], "alert_worthy"].all()


def test_one_ordinary_job_on_a_quiet_key_is_no_alert_but_a_failure_storm_is():
    rng = np.random.default_rng(7)
    n = 24 * 28
    jobs = (rng.random(n) < 0.08).astype(float)
    credits = jobs * rng.lognormal(4.5, 0.6, n)
    credits[-30] += 900.0  # one long video where a job now and then is normal
    jobs[-30] += 1.0
    failed = (rng.random(n) < 0.004).astype(float)
    failed[-10:-7] = [4.0, 5.0, 3.0]
    long = pd.concat([_long("q", "credits", credits), _long("q", "jobs", jobs), _long("q", "failed_jobs", failed)])
    found = detect(long, NOW)
    video = found[(found["metric"] == "credits") & (found["start"] == pd.Timestamp(NOW) - pd.Timedelta(hours=30))]
    assert not video["alert_worthy"].any()
    storm = found[found["metric"] == "failed_jobs"]
    assert len(storm) == 1 and storm["alert_worthy"].iloc[0] and storm["severity"].iloc[0] == "high"
    assert 7.0 <= storm["impact"].iloc[0] <= 12.0  # extra failed jobs, in the metric's own units


def test_an_outage_of_calls_and_credits_together_is_one_event():
    rng = np.random.default_rng(8)
    calls = _daily_shape(24 * 21, rng, level=60)
    jobs = rng.binomial(calls.astype(int), 0.1).astype(float)
    credits = jobs * 90.0
    for series in (calls, jobs, credits):
        series[-30:-24] = 0.0  # six hours of nothing at all
    calls[-80:-78] *= 6  # and, days apart, a spike of calls alone
    long = pd.concat([_long("k", "calls", calls), _long("k", "jobs", jobs), _long("k", "credits", credits)])
    found = detect(long, NOW)
    outage = found[(found["direction"] == "drop") & (found["end"] >= pd.Timestamp(NOW) - pd.Timedelta(hours=30))]
    assert set(outage["metric"]) == {"calls", "credits"}
    assert outage["event"].nunique() == 1
    spike = found[found["direction"] == "spike"]
    assert not spike.empty and not set(spike["event"]) & set(outage["event"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analytics", "anomalies", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    for args in (["--db", str(tmp_path / "none.duckdb")], ["--db", str(tmp_path), "--now", "garbage"]):
        done = _cli(*args)
        assert done.returncode == 2
        assert len(done.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def cli_rows(collected):
    done = _cli("--db", str(collected.db_path), "--now", SIM_NOW.isoformat(), "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _overlaps(row: dict, truth: dict) -> bool:
    start, end = pd.Timestamp(truth["start"]).tz_localize(None), pd.Timestamp(truth["end"]).tz_localize(None)
    return (
        row["key_name"] == truth["key_name"]
        and row["metric"] == truth["metric"]
        and row["direction"] == truth["direction"]
        and pd.Timestamp(row["start"]) <= end
        and pd.Timestamp(row["end"]) >= start
    )


def test_cli_finds_calls_incidents_from_before_event_polling_at_daily_grain(collected, cli_rows):
    # Collected once at SIM_NOW: events cover only the last moments, so every labelled calls incident
    # lies before hourly coverage and can only be found in the usage summary, day by day.
    labelled = [t for t in collected.world.incidents() if t["metric"] == "calls"]
    assert labelled
    for truth in labelled:
        day = pd.Timestamp(truth["start"]).tz_localize(None).floor("D")
        rows = [r for r in cli_rows if r["key_name"] == truth["key_name"] and r["metric"] == "calls"]
        assert any(
            r["grain"] == "day" and r["direction"] == truth["direction"] and pd.Timestamp(r["start"]) == day
            for r in rows
        ), truth
    every = json.loads(_cli("--db", str(collected.db_path), "--now", SIM_NOW.isoformat(), "--all").stdout)
    assert len(every) > len(cli_rows) and all(r["alert_worthy"] for r in cli_rows)
    assert {(r["key_name"], r["metric"], r["start"]) for r in cli_rows} <= {
        (r["key_name"], r["metric"], r["start"]) for r in every
    }


def test_cli_finds_labelled_failed_jobs_incidents_and_reports_recall(collected, cli_rows):
    assert cli_rows and set(cli_rows[0]) == set(CLI_COLUMNS)
    assert {r["metric"] for r in cli_rows} <= {"calls", "failed_jobs", "credits"}
    assert {r["direction"] for r in cli_rows} <= {"spike", "drop"}
    truth = collected.world.incidents()
    report = {}
    for metric in ("calls", "failed_jobs", "credits"):
        if metric == "calls":
            continue  # judged per day above
        labelled = [t for t in truth if t["metric"] == metric]
        found = [t for t in labelled if any(_overlaps(r, t) for r in cli_rows)]
        rows = [r for r in cli_rows if r["metric"] == metric]
        false = [r for r in rows if not any(_overlaps(r, t) for t in labelled)]
        report[metric] = (len(found), len(labelled), len(false))
    print("recall/false per metric (found, labelled, false incidents):", report)
    found, labelled, false = report["failed_jobs"]
    assert found == labelled
    assert false <= 2
    # credits miss checkout-prod (its key is disabled upstream, so its jobs are never collected);
    # heavy-tailed per-job charges are scored in compound-count units, which keeps false
    # incidents rare (about 125 before that, 16 with it on this world).
    found, labelled, false = report["credits"]
    assert found >= labelled - 1
    assert false <= 30
