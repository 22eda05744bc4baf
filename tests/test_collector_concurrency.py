"""`collectors serve` and a dashboard-like reader in another process, side by side for over a minute."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from simulator.server import start_server
from tests.conftest import ADMIN_TOKEN, make_world, write_sim_config
from tests.test_collector_faults import WORLD, rows

ROOT = Path(__file__).resolve().parents[1]
READ_SECONDS = 60
SERVE_CONFIG = """
[collector]
backoff_scale = 0.01
concurrency = 8

[collector.intervals]
events = 2
jobs = 3
summary = 5
pricing = 7
admin = 7
"""

# What the dashboard does, in a loop: short read-only connections through the store's read
# functions. Any exception is a failure the operator would have seen.
READER = """
import json, sys, time, traceback
from datetime import date
from store import read_connection, reads
db, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
out = {"reads": 0, "errors": [], "events": [], "runs": [], "slowest_s": 0.0}
while time.monotonic() < end:
    started = time.monotonic()
    try:
        fresh = reads.freshness(db)
        reads.usage_totals(db, date(2026, 1, 1), date(2027, 1, 1))
        reads.coverage_gaps(db)
        reads.recent_runs(db, 5)
        with read_connection(db) as con:
            events = con.execute("SELECT count(*) FROM usage_events").fetchall()[0][0]
            runs = con.execute("SELECT count(*) FROM collector_runs").fetchall()[0][0]
        out["reads"] += 5
        out["events"].append(events)
        out["runs"].append(runs)
    except Exception as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}"[:300])
    out["slowest_s"] = max(out["slowest_s"], time.monotonic() - started)
    time.sleep(0.05)
print(json.dumps(out))
"""


class Serve:
    """`collectors serve --run-first`; its output lines are kept, `scheduled` is set once the schedule runs."""

    def __init__(self, config: Path, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collectors", "serve", "--config", str(config), "--db", str(db), "--run-first"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.scheduled = threading.Event()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "on a schedule" in line:
                self.scheduled.set()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and wait for the exit code (and the last output line)."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(timeout=10)
            assert self.proc.stdout is not None
            self.proc.stdout.close()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.slow
def test_serve_and_a_reader_process_never_see_lock_errors(tmp_path, admin_token_env):
    world = make_world(**WORLD)
    with start_server(world, admin_token=ADMIN_TOKEN) as server:
        config = write_sim_config(server, tmp_path / "keys.toml", SERVE_CONFIG)
        db = tmp_path / "shared.duckdb"
        serve = Serve(config, db)
        ticking = threading.Event()

        def advance_world() -> None:  # the stand-in's frozen clock moves on, so new data keeps arriving
            while not ticking.wait(0.5):
                world.clock.advance(20)

        clock = threading.Thread(target=advance_world, daemon=True)
        try:
            assert serve.scheduled.wait(120), serve.output
            clock.start()
            reader = subprocess.run(
                [sys.executable, "-c", READER, str(db), str(READ_SECONDS)],
                cwd=ROOT, capture_output=True, text=True, timeout=READ_SECONDS + 120,
            )  # fmt: skip
        finally:
            ticking.set()
            code = serve.stop()
        assert reader.returncode == 0, reader.stderr
        seen = json.loads(reader.stdout)
        assert seen["errors"] == [], seen["errors"][:5]
        assert seen["reads"] > 100
        # data kept arriving while the reader read: events and runs grew, several times over
        assert seen["events"][-1] > seen["events"][0]
        assert len(set(seen["events"])) >= 5 and len(set(seen["runs"])) >= 10
        assert code == 0 and serve.lines[-1] == "collector stopped", serve.output[-3000:]
        assert "database error" not in serve.output and "Traceback" not in serve.output, serve.output[-3000:]

    # zero failed writes: every run ended ok (the key disabled upstream is rejected as expected, not a failure)
    disabled = {k.name for k in world.keys() if k.managed and not k.enabled}
    statuses = dict(rows(db, "SELECT status, count(*) FROM collector_runs GROUP BY ALL"))
    # "cancelled" only when shutdown outlives its grace period on a loaded machine: nothing half-written
    assert set(statuses) <= {"ok", "cancelled"}, statuses
    assert sum(statuses.values()) >= 20
    assert rows(db, "SELECT key_name, error_code FROM collector_run_items WHERE status NOT IN ('ok', 'disabled')") == []
    rejected = rows(db, "SELECT DISTINCT key_name, error_code FROM collector_run_items WHERE status = 'disabled'")
    assert set(rejected) == {(name, "invalid_api_key") for name in disabled}, rejected


def test_a_same_process_open_racing_the_writer_is_waited_out_not_reported():
    """`serve` runs its jobs in threads of one process: a read-only open racing a read-write one is contention
    (retried), whichever way DuckDB words it; anything else is a real error."""
    from store.connection import _is_lock_error

    raced = 'Resource In Use Error: Unique file handle conflict: Cannot attach "shared" - the database file is '
    assert _is_lock_error(Exception(raced + 'already attached by database "shared"'))
    assert _is_lock_error(Exception("Connection Error: Can't open a connection to same database file with a "
                                    "different configuration than existing connections"))  # fmt: skip
    assert not _is_lock_error(Exception("IO Error: No such file or directory"))
