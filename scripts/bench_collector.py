"""Benchmark the collector against the stand-in (1,000 keys, 50 ms latency) and print a markdown table.

The stand-in runs in its own process (so it does not share the GIL with the collector), with a
frozen clock, and before the clock starts it warms its daily aggregates and renders the bodies a first
collection reads (a frozen clock makes them immutable): what is timed is the collector, not the
stand-in's data generation. Measured in one run:

1. first collection: pricing + admin, then summary (90 days) + events + the first jobs page per
   key, at the configured concurrency. A key's whole job history (dozens of pages for a busy key)
   is deliberately not part of it: `[collector] max_job_pages_first_run = 1` caps it;
2. the same first collection one request at a time (concurrency 1) on a subset of keys,
   extrapolated linearly to all keys (each key costs the same three round trips);
3. two no-change cycles right after: requests per key, rows changed and whether any table
   changed (the first one lands each key's 3-day summary body once, a body not seen before);
4. the results refresh after the first collection, as `collectors once` runs it.

Usage: python scripts/bench_collector.py [--keys 1000] [--latency-ms 50] [--concurrency 32]
       [--sequential-keys 50] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.sync import RunSummary, collect  # noqa: E402
from config import Config, load_config  # noqa: E402
from service.refresh import refresh_results  # noqa: E402
from store import read_connection  # noqa: E402

SIM_NOW = datetime(2026, 11, 20, 12, 0, 0)
ADMIN_TOKEN = "sim-admin-token"
ENDPOINTS = ("pricing", "admin", "summary", "events", "jobs")
BOOKKEEPING = {"run_log", "run_item_log", "schema_migrations"}


def start_stand_in(keys: int, latency_ms: float, folder: Path) -> tuple[subprocess.Popen, Path, float]:
    config = folder / "keys.toml"
    cmd = [
        sys.executable,
        "-m",
        "simulator",
        "--port",
        "0",
        "--keys",
        str(keys),
        "--days",
        "90",
        "--latency-ms",
        str(latency_ms),
        "--now",
        SIM_NOW.isoformat() + "Z",
        "--warm",
        "--write-config",
        str(config),
        "--admin-token",
        ADMIN_TOKEN,
    ]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        print(f"  stand-in: {line.strip()}", file=sys.stderr)
        if re.search(r"stand-in API on http://127\.0\.0\.1:\d+", line):
            return proc, config, time.monotonic() - started
    raise SystemExit(f"the stand-in exited ({proc.wait()}) before serving")


def with_settings(config: Config, keys: int | None = None, **settings: object) -> Config:
    collector = dataclasses.replace(config.collector, **settings)
    chosen = config.keys if keys is None else config.keys[:keys]
    return dataclasses.replace(config, collector=collector, keys=chosen)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Timed:
    summary: RunSummary
    seconds: float
    collector_cpu: float
    stand_in_cpu: float


def run(config: Config, db: Path, stand_in_pid: int, profile: cProfile.Profile | None = None) -> Timed:
    started, cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_seconds(stand_in_pid)
    if profile:
        profile.enable()
    summary = asyncio.run(
        collect(
            config, db, endpoints=ENDPOINTS, now=lambda: SIM_NOW, progress=lambda m: print(f"  {m}", file=sys.stderr)
        )
    )
    if profile:
        profile.disable()
    return Timed(
        summary, time.perf_counter() - started, time.process_time() - cpu, cpu_seconds(stand_in_pid) - server_cpu
    )


def table_fingerprints(db: Path) -> dict[str, tuple[int, str]]:
    """Row count and a content digest of every base table, to tell whether a cycle changed anything."""
    with read_connection(db) as con:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()]
        out = {}
        for table in tables:
            count, digest = con.execute(
                f'SELECT count(*), coalesce(sum(hash(t::VARCHAR)), 0)::VARCHAR FROM "{table}" t'
            ).fetchall()[0]
            out[table] = (int(count), str(digest))
    return out


def changed_tables(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> dict[str, int]:
    return {t: after[t][0] - before[t][0] for t in after if t not in BOOKKEEPING and after[t] != before.get(t)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=None, help="default: the collector's own default")
    parser.add_argument("--sequential-keys", type=int, default=50, help="keys in the concurrency-1 sample")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the first collection here")
    args = parser.parse_args()
    os.environ["RBV_ADMIN_TOKEN"] = ADMIN_TOKEN
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        folder = Path(tmp)
        print(f"starting the stand-in ({args.keys} keys, {args.latency_ms:g} ms latency, warming)", file=sys.stderr)
        proc, config_path, warm_s = start_stand_in(args.keys, args.latency_ms, folder)
        try:
            base = load_config(config_path)
            concurrency = args.concurrency or base.collector.concurrency
            config = with_settings(base, concurrency=concurrency, max_job_pages_first_run=1)
            n_keys = len(config.keys)
            profile = cProfile.Profile() if args.profile else None

            print("first collection", file=sys.stderr)
            first = run(config, folder / "bench.duckdb", proc.pid, profile)
            if profile:
                profile.dump_stats(args.profile)
            print(f"  {first.summary.line()}", file=sys.stderr)
            # What `collectors once` does next, and `serve` after new data: the findings computed once, stored.
            began, cpu_began = time.perf_counter(), time.process_time()
            refreshed = refresh_results(folder / "bench.duckdb", config.rules, config.reconciliation, as_of=SIM_NOW)
            refresh_s, refresh_cpu = time.perf_counter() - began, time.process_time() - cpu_began
            print(f"  {refreshed.line()}", file=sys.stderr)

            sample = min(args.sequential_keys, n_keys)
            print(f"sequential collection of {sample} keys", file=sys.stderr)
            seq = run(with_settings(config, keys=sample, concurrency=1), folder / "sequential.duckdb", proc.pid)
            print(f"  {seq.summary.line()}", file=sys.stderr)
            seq_total_s = seq.seconds * n_keys / sample

            cycles = []
            for n in (1, 2):
                before = table_fingerprints(folder / "bench.duckdb")
                timed = run(config, folder / "bench.duckdb", proc.pid)
                after = table_fingerprints(folder / "bench.duckdb")
                print(f"  no-change cycle {n}: {timed.summary.line()}", file=sys.stderr)
                cycles.append((timed, changed_tables(before, after)))
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    def cpu(timed: Timed) -> str:
        return f"CPU: collector {timed.collector_cpu:.1f} s, stand-in {timed.stand_in_cpu:.1f} s"

    s1 = first.summary
    rows = [
        ("keys (configured / served)", f"{n_keys} / {s1.keys_ok}", "one configured key is disabled upstream (401)"),
        (
            "stand-in latency per request",
            f"{args.latency_ms:g} ms",
            f"separate process; frozen clock; warmed in {warm_s:.0f} s before timing",
        ),
        ("concurrency", str(concurrency), ""),
        (
            "first collection (summary 90 d + events + first jobs page per key, pricing, admin)",
            f"**{first.seconds:.1f} s**",
            f"{s1.requests} requests, {s1.retries} retries, {s1.rows_written} rows changed; {cpu(first)}",
        ),
        (
            "sequential, one request at a time (concurrency 1)",
            f"{seq_total_s:.0f} s",
            f"measured on {sample} keys ({seq.seconds:.1f} s, {seq.summary.requests} requests), "
            f"extrapolated x{n_keys / sample:g}",
        ),
        ("speed-up over sequential", f"**{seq_total_s / first.seconds:.0f}x**", ""),
        (
            "results refresh after it (findings, incidents, 31 days reconciled, the week's review, stored)",
            f"**{refresh_s:.1f} s** ({refresh_cpu:.1f} s CPU)",
            f"adds {100 * refresh_s / first.seconds:.0f} % to that collection; "
            + ", ".join(f"{n:,} {k}" for k, n in refreshed.rows.items()),
        ),
    ]
    for n, (timed, changed) in enumerate(cycles, start=1):
        what = ", ".join(f"{t} +{d}" if d else f"{t} rewritten" for t, d in changed.items()) or "no table changed"
        rows.append(
            (
                f"no-change cycle {n}",
                f"{timed.seconds:.1f} s",
                f"{timed.summary.requests / n_keys:.2f} requests per key ({timed.summary.requests} total), "
                f"{timed.summary.rows_written} rows changed; {what}; {cpu(timed)}",
            )
        )
    print("| measure | value | notes |")
    print("|---|---|---|")
    for measure, value, notes in rows:
        print(f"| {measure} | {value} | {notes} |")
    print(
        f"\n{os.cpu_count()} CPUs; `python scripts/bench_collector.py --keys {args.keys} "
        f"--latency-ms {args.latency_ms:g}`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
