"""The spine over real loopback HTTP: stand-in API → collector → DuckDB views equal the stand-in's truth."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from config import load_config
from tests.conftest import collect_once

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_VIEWS = [
    "keys",
    "key_daily_usage",
    "key_last_used",
    "usage_events",
    "jobs",
    "collector_runs",
    "job_status_history",
    "pricing",
    "admin_keys",
    "collector_run_items",
]


def _rows(db: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _served_keys(collected):
    return [k for k in collected.world.keys() if k.managed and k.enabled]


def test_every_public_view_is_filled(collected):
    for view in PUBLIC_VIEWS:
        assert _rows(collected.db_path, f"SELECT count(*) FROM {view}")[0][0] > 0, view


def test_daily_calls_and_credits_equal_the_truth(collected):
    held = {
        (k, d): (calls, credits, jobs, failed)
        for k, d, calls, credits, jobs, failed in _rows(
            collected.db_path, "SELECT key_name, day, calls, credits, jobs, failed FROM key_daily_usage"
        )
    }
    expected = {}
    for key in _served_keys(collected):
        for row in collected.world.daily_usage(key.name, collected.world.now()):
            expected[(key.name, date.fromisoformat(row["date"]))] = (
                row["calls"],
                row["credits"],
                row["jobs"],
                row["failed"],
            )
    assert set(held) == set(expected)
    for cell, (calls, credits, jobs, failed) in expected.items():
        got = held[cell]
        assert (got[0], got[2], got[3]) == (calls, jobs, failed), cell
        assert got[1] == pytest.approx(credits, abs=1e-9), cell


def test_job_count_per_key_equals_the_truth(collected):
    held = dict(_rows(collected.db_path, "SELECT key_name, count(*) FROM jobs GROUP BY key_name"))
    for key in _served_keys(collected):
        assert held.get(key.name, 0) == len(collected.world.jobs(key.name, collected.world.now())), key.name
    assert _rows(collected.db_path, "SELECT count(*) - count(DISTINCT job_id) FROM jobs")[0][0] == 0


def test_last_used_per_key_equals_the_truth(collected):
    held = dict(_rows(collected.db_path, "SELECT key_name, last_used_at FROM key_last_used"))
    configured = [k for k in collected.world.keys() if k.managed]
    assert set(held) == {k.name for k in configured}
    for key in configured:
        truth = collected.world.last_used(key.name, collected.world.now())
        if truth is None:
            assert held[key.name] is None, key.name
        else:
            assert held[key.name] == truth.replace(tzinfo=None), key.name


def test_rejected_key_is_recorded_and_does_not_stop_the_others(collected):
    disabled = [k.name for k in collected.world.keys() if k.managed and not k.enabled]
    assert disabled, "the stand-in world should hold a key disabled upstream"
    failed = _rows(
        collected.db_path,
        "SELECT key_name, error_code FROM collector_run_items WHERE status <> 'ok' AND run_id = ?",
        [collected.first_run.run_id],
    )
    assert {(name, "invalid_api_key") for name in disabled} == set(failed)
    assert collected.first_run.keys_ok == len(_served_keys(collected))


def test_second_run_adds_no_rows(collected, tmp_path):
    copy = tmp_path / "again.duckdb"
    copy.write_bytes(collected.db_path.read_bytes())
    before = {
        v: _rows(copy, f"SELECT count(*) FROM {v}")[0][0]
        for v in PUBLIC_VIEWS
        if v not in ("collector_runs", "collector_run_items")
    }
    second = collect_once(load_config(collected.config_path), copy)
    after = {v: _rows(copy, f"SELECT count(*) FROM {v}")[0][0] for v in before}
    assert after == before
    assert second.rows_written == 0


def test_database_file_holds_no_secret(collected):
    blob = collected.db_path.read_bytes()
    wal = collected.db_path.with_suffix(".duckdb.wal")
    if wal.exists():
        blob += wal.read_bytes()
    for key in collected.config.keys:
        assert key.secret.encode() not in blob
        assert key.secret[4:].encode() not in blob
    masked = dict(_rows(collected.db_path, "SELECT key_name, masked_key FROM keys"))
    for key in collected.config.keys:
        assert masked[key.name] == f"rbv_…{key.secret[-4:]}"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "collectors", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        ("[api\nbase_url=", "not valid TOML"),
        ('[api]\nbase_url = "http://127.0.0.1:9"\n', "no [[keys]]"),
        ('[[keys]]\nname = "a-prod"\nsecret_env = "RBV_TEST_UNSET_VAR"\n', "RBV_TEST_UNSET_VAR"),
        ('[[keys]]\nname = "a-prod"\nsecret = "rbv_0123456789"\ncolour = "red"\n', "unknown field(s) colour"),
        ('[[keys]]\nname = "a-prod"\nenvironment = "qa"\nsecret = "rbv_0123456789"\n', "environment 'qa'"),
    ],
)
def test_bad_config_gives_one_clear_line(tmp_path, content, needle):
    config = tmp_path / "keys.toml"
    if content is not None:
        config.write_text(content, encoding="utf-8")
    result = _cli("once", "--config", str(config), "--db", str(tmp_path / "x.duckdb"))
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.duckdb").exists()


def test_cli_collects_over_loopback_and_prints_one_summary(collected, tmp_path):
    db = tmp_path / "cli.duckdb"
    result = _cli("once", "--config", str(collected.config_path), "--db", str(db), "--endpoints", "pricing,summary")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("run 1 partial:")
    assert "checkout-prod summary: invalid_api_key" in result.stdout
    assert "Traceback" not in result.stderr
    assert _rows(db, "SELECT count(*) FROM pricing")[0][0] == 4
