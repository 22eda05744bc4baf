"""SIGKILL the collector CLI at random points: no duplicate or partial rows, and the next runs converge."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from simulator.server import start_server
from store import reads
from tests.conftest import ADMIN_TOKEN, make_world, write_sim_config
from tests.test_collector_faults import WORLD, assert_matches_truth, assert_no_duplicates, rows, served_keys

ROOT = Path(__file__).resolve().parents[1]
KILLS = 10
# Enough latency that a run lasts a few seconds (~150 requests, 4 at a time), so kills land mid-run.
LATENCY_MS = 40
COLLECTOR = """
[collector]
concurrency = 4
backoff_scale = 0.01
"""


class Collector:
    """The CLI with every request logged; `requesting` is set once requests flow (imports take seconds)."""

    def __init__(self, config: Path, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collectors", "once", "--config", str(config), "--db", str(db), "-v"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.requesting = threading.Event()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "request_id=" in line:
                self.requesting.set()

    def wait(self, timeout: float) -> int:
        """Wait for the exit (the process is reaped, so the next run sees its pid gone)."""
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code


def assert_consistent(world, db: Path) -> None:
    """What a crash may leave: fewer keys collected, never a partial or duplicated one.

    The world is frozen, so a key/endpoint either has its cursor and exactly the truth's rows
    (they commit together), or neither.
    """
    assert_no_duplicates(db)
    now = world.now()
    cursors = set(rows(db, "SELECT key_name, endpoint FROM sync_state"))
    for name in served_keys(world):
        daily = rows(db, "SELECT count(*) FROM usage_daily WHERE key_name = ?", [name])[0][0]
        jobs = rows(db, "SELECT count(*) FROM jobs WHERE key_name = ?", [name])[0][0]
        events = rows(db, "SELECT count(*) FROM usage_events WHERE key_name = ?", [name])[0][0]
        truth = {
            "summary": len(world.daily_usage(name, now)),
            "jobs": len(world.jobs(name, now)),
            "events": len(world.recent_events(name, 100, now)),
        }
        for endpoint, held in (("summary", daily), ("jobs", jobs), ("events", events)):
            expected = truth[endpoint] if (name, endpoint) in cursors else 0
            assert held == expected, (name, endpoint, held, expected)
    landed = reads.landed_bodies(db)
    for body, digest in zip(landed["body"], landed["body_sha256"], strict=True):
        assert hashlib.sha256((body or "").encode()).hexdigest() == digest
    assert rows(db, "SELECT count(*) FROM collector_run_items WHERE run_id NOT IN "
                    "(SELECT run_id FROM collector_runs)") == [(0,)]  # fmt: skip


@pytest.mark.slow
def test_sigkill_at_random_points_leaves_no_partial_rows_and_converges(tmp_path, admin_token_env):
    world = make_world(**WORLD)
    rng = random.Random(20261120)
    with start_server(world, latency_ms=LATENCY_MS, admin_token=ADMIN_TOKEN) as server:
        config = write_sim_config(server, tmp_path / "keys.toml", COLLECTOR)
        db = tmp_path / "killed.duckdb"
        killed_mid_run = 0
        for _ in range(4 * KILLS):  # a run that finishes before its kill point counts no kill
            collector = Collector(config, db)
            assert collector.requesting.wait(60), "the collector never started requesting"
            # a random point of the run (the first one lasts seconds, later ones well under one)
            try:
                collector.proc.wait(timeout=rng.uniform(0.0, 1.2))
            except subprocess.TimeoutExpired:
                collector.proc.send_signal(signal.SIGKILL)
                killed_mid_run += 1
            collector.wait(timeout=30)
            assert_consistent(world, db)
            if killed_mid_run == KILLS:
                break
        assert killed_mid_run == KILLS

        assert Collector(config, db).wait(timeout=180) == 0
        statuses = rows(db, "SELECT status, count(*) FROM collector_runs GROUP BY ALL")
        assert "running" not in dict(statuses), statuses
        # every killed run was started (requests flowed), and the next start marked it abandoned
        assert dict(statuses).get("abandoned", 0) == killed_mid_run, statuses
        # the key disabled upstream is expected to be rejected: the last run is ok
        assert rows(db, "SELECT status FROM collector_runs ORDER BY run_id DESC LIMIT 1") == [("ok",)]
        assert_consistent(world, db)
        assert_matches_truth(world, db)
