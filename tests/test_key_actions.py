"""Key actions through the stand-in's admin API: the guardrails (recent traffic, confirmation, access, names),
the append-only audit, and rotation with overlap tracked until the old key is disabled."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime

import duckdb
import httpx
import pytest

from analytics.key_actions import Access, TrafficFacts, guard, rotation_name_problem, suggested_rotation_name
from config import fingerprint, load_config
from simulator.server import start_server
from tests.conftest import ADMIN_TOKEN, ROOT, collect_once, make_world, write_sim_config

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
BUSY = "api-gateway-prod"  # ~200 calls an hour at peak
QUIET = "reports-prod"  # went quiet 20 days ago
ACTIONS_ON = "\n[actions]\nenabled = true\n\n[collector]\nbackoff_scale = 0.001\n"


@pytest.fixture
def stand_in(tmp_path, admin_token_env):
    """A fresh world (actions change it) at this hour, collected once, with key actions switched on."""
    world = make_world(n_keys=30, days=30, now=NOW)
    server = start_server(world, admin_token=ADMIN_TOKEN)
    config_path = write_sim_config(server, tmp_path / "keys.toml", ACTIONS_ON)
    db = tmp_path / "monitor.duckdb"
    collect_once(load_config(config_path), db, at=NOW)
    yield world, server, config_path, db
    server.stop()


def _admin(config_path, db, *args):
    done = subprocess.run(
        [sys.executable, "-m", "collectors", "admin", *args, "--config", str(config_path), "--db", str(db),
         "--actor", "ops-alice"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, (done.stdout, done.stderr)  # one JSON line with the outcome
    return done, json.loads(lines[0])


def _audit(db) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            'SELECT "at", actor, action, key_name, fingerprint, reason, request_id, outcome FROM key_actions '
            "ORDER BY action_id"
        ).fetchall()


def test_disabling_a_key_with_recent_traffic_is_refused_without_force_and_the_refusal_is_audited(stand_in):
    world, _, config_path, db = stand_in
    spec = world.key(BUSY)
    done, line = _admin(config_path, db, "disable", "--key", BUSY, "--reason", "suspected leak", "--yes")
    assert done.returncode == 1
    assert line["outcome"] == "refused" and line["traffic_24h"] is True
    assert "the key has traffic" in line["message"] and "use force, with a reason" in line["message"]
    assert world.is_enabled(spec)  # nothing was sent to the admin API's disable
    ((at, actor, action, key_name, fp, reason, request_id, outcome),) = _audit(db)
    assert (actor, action, key_name, fp, reason, outcome) == (
        "ops-alice", "disable", BUSY, spec.fingerprint, "suspected leak", "refused"
    )  # fmt: skip
    assert request_id and request_id.startswith("req_")  # the inventory read the judgement used
    assert "Disable key api-gateway-prod" in done.stderr and "calls per day (UTC)" in done.stderr

    forced, line = _admin(config_path, db, "disable", "--key", BUSY, "--reason", "suspected leak", "--yes", "--force")
    assert forced.returncode == 0 and line["outcome"] == "done" and line["forced"] is True
    assert not world.is_enabled(spec)
    with httpx.Client(base_url=stand_in[1].base_url, headers={"X-Api-Key": spec.secret}) as client:
        answer = client.get("/v1/jobs")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"
    assert [row[-1] for row in _audit(db)] == ["refused", "done"]


def test_dry_run_changes_nothing_and_confirmation_is_required(stand_in):
    world, _, config_path, db = stand_in
    spec = world.key(QUIET)
    dry, line = _admin(config_path, db, "disable", "--key", QUIET, "--reason", "stale for 20 days", "--dry-run")
    assert dry.returncode == 0 and line["outcome"] == "dry_run" and line["traffic_24h"] is False
    assert "no call in the last 24 h" in line["message"] and world.is_enabled(spec)
    unconfirmed, line = _admin(config_path, db, "disable", "--key", QUIET, "--reason", "stale for 20 days")
    assert unconfirmed.returncode == 1 and line["outcome"] == "refused" and "not confirmed" in line["message"]
    assert world.is_enabled(spec)
    done, line = _admin(config_path, db, "disable", "--key", QUIET, "--reason", "stale for 20 days", "--yes")
    assert done.returncode == 0 and line["outcome"] == "done" and not world.is_enabled(spec)
    again, line = _admin(config_path, db, "disable", "--key", QUIET, "--reason", "twice", "--yes")
    assert again.returncode == 1 and "already disabled" in line["message"]
    enabled, line = _admin(config_path, db, "enable", "--key", QUIET, "--reason", "owner still needs it", "--yes")
    assert enabled.returncode == 0 and line["outcome"] == "done" and world.is_enabled(spec)
    assert [(row[2], row[7]) for row in _audit(db)] == [
        ("disable", "dry_run"), ("disable", "refused"), ("disable", "done"), ("disable", "refused"), ("enable", "done"),
    ]  # fmt: skip


def test_actions_need_the_config_switch_and_a_reason(stand_in, tmp_path):
    world, _, config_path, db = stand_in
    off = tmp_path / "off.toml"
    off.write_text(config_path.read_text(encoding="utf-8").replace("enabled = true", "enabled = false"), "utf-8")
    done, line = _admin(off, db, "disable", "--key", QUIET, "--reason", "stale", "--yes")
    assert done.returncode == 1 and "key actions are off" in line["message"] and world.is_enabled(world.key(QUIET))
    only = tmp_path / "only.toml"
    text = config_path.read_text(encoding="utf-8").replace("enabled = true", 'enabled = true\noperators = ["ops-bob"]')
    only.write_text(text, encoding="utf-8")
    done, line = _admin(only, db, "disable", "--key", QUIET, "--reason", "stale", "--yes")
    assert done.returncode == 1 and "ops-alice is not among [actions] operators" in line["message"]
    blank, line = _admin(config_path, db, "disable", "--key", QUIET, "--reason", "  ", "--yes")
    assert blank.returncode == 1 and "needs a reason" in line["message"]
    unknown, line = _admin(config_path, db, "disable", "--key", "no-such-key", "--reason", "x", "--yes")
    assert unknown.returncode == 1 and "no configured key" in line["message"]
    assert [row[7] for row in _audit(db)] == ["refused"] * 4  # every refusal is in the audit
    usage = subprocess.run(
        [sys.executable, "-m", "collectors", "admin", "disable", "--config", str(config_path), "--db", str(db),
         "--key", QUIET],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert usage.returncode == 2 and "--reason" in usage.stderr


def test_rotation_shows_the_secret_once_and_tracks_the_old_key_until_it_is_disabled(stand_in, tmp_path):
    world, server, config_path, db = stand_in
    old = world.key(QUIET)
    secret_file = tmp_path / "new-secret.txt"
    bad, line = _admin(config_path, db, "rotate", "--key", QUIET, "--new-name", "temp-prod")
    assert bad.returncode == 1 and "generic name" in line["message"] and "reports-v2-prod" in line["message"]
    done, line = _admin(
        config_path, db, "rotate", "--key", QUIET, "--new-name", "reports-v2-prod", "--secret-out", str(secret_file)
    )
    assert done.returncode == 0, done.stderr
    assert line["outcome"] == "done" and line["new_key_name"] == "reports-v2-prod" and "secret" not in line
    assert line["secret_file"] == str(secret_file)
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text(encoding="utf-8").strip()
    assert line["new_fingerprint"] == fingerprint(secret) == world.key("reports-v2-prod").fingerprint
    assert secret not in done.stdout + done.stderr
    with httpx.Client(base_url=server.base_url, headers={"X-Api-Key": secret}) as client:
        assert client.get("/v1/jobs").status_code == 200  # the replacement works
    refused = subprocess.run(
        [sys.executable, "-m", "collectors", "admin", "rotate", "--config", str(config_path), "--db", str(db),
         "--key", QUIET, "--new-name", "reports-v3-prod", "--secret-out", str(secret_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "already exists" in refused.stderr  # checked before any key is made
    assert "reports-v3-prod" not in {k.name for k in world.keys()}

    with duckdb.connect(str(db), read_only=True) as con:
        tracked = con.execute("SELECT old_key_name, old_fingerprint, new_key_name, old_disabled_at FROM key_rotations")
        assert tracked.fetchall() == [(QUIET, old.fingerprint, "reports-v2-prod", None)]
        for table in ("key_action_log", "smoke_check_log", "raw_landing", "admin_inventory"):
            dump = repr(con.execute(f"SELECT * FROM {table}").fetchall())
            assert secret not in dump and secret[4:16] not in dump, table

    # The old key leaves the config; its fingerprint is still tracked, so it can still be disabled by name.
    text = config_path.read_text(encoding="utf-8")
    start = text.index(f'name = "{QUIET}"')
    block_start = text.rindex("[[keys]]", 0, start)
    block_end = text.find("[[keys]]", start)
    config_path.write_text(text[:block_start] + text[block_end:], encoding="utf-8")
    disabled, line = _admin(config_path, db, "disable", "--key", QUIET, "--reason", "rotated", "--yes")
    assert disabled.returncode == 0 and line["fingerprint"] == old.fingerprint, line
    assert not world.is_enabled(old)
    with duckdb.connect(str(db), read_only=True) as con:
        ((disabled_at,),) = con.execute("SELECT old_disabled_at FROM key_rotations").fetchall()
    assert disabled_at is not None


def test_guardrail_rules():
    now = datetime(2026, 11, 20, 12)
    quiet = TrafficFacts(last_used_at=datetime(2026, 11, 1), observed_at=now, live_inventory=False)
    busy = TrafficFacts(calls_24h=12, last_used_at=datetime(2026, 11, 20, 11, 59))
    stale = TrafficFacts(last_used_at=datetime(2026, 11, 1), observed_at=datetime(2026, 11, 19))
    assert guard("disable", quiet, now, force=False, reason="stale").allowed
    refused = guard("disable", busy, now, force=False, reason="leak")
    assert not refused.allowed and "12 call(s) in the last 24 h" in refused.why
    assert guard("disable", busy, now, force=True, reason="leak").forced
    unknown = guard("disable", stale, now, force=False, reason="stale")
    assert not unknown.allowed and "unknown" in unknown.why  # not collected lately is not "no traffic"
    assert not guard("disable", quiet, now, force=True, reason=" ").allowed
    assert guard("enable", busy, now, force=False, reason="back").allowed
    assert Access(enabled=True, actor="a", admin_token=True, signed_in=False).problem() is not None
    assert Access(enabled=True, actor="a", admin_token=True).problem() is None


def test_replacement_names_follow_the_convention():
    configured = ["api-gateway-prod", "api-gateway-v2-prod"]
    assert suggested_rotation_name("api-gateway-prod", "prod", configured) == "api-gateway-v3-prod"
    assert suggested_rotation_name("prod-main", "prod") == "prod-main-v2"
    assert suggested_rotation_name("billing-worker-v4-staging", "staging") == "billing-worker-v5-staging"
    assert rotation_name_problem("api-gateway-v3-prod", "api-gateway-prod", "prod", configured) is None
    assert "already" in rotation_name_problem("api-gateway-v2-prod", "api-gateway-prod", "prod", configured)
    assert "says staging" in rotation_name_problem("api-gateway-staging", "api-gateway-prod", "prod", configured)
    assert "generic" in rotation_name_problem("key-new-prod", "api-gateway-prod", "prod", configured)
    assert "lower-case" in rotation_name_problem("ApiGateway_Prod", "api-gateway-prod", "prod", configured)
