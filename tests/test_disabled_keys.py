"""Keys the vendor's inventory lists as disabled: rejected as expected (not failures), tried on a slower schedule,
over real HTTP against the stand-in; without an inventory a rejected key is still a failure."""

from __future__ import annotations

import asyncio
import time

import duckdb
import pytest

from collectors.sync import collect
from config import load_config
from simulator.server import start_server
from store import reads
from tests.conftest import ADMIN_TOKEN, SIM_NOW, make_world, write_sim_config

NOW = SIM_NOW.replace(tzinfo=None)


@pytest.fixture(scope="module")
def stand_in(admin_token_env):
    world = make_world(days=14)
    server = start_server(world, admin_token=ADMIN_TOKEN)
    yield server
    server.stop()


def _disabled(world) -> set[str]:
    return {k.name for k in world.keys() if k.managed and not k.enabled}


def _collect(config, db, **kwargs):
    return asyncio.run(collect(config, db, now=lambda: NOW, **kwargs))


def _items(db, key: str) -> list[tuple[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT status, error_code FROM collector_run_items WHERE key_name = ? AND endpoint <> 'admin' "
            "ORDER BY run_id, endpoint",
            [key],
        ).fetchall()


def test_a_disabled_key_is_expected_and_polled_on_a_slower_schedule(stand_in, tmp_path):
    (name,) = _disabled(stand_in.world)
    config = load_config(write_sim_config(stand_in, tmp_path / "keys.toml"))
    db = tmp_path / "monitor.duckdb"

    first = _collect(config, db)
    # The inventory is read before the keys, so even the first run expects the rejection.
    assert first.status == "ok" and first.failures == [], first.line()
    assert first.keys_disabled == 1 and first.keys_ok == len(config.keys) - 1
    assert "1 disabled upstream (expected)" in first.line()
    assert _items(db, name) == [("disabled", "invalid_api_key")]  # one request: its other endpoints are skipped
    info = reads.freshness(db)
    assert info.last_run_status == "ok" and info.failed_items_last_run == 0
    assert reads.failed_run_items(db).empty
    assert reads.disabled_upstream(db)["key_name"].tolist() == [name]

    again = _collect(config, db, endpoints=("events",))  # as `serve` polls events every minute
    assert again.status == "ok" and again.keys_disabled == 1
    assert _items(db, name) == [("disabled", "invalid_api_key")], "not tried again within the hour"
    assert again.keys_ok == len(config.keys) - 1


def test_once_its_interval_has_passed_a_disabled_key_is_tried_again(stand_in, tmp_path):
    (name,) = _disabled(stand_in.world)
    path = write_sim_config(stand_in, tmp_path / "keys.toml", "[collector.intervals]\ndisabled = 1\n")
    config = load_config(path)
    db = tmp_path / "monitor.duckdb"
    _collect(config, db)
    time.sleep(1.2)
    later = _collect(config, db, endpoints=("events",))
    assert later.status == "ok" and later.keys_disabled == 1
    assert _items(db, name) == [("disabled", "invalid_api_key")] * 2


def test_without_an_inventory_a_rejected_key_is_a_failure(stand_in, tmp_path, monkeypatch):
    (name,) = _disabled(stand_in.world)
    monkeypatch.delenv("RBV_ADMIN_TOKEN")  # nothing says the key is disabled: a 401 may be a revoked secret
    config = load_config(write_sim_config(stand_in, tmp_path / "keys.toml"))
    db = tmp_path / "monitor.duckdb"
    run = _collect(config, db)
    assert run.status == "partial" and run.keys_disabled == 0
    assert f"{name} summary: invalid_api_key" in run.failures
    assert _items(db, name) == [("failed", "invalid_api_key")]
    assert reads.freshness(db).failed_items_last_run == 1
