"""Sharded collection over loopback: three `collectors once --shard I/3` runs hold, together, exactly what one
unsharded run holds (row for row), no key in two shard files; a file refuses a collector of another shard.

Two collections each: the second after the stand-in's clock moved on two days (a busy key's new events
overflow the events window: coverage gaps) with its daily summaries unreadable (quarantined records), so every
view compared holds rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from config import load_config
from domain import shard_of
from simulator.server import start_server
from tests.conftest import ADMIN_TOKEN, ROOT, make_world, write_sim_config

SHARDS = 3
# Per-key public views and the columns compared: every column but the instants of collection (when a row was
# written or a poll ran, which differ between any two runs) and the upstream's per-request ids.
PER_KEY = {
    "keys": "key_name, environment, owner, owner_status, fingerprint, masked_key, created_at, rotated_at",
    "key_daily_usage": "key_name, day, calls, jobs, credits, failed",
    "key_last_used": "key_name, last_used_at",
    "usage_events": "event_id, key_name, occurred_at, endpoint, method, status_code, request_id, job_id, model, "
    "credits",
    "jobs": "job_id, key_name, created_at, status, model, output_format, duration_seconds, credits_charged, "
    "billing_status, output_url, error, progress",
    "job_status_history": "job_id, status",
    "coverage_gaps": "key_name, endpoint, gap_start, gap_end",
    "collection_cursors": "key_name, endpoint, json_extract(cursor, '$.complete'), json_extract(cursor, '$.total'), "
    "json_extract(cursor, '$.newest_at')",
    "collector_run_items": "key_name, endpoint, status, attempts, error_code FROM collector_run_items "
    "WHERE key_name <> '*'",
    "quarantine": "endpoint, key_name, reason, record",
}
# Account-wide answers every shard reads for itself (its own reconciliation needs the rates).
GLOBAL = {
    "collector_run_items": "run_id, endpoint, status FROM collector_run_items WHERE key_name = '*'",
    "pricing": "model, credits_per_minute",
    "admin_keys": "key_fingerprint, client_id, name, note, enabled, created_at, last_used_at",
}


def _select(columns: str, view: str) -> str:
    return f"SELECT {columns}" if " FROM " in columns else f"SELECT {columns} FROM {view}"


def _rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def _collect(config: Path, db: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, RBV_ADMIN_TOKEN=ADMIN_TOKEN)
    return subprocess.run(
        [sys.executable, "-m", "collectors", "once", "--config", str(config), "--db", str(db), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    server = start_server(make_world(n_keys=45), admin_token=ADMIN_TOKEN)
    config = write_sim_config(server, folder / "keys.toml")
    whole = folder / "whole.duckdb"
    parts = [folder / f"shard-{i}.duckdb" for i in range(SHARDS)]

    def collect_all(exit_code: int) -> None:
        for part, shard in ((whole, ()), *((p, ("--shard", f"{i}/{SHARDS}")) for i, p in enumerate(parts))):
            done = _collect(config, part, *shard)
            assert done.returncode == exit_code, done.stderr

    collect_all(0)
    server.world.clock.advance(2 * 86_400)
    server.app.shapes["summary"] = "unreadable"
    collect_all(1)  # no key wholly ok: every summary unreadable
    yield config, whole, parts
    server.stop()


def test_each_key_is_in_exactly_one_shard_chosen_by_its_fingerprint(sharded):
    config_path, _, parts = sharded
    config = load_config(config_path)
    held = [{name for (name,) in _rows(part, "SELECT key_name FROM keys")} for part in parts]
    assert all(held), "every shard holds keys"
    assert sum(len(h) for h in held) == len(config.keys) == len(set().union(*held))
    for key in config.keys:
        assert key.name in held[shard_of(key.fingerprint, SHARDS)]


@pytest.mark.parametrize("view", sorted(PER_KEY))
def test_union_of_the_shards_equals_one_unsharded_run_row_for_row(sharded, view):
    _, whole, parts = sharded
    sql = _select(PER_KEY[view], view)
    one_run = sorted(_rows(whole, sql), key=repr)
    union = sorted((row for part in parts for row in _rows(part, sql)), key=repr)
    assert one_run, f"{view} is empty: nothing compared"
    assert union == one_run


@pytest.mark.parametrize("view", sorted(GLOBAL))
def test_every_shard_reads_the_account_wide_answers_once(sharded, view):
    _, whole, parts = sharded
    sql = _select(GLOBAL[view], view) + " ORDER BY ALL"
    expected = _rows(whole, sql)
    assert expected
    for part in parts:
        assert _rows(part, sql) == expected


def test_a_file_refuses_a_collector_of_another_shard(sharded, tmp_path):
    config, whole, parts = sharded
    before = _rows(parts[0], "SELECT count(*) FROM usage_events")
    other = _collect(config, parts[0], "--shard", f"1/{SHARDS}")
    assert other.returncode == 2
    assert "holds shard 0/3" in other.stderr and "shard 1/3" in other.stderr and "Traceback" not in other.stderr
    unsharded = _collect(config, parts[0])
    assert unsharded.returncode == 2 and "every key (no --shard)" in unsharded.stderr
    sharded_into_whole = _collect(config, whole, "--shard", f"2/{SHARDS}")
    assert sharded_into_whole.returncode == 2 and "holds every key" in sharded_into_whole.stderr
    assert _rows(parts[0], "SELECT count(*) FROM usage_events") == before


@pytest.mark.parametrize("bad", ["3/3", "-1/3", "1", "a/b", "0/0"])
def test_a_bad_shard_is_one_line_and_exit_2(sharded, tmp_path, bad):
    config, _, _ = sharded
    done = _collect(config, tmp_path / "x.duckdb", f"--shard={bad}")
    assert done.returncode == 2
    assert "--shard" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.duckdb").exists()
