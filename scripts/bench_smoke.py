"""Measure smoke checks: `collectors smoke` wall time for 1 and 10 keys against a stand-in (default `[smoke]`
settings), and, given a scale database, the detector's fleet-wide hourly read with and without smoke jobs to
exclude.

    .venv/bin/python scripts/bench_smoke.py [--scale-db /tmp/scale.duckdb] [--runs 2]

The scale database is copied before smoke jobs are added to the copy (`--scale-db` itself is not changed).
Wall times depend on what else the machine runs: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from simulator.config_writer import write_config  # noqa: E402
from simulator.server import start_server  # noqa: E402
from simulator.world import World  # noqa: E402
from store import smoke_checks  # noqa: E402
from store.anomaly_reads import hourly_series  # noqa: E402

TOKEN = "sim-admin-token"


def _cli(folder: Path, runs: int) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    world = World(seed=7, n_keys=30, days=30, now=now)
    server = start_server(world, admin_token=TOKEN)
    config, db = folder / "keys.toml", folder / "monitor.duckdb"
    write_config(world, config, server.base_url)
    env = dict(os.environ, RBV_ADMIN_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    base = [sys.executable, "-m", "collectors"]
    try:
        subprocess.run([*base, "once", "--config", str(config), "--db", str(db)], env=env, capture_output=True)
        names = [k.name for k in world.keys() if k.managed and k.enabled][:10]
        for count in (1, 10):
            for _ in range(runs):
                keys = [arg for name in names[:count] for arg in ("--key", name)]
                began = time.perf_counter()
                done = subprocess.run(
                    [*base, "smoke", "--config", str(config), "--db", str(db), "--format", "json", *keys],
                    env=env, capture_output=True, text=True,
                )  # fmt: skip
                wall = time.perf_counter() - began
                rows = json.loads(done.stdout)
                slowest = max(r["seconds"] for r in rows)
                print(f"smoke, {count:>2} key(s): exit {done.returncode}, {len(rows)} paths, wall {wall:.1f} s, "
                      f"slowest path {slowest:.2f} s")  # fmt: skip
    finally:
        server.stop()


def _hourly(db: Path, label: str, repeats: int = 5) -> None:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        frame = hourly_series(db, datetime(2026, 11, 20, 12), ordered=False)
        times.append(time.perf_counter() - began)
    print(
        f"hourly_series, {label}: {len(frame):,} rows, best {min(times):.2f} s, median {statistics.median(times):.2f} s"
    )


def _exclusion(scale_db: Path, folder: Path) -> None:
    copy = folder / "scale_copy.duckdb"
    shutil.copyfile(scale_db, copy)
    _hourly(copy, "no smoke job")
    with duckdb.connect(str(copy), read_only=True) as con:
        sample = con.execute("SELECT job_id, key_name FROM jobs USING SAMPLE 600 ROWS").fetchall()
    moment = datetime(2026, 11, 1)
    smoke_checks.record(
        copy,
        [
            {"run_id": "bench", "trigger": "cli", "key_name": key, "path": "success", "started_at": moment,
             "finished_at": moment, "ok": True, "job_id": job}
            for job, key in sample
        ],
    )  # fmt: skip
    _hourly(copy, f"{len(sample)} smoke jobs excluded")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale-db", type=Path, help="a database from `python -m simulator.scale` (copied)")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _cli(Path(tmp), args.runs)
        if args.scale_db:
            _exclusion(args.scale_db, Path(tmp))
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
