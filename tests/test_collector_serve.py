"""`collectors serve` stops cleanly on SIGTERM and SIGINT, leaving no run marked running."""

from __future__ import annotations

import signal
import time

import pytest

from simulator.server import start_server
from tests.conftest import ADMIN_TOKEN, make_world, write_sim_config
from tests.test_collector_concurrency import SERVE_CONFIG, Serve
from tests.test_collector_faults import WORLD, rows


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_on_signal(tmp_path, admin_token_env, sig):
    world = make_world(**WORLD)
    with start_server(world, latency_ms=20, admin_token=ADMIN_TOKEN) as server:
        config = write_sim_config(server, tmp_path / "keys.toml", SERVE_CONFIG)
        db = tmp_path / "serve.duckdb"
        serve = Serve(config, db)
        try:
            assert serve.scheduled.wait(120), serve.output
            deadline = time.monotonic() + 30
            while not any(line.startswith("[events] run") for line in serve.lines) and time.monotonic() < deadline:
                time.sleep(0.1)  # a scheduled collection ran (and the next may be mid-flight when we stop)
        finally:
            code = serve.stop(sig)
        assert code == 0, serve.output[-3000:]
        assert serve.lines[-1] == "collector stopped", serve.output[-3000:]
        assert "Traceback" not in serve.output
    statuses = {s for (s,) in rows(db, "SELECT status FROM collector_runs")}
    assert statuses and "running" not in statuses, statuses
