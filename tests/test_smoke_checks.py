"""Smoke checks against the stand-in over loopback: both paths of a healthy key, a disabled key, a wrong charge,
a missing output, the daily cap, the CLI contract, alerts, the schedule, and smoke jobs kept out of baselines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb
import httpx
import pytest

from analytics.smoke import ROW_FIELDS
from config import load_config
from service.scheduler import build_scheduler
from service.smoke import SMOKE_METRIC, run_smoke_checks, select_keys
from simulator.server import start_server
from store.alert_store import list_alerts
from store.anomaly_reads import hourly_series
from store.state_file import state_path
from tests.conftest import ADMIN_TOKEN, ROOT, collect_once, make_world, write_sim_config

HEALTHY = "api-gateway-prod"
OTHER = "dev-local"
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
SMOKE_SECTION = """
[smoke]
poll_interval_s = 0.02
timeout_s = 30
clip_url = "https://cdn.example.com/clips/smoke-6s.mp4"

[collector]
backoff_scale = 0.001
"""


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory, admin_token_env):
    """A world frozen at this hour, served over loopback, collected once; `api-gateway-prod` opted in."""
    folder = tmp_path_factory.mktemp("smoke")
    world = make_world(n_keys=30, days=30, now=NOW)
    server = start_server(world, admin_token=ADMIN_TOKEN)
    config_path = write_sim_config(server, folder / "keys.toml", SMOKE_SECTION)
    text = config_path.read_text(encoding="utf-8").replace(f'name = "{HEALTHY}"', f'name = "{HEALTHY}"\nsmoke = true')
    config_path.write_text(text, encoding="utf-8")
    db = folder / "monitor.duckdb"
    collect_once(load_config(config_path), db, at=NOW)
    yield world, server, config_path, db
    server.stop()


def _cli(config_path, db, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "collectors", "smoke", "--config", str(config_path), "--db", str(db), *args],
        cwd=ROOT,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _sim(server, path: str, body: dict) -> dict:
    return httpx.post(server.base_url + path, json=body, timeout=10).json()


def _created(world, job_id: str) -> dict:
    return next(j for j in world.truth()["created_jobs"] if j["id"] == job_id)


def test_both_paths_pass_for_a_healthy_key(stand_in):
    world, _, config_path, db = stand_in
    done = _cli(config_path, db, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [tuple(r) for r in rows] == [ROW_FIELDS, ROW_FIELDS]  # the public row shape, in order
    by_path = {r["path"]: r for r in rows}
    success, failure = by_path["success"], by_path["failure"]
    assert {r["key_name"] for r in rows} == {HEALTHY} and all(r["ok"] for r in rows)

    truth = _created(world, success["job_id"])
    assert truth["status"] == "completed" and truth["duration_seconds"] == 6.0
    # billed minutes × the cheapest model's rate: 6 s of light (45 credits a minute) = 4.5 credits
    assert truth["model"] == "light"
    assert success["credits_charged"] == truth["credits"] == success["credits_expected"] == pytest.approx(4.5)
    assert success["status"] == "completed" and success["output_ok"] is True
    assert success["request_id"].startswith("req_")
    # the request id is the one the API logged for the job's creation
    logged = {e["request_id"]: e for e in world.events(HEALTHY, since=NOW)}
    assert logged[success["request_id"]]["job_id"] == success["job_id"]

    assert failure["status"] == "failed" and failure["credits_charged"] == 0 and failure["credits_expected"] == 0
    assert _created(world, failure["job_id"])["error"].startswith("input_unreachable")

    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute(
            "SELECT path, ok, job_id, request_id, listed, trigger FROM smoke_checks WHERE run_id = "
            "(SELECT run_id FROM smoke_checks WHERE job_id = ?)",
            [success["job_id"]],
        ).fetchall()
        listed = con.execute(
            "SELECT job_id, status, credits_charged FROM jobs WHERE list_contains(?, job_id)",
            [[success["job_id"], failure["job_id"]]],
        ).fetchall()
    assert sorted(stored) == sorted(
        [("success", True, success["job_id"], success["request_id"], True, "cli"),
         ("failure", True, failure["job_id"], failure["request_id"], True, "cli")]
    )  # fmt: skip
    assert sorted(listed) == sorted([(success["job_id"], "completed", 4.5), (failure["job_id"], "failed", 0.0)])


def test_a_disabled_key_fails_with_invalid_api_key_and_says_so(stand_in):
    world, server, config_path, db = stand_in
    spec = world.key(OTHER)
    headers = {"X-Admin-Token": ADMIN_TOKEN}
    httpx.post(server.base_url + "/v1/admin/keys/disable", json={"key_fingerprint": spec.fingerprint}, headers=headers)
    try:
        done = _cli(config_path, db, "--key", OTHER, "--format", "json")
    finally:
        httpx.post(
            server.base_url + "/v1/admin/keys/enable", json={"key_fingerprint": spec.fingerprint}, headers=headers
        )
    assert done.returncode == 1, done.stderr
    rows = json.loads(done.stdout)
    assert {(r["path"], r["ok"], r["error_code"], r["job_id"]) for r in rows} == {
        ("success", False, "invalid_api_key", None),
        ("failure", False, "invalid_api_key", None),
    }
    assert all(r["request_id"] for r in rows)  # the refusal's request id, to quote to the vendor
    assert f"FAIL {OTHER} success: the API refused the key: invalid_api_key (API key is disabled)" in done.stderr
    alerts = list_alerts(state_path(db))
    mine = alerts[(alerts["key_name"] == OTHER) & (alerts["metric"] == SMOKE_METRIC)]
    assert set(mine["direction"]) == {"success_path", "failure_path"} and set(mine["status"]) == {"open"}
    # Enabled again, the key passes: its smoke-check alerts resolve by themselves (their recovery notices follow).
    again = _cli(config_path, db, "--key", OTHER, "--format", "json")
    assert again.returncode == 0, again.stderr
    alerts = list_alerts(state_path(db))
    mine = alerts[(alerts["key_name"] == OTHER) & (alerts["metric"] == SMOKE_METRIC)]
    assert set(mine["status"]) == {"resolved"} and set(mine["resolution"]) == {"cleared"} and len(mine) == 2


def test_a_wrongly_charged_job_fails_naming_the_difference(stand_in):
    world, server, config_path, db = stand_in
    _sim(server, "/_sim/live", {"charge_multiplier": 1.25, "key_name": HEALTHY})
    try:
        done = _cli(config_path, db, "--key", HEALTHY, "--format", "json")
    finally:
        _sim(server, "/_sim/live", {})
    assert done.returncode == 1
    success = next(r for r in json.loads(done.stdout) if r["path"] == "success")
    assert _created(world, success["job_id"])["credits"] == 5.62  # 4.5 × 1.25, as the stand-in charged it
    assert (success["ok"], success["error_code"]) == (False, "credits_mismatch")
    assert (success["credits_charged"], success["credits_expected"]) == (5.62, 4.5)
    assert "charged 5.62 credits, expected 4.50 (6 s = 0.1 min × 45/min, rounding exact): 1.12 too much" in done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        (detail,) = con.execute("SELECT detail FROM smoke_checks WHERE job_id = ?", [success["job_id"]]).fetchone()
    assert "1.12 too much" in detail


def test_a_completed_job_without_output_fails(stand_in):
    _, server, config_path, db = stand_in
    _sim(server, "/_sim/live", {"missing_output": True})
    try:
        done = _cli(config_path, db, "--key", HEALTHY)
    finally:
        _sim(server, "/_sim/live", {})
    assert done.returncode == 1
    assert f"FAIL {HEALTHY} success: completed" in done.stdout
    assert "the job completed without an output URL" in done.stdout
    assert f"PASS {HEALTHY} failure: failed" in done.stdout


def test_the_daily_credit_cap_skips_the_success_path(stand_in, tmp_path):
    _, _, config_path, db = stand_in
    capped = tmp_path / "capped.toml"
    text = config_path.read_text(encoding="utf-8").replace("timeout_s = 30", "timeout_s = 30\ndaily_credit_cap = 0.5")
    capped.write_text(text, encoding="utf-8")
    done = _cli(capped, db, "--key", HEALTHY, "--format", "json")
    assert done.returncode == 1
    rows = {r["path"]: r for r in json.loads(done.stdout)}
    assert (rows["success"]["status"], rows["success"]["error_code"], rows["success"]["job_id"]) == (
        "skipped", "credit_cap", None
    )  # fmt: skip
    assert rows["failure"]["ok"] is True  # the failure path costs nothing and still runs
    assert "daily cap" in done.stderr


def test_configuration_errors_exit_2(stand_in, tmp_path):
    world, _, config_path, db = stand_in
    unknown = _cli(config_path, db, "--key", "no-such-key")
    assert unknown.returncode == 2 and "no configured key named no-such-key" in unknown.stderr
    plain = tmp_path / "plain.toml"
    plain.write_text(config_path.read_text(encoding="utf-8").replace("smoke = true\n", ""), encoding="utf-8")
    nobody = _cli(plain, db)
    assert nobody.returncode == 2 and "no key has smoke = true" in nobody.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(config_path.read_text(encoding="utf-8").replace("timeout_s = 30", 'timeout_s = "soon"'), "utf-8")
    assert _cli(bad, db).returncode == 2
    assert "Traceback" not in unknown.stderr + nobody.stderr


def test_smoke_jobs_stay_out_of_the_detector_series(stand_in):
    world, _, config_path, db = stand_in
    config = load_config(config_path)
    run = asyncio.run(run_smoke_checks(config, db, select_keys(config, [HEALTHY]), trigger="schedule", alert=False))
    assert run.ok, [v.detail for v in run.verdicts]
    job_ids = [v.observation.job_id for v in run.verdicts]
    with duckdb.connect(str(db), read_only=True) as con:
        hour = con.execute("SELECT date_trunc('hour', min(created_at)) FROM jobs WHERE job_id = ?", [job_ids[0]])
        (hour,) = hour.fetchone()
        smoke_ids = [r[0] for r in con.execute("SELECT job_id FROM smoke_checks WHERE job_id IS NOT NULL").fetchall()]
        (traffic_credits, traffic_failed, all_credits) = con.execute(
            "SELECT coalesce(sum(credits_charged) FILTER (WHERE NOT list_contains(?, job_id)), 0), "
            "count(*) FILTER (WHERE status = 'failed' AND NOT list_contains(?, job_id)), sum(credits_charged) "
            "FROM jobs WHERE key_name = ? AND date_trunc('hour', created_at) = ?",
            [smoke_ids, smoke_ids, HEALTHY, hour],
        ).fetchone()
    assert all_credits > traffic_credits  # the smoke jobs are in the jobs list, charged
    series = hourly_series(db, until=NOW.replace(tzinfo=None) + timedelta(hours=2), keys=[HEALTHY])
    at_hour = series[series["hour"] == hour].set_index("metric")["value"]
    # without the exclusion this hour would carry the smoke checks' credits and their failed job
    assert at_hour.get("credits", 0.0) == pytest.approx(traffic_credits)
    assert at_hour.get("failed_jobs", 0.0) == traffic_failed


def test_serve_schedules_the_opted_in_keys_and_its_job_stores_them(stand_in, capsys):
    _, _, config_path, db = stand_in
    config = load_config(config_path)
    scheduler = build_scheduler(config, db)
    job = scheduler.get_job("smoke")
    assert job is not None and str(job.trigger) == "cron[month='*', day='*', day_of_week='*', hour='6', minute='30']"
    asyncio.run(job.func())
    assert "[smoke] 2/2 checks passed" in capsys.readouterr().out
    with duckdb.connect(str(db), read_only=True) as con:
        newest = con.execute("SELECT key_name, trigger FROM smoke_checks ORDER BY check_id DESC LIMIT 2").fetchall()
    assert newest == [(HEALTHY, "schedule")] * 2
    unscheduled = dataclasses.replace(config, smoke=dataclasses.replace(config.smoke, schedule=None))
    assert build_scheduler(unscheduled, db).get_job("smoke") is None


def test_smoke_and_actions_settings_have_working_defaults_and_clear_errors():
    from config import DEFAULT_SMOKE_CLIP_URL, ConfigError, config_from_dict

    key = {"name": "api-gateway-prod", "secret": "rbv_0123456789abcdef"}
    plain = config_from_dict({"keys": [key]})
    assert (plain.smoke.clip_url, plain.smoke.model, plain.smoke.daily_credit_cap) == (
        DEFAULT_SMOKE_CLIP_URL,
        None,
        100,
    )
    assert plain.actions.enabled is False and plain.keys[0].smoke is False
    chosen = config_from_dict({"keys": [key | {"smoke": True}], "smoke": {"model": "Pro", "schedule": ""}})
    assert chosen.keys[0].smoke and chosen.smoke.model == "pro" and chosen.smoke.schedule is None
    for bad, fragment in (
        ({"smoke": {"clip": "x"}}, "[smoke]: unknown field(s) clip"),
        ({"smoke": {"clip_url": "file:///etc/passwd"}}, "[smoke] clip_url"),
        ({"smoke": {"daily_credit_cap": -1}}, "daily_credit_cap: expected a number from 0"),
        ({"smoke": {"schedule": "daily"}}, "is not a crontab line"),
        ({"actions": {"enabled": "yes"}}, "[actions] enabled: must be true or false"),
        ({"actions": {"operators": "alice"}}, "[actions] operators: expected a list"),
        ({"keys": [key | {"smoke": "yes"}]}, "smoke: must be true or false"),
    ):
        with pytest.raises(ConfigError) as caught:
            config_from_dict({"keys": [key]} | bad)
        assert fragment in str(caught.value), (bad, str(caught.value))


def test_a_first_run_learns_the_clip_cost_from_one_key_before_reserving_for_the_rest(stand_in, tmp_path):
    world, _, config_path, _ = stand_in
    capped = tmp_path / "capped.toml"
    text = config_path.read_text(encoding="utf-8").replace("timeout_s = 30", "timeout_s = 30\ndaily_credit_cap = 50")
    capped.write_text(text, encoding="utf-8")
    config = load_config(capped)
    keys = [k for k in config.keys if world.key(k.name).enabled][:12]
    fresh = tmp_path / "fresh.duckdb"  # no check yet: the clip's cost is unknown
    run = asyncio.run(run_smoke_checks(config, fresh, keys, trigger="cli", alert=False))
    success = [v for v in run.verdicts if v.observation.path == "success"]
    # 4.5 credits a check: the first reserves a minute of light (45 ≤ 50), then 10 more fit at 4.5 (49.5 ≤ 50)
    assert [v.error_code for v in success] == [None] * 11 + ["credit_cap"]
    assert sum(v.observation.credits_charged or 0 for v in success) == pytest.approx(49.5)
