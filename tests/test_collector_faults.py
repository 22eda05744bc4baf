"""The collector against a faulty stand-in: repeated runs converge to exactly the truth, never duplicate."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from collectors.contract import parse_timestamp
from config import Config, load_config
from simulator.clock import to_ms
from simulator.faults import FaultSpec
from simulator.server import start_server
from simulator.world import DAY_MS, SETTLE_MARGIN_MS, World
from store import reads
from tests.conftest import ADMIN_TOKEN, collect_once, make_world, write_sim_config

# 20% of API requests fault: 429 (Retry-After 1 s), 5xx, truncated JSON, dropped connections and
# stalls longer than the collector's read timeout (1.0 s: long enough that a loaded CI machine answering slowly
# is not mistaken for a stall).
FAULTS = FaultSpec(rate429=0.06, rate5xx=0.05, malformed=0.03, drop=0.03, timeout=0.03, retry_after=1, timeout_s=1.5)
FAULT_CODES = {"rate_limited", "internal_error", "malformed", "transport"}
# Small enough for seconds per run, large enough for multi-page job histories (up to ~19 pages).
WORLD = {"n_keys": 12, "days": 20}
COLLECTOR = """
[collector]
backoff_scale = 0.01
read_timeout_s = 1.0
connect_timeout_s = 2
concurrency = 8
"""


def rows(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def served_keys(world: World) -> list[str]:
    return [k.name for k in world.keys() if k.managed and k.enabled]


def assert_matches_truth(world: World, db: Path) -> None:
    """Every daily total, every job (all fields) and every event in the 100-event window, exactly once."""
    now = world.now()
    names = served_keys(world)
    daily = {(k, d): v for k, d, *v in rows(db, "SELECT key_name, day, calls, jobs, failed, credits FROM usage_daily")}
    expected = {
        (name, date.fromisoformat(r["date"])): [r["calls"], r["jobs"], r["failed"], r["credits"]]
        for name in names
        for r in world.daily_usage(name, now)
    }
    assert daily == expected

    held_jobs = {
        r[0]: r[1:]
        for r in rows(
            db,
            "SELECT job_id, key_name, created_at, status, progress, model, output_format, duration_seconds, "
            "credits_charged, billing_status, output_url, error FROM jobs",
        )
    }
    truth_jobs = {
        j["id"]: (
            name, parse_timestamp(j["created_at"]), j["status"], float(j["progress"]), j["model"],
            j["output_format"], j["duration_seconds"], j["credits"], j["billing_status"], j["output_url"], j["error"],
        )
        for name in names
        for j in world.jobs(name, now)
    }  # fmt: skip
    assert held_jobs.keys() == truth_jobs.keys()
    assert held_jobs == truth_jobs
    # every job's current status is in its history, once
    assert rows(db, "SELECT count(*) FROM jobs j LEFT JOIN job_status_history h USING (job_id, status) "
                    "WHERE h.job_id IS NULL") == [(0,)]  # fmt: skip

    held_events = {
        r[0]: r[1:]
        for r in rows(
            db,
            "SELECT event_id, key_name, occurred_at, endpoint, method, status_code, request_id, job_id, model, "
            "credits FROM usage_events",
        )
    }
    window = {
        e["id"]: (
            name, parse_timestamp(e["created_at"]), e["endpoint"], e["method"], e["status_code"], e["request_id"],
            e["job_id"], e["model"], e["credits"],
        )
        for name in names
        for e in world.recent_events(name, 100, now)
    }  # fmt: skip
    assert held_events == window
    assert_no_duplicates(db)


def assert_no_duplicates(db: Path) -> None:
    for table, key in (
        ("usage_daily", "key_name, day"),
        ("usage_event_log", "event_id"),
        ("job_state", "job_id"),
        ("job_status_log", "job_id, status"),
        ("sync_state", "key_name, endpoint"),
        ("raw_landing", "endpoint, key_name, body_sha256"),
    ):
        assert rows(db, f"SELECT count(*) FROM (SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1)") == [
            (0,)
        ], table


def with_attempts(config: Config, attempts: int) -> Config:
    return dataclasses.replace(config, collector=dataclasses.replace(config.collector, max_attempts=attempts))


def failed_items(db: Path, run_id: int) -> list[tuple]:
    return rows(db, "SELECT key_name, endpoint, error_code FROM collector_run_items WHERE run_id = ? "
                    "AND status <> 'ok'", [run_id])  # fmt: skip


def test_faulty_api_converges_to_the_truth_with_no_duplicates(tmp_path, admin_token_env):
    world = make_world(**WORLD)
    disabled = {k.name for k in world.keys() if k.managed and not k.enabled}
    with start_server(world, faults=FAULTS, admin_token=ADMIN_TOKEN) as server:
        config = load_config(write_sim_config(server, tmp_path / "keys.toml", COLLECTOR))
        db = tmp_path / "faulty.duckdb"
        # One attempt per request first: faults surface as recorded failures, and the run goes on.
        first = collect_once(with_attempts(config, 1), db)
        failed = failed_items(db, first.run_id)
        faulted = [(k, e, code) for k, e, code in failed if k not in disabled]
        assert faulted, "20% faults with no retries must fail some key/endpoint"
        assert {code for _, _, code in faulted} <= FAULT_CODES
        assert first.status == "partial" and first.keys_ok > 0
        assert rows(db, "SELECT count(*) FROM collector_run_items WHERE run_id = ? AND status = 'ok'",
                    [first.run_id])[0][0] > 0  # fmt: skip

        retrying = with_attempts(config, 3)
        for _ in range(12):
            run = collect_once(retrying, db)
            if {k for k, _, _ in failed_items(db, run.run_id)} <= disabled:
                break
        else:
            pytest.fail("12 runs against a 20%-faulty API did not converge")
        assert run.retries > 0  # the faults were there all along
        assert_matches_truth(world, db)
        # and one more clean pass changes nothing
        server.faults.set(FaultSpec())
        assert collect_once(config, db).rows_written == 0
        assert_matches_truth(world, db)


def test_duplicated_events_are_stored_once_and_open_no_gap(tmp_path, admin_token_env):
    world = make_world(**WORLD)
    with start_server(world, faults=FaultSpec(duplicated=1.0), admin_token=ADMIN_TOKEN) as server:
        config = load_config(write_sim_config(server, tmp_path / "keys.toml", COLLECTOR))
        db = tmp_path / "dup.duckdb"
        collect_once(config, db, endpoints=["summary", "events", "jobs"])
        collect_once(config, db, endpoints=["events"])
        assert_matches_truth(world, db)
        assert reads.coverage_gaps(db).empty


def test_500_calls_between_two_polls_record_a_coverage_gap(tmp_path, admin_token_env):
    world = make_world(**WORLD)
    name = served_keys(world)[0]
    with start_server(world, admin_token=ADMIN_TOKEN) as server:
        config = load_config(write_sim_config(server, tmp_path / "keys.toml", COLLECTOR))
        db = tmp_path / "gap.duckdb"
        collect_once(config, db, endpoints=["events"])
        assert reads.coverage_gaps(db).empty
        newest_held = rows(db, "SELECT max(occurred_at) FROM usage_events WHERE key_name = ?", [name])[0][0]
        world.burst(name, 500)
        collect_once(config, db, endpoints=["events"])
        gaps = reads.coverage_gaps(db)
        assert gaps["key_name"].tolist() == [name]
        gap = gaps.iloc[0]
        assert gap["endpoint"] == "events"
        oldest_in_window = parse_timestamp(world.recent_events(name, 100)[-1]["created_at"])
        assert gap["gap_start"] == newest_held and gap["gap_end"] == oldest_in_window
        # the same window polled again is not a new gap
        collect_once(config, db, endpoints=["events"])
        assert len(reads.coverage_gaps(db)) == 1


def test_fast_daily_aggregates_equal_the_generated_days():
    """The stand-in's summary path skips generating events; its numbers must not change."""
    world = World(seed=11, n_keys=40, days=90, now=datetime(2026, 11, 20, 12, tzinfo=UTC))
    now_ms = to_ms(world.now())
    rng = np.random.default_rng(3)
    checked = 0
    for spec in world.keys():
        days = [d for d in world._days_with_traffic(spec, now_ms) if (d + 1) * DAY_MS + SETTLE_MARGIN_MS <= now_ms]
        for day in rng.permutation(days)[:12] if days else []:
            fast = world._final_agg(spec, int(day))
            world.day_data(spec, int(day))  # generated: _day_agg now takes the full path
            world._agg.pop((spec.uid, int(day)), None)
            assert world._day_agg(spec, int(day), now_ms) == fast, (spec.name, int(day))
            checked += 1
    assert checked > 300
