"""Bounded batches: a collection whose writer takes small batches, fetching paused while they wait, stores exactly
what one written in large batches stores, and no batch is larger than its bound."""

from __future__ import annotations

import asyncio

import duckdb

import collectors.sync as sync
from config import load_config
from simulator.server import start_server
from tests.conftest import ADMIN_TOKEN, SIM_NOW, make_world, write_sim_config
from tests.test_shards import PER_KEY, _select

SMALL_FLUSH_ROWS = 300


def _collect(config, db) -> sync.RunSummary:
    return asyncio.run(sync.collect(config, db, now=lambda: SIM_NOW.replace(tzinfo=None)))


def _views(db) -> dict[str, list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {view: sorted(con.execute(_select(cols, view)).fetchall(), key=repr) for view, cols in PER_KEY.items()}


def test_small_bounded_batches_store_exactly_what_large_ones_do(tmp_path, monkeypatch, admin_token_env):
    with start_server(make_world(n_keys=12), admin_token=ADMIN_TOKEN) as server:
        config = load_config(write_sim_config(server, tmp_path / "keys.toml"))
        large = _collect(config, tmp_path / "large.duckdb")

        batches: list[list[int]] = []  # each batch: the weight of each of its outcomes
        prepare = sync.prepare

        def recording(outcomes):
            batches.append([sync.outcome_rows(o) for o in outcomes])
            return prepare(outcomes)

        monkeypatch.setattr(sync, "FLUSH_ROWS", SMALL_FLUSH_ROWS)
        monkeypatch.setattr(sync, "MAX_PENDING_ROWS", 2 * SMALL_FLUSH_ROWS)
        monkeypatch.setattr(sync, "prepare", recording)
        small = _collect(config, tmp_path / "small.duckdb")

    assert small.rows_written == large.rows_written > 10 * SMALL_FLUSH_ROWS
    assert (small.status, small.keys_ok, small.requests) == (large.status, large.keys_ok, large.requests)
    # A batch stops at the outcome that reaches the bound, however much more was waiting.
    assert all(sum(batch[:-1]) < SMALL_FLUSH_ROWS for batch in batches), [sum(batch) for batch in batches]
    assert len(batches) > 10
    assert any(sum(batch) >= SMALL_FLUSH_ROWS for batch in batches), "the bound was never reached"
    assert _views(tmp_path / "small.duckdb") == _views(tmp_path / "large.duckdb")
