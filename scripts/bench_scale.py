"""Benchmark the product at several fleet sizes side by side: first collection, no-change cycle, results refresh,
pages cold, with the collector's peak memory; prints a markdown table and the goals of issue 19.

    .venv/bin/python scripts/bench_scale.py [--keys 1000 10000] [--latency-ms 50] [--json FILE] [--no-pages]

Method, per fleet size (each step in a fresh process, so each peak RSS is that step's own):
1. the stand-in serves N keys (90 days, frozen clock, warmed, 50 ms per response) from a process of its own
   (scripts/bench_collector.py's start_stand_in);
2. first collection: `collect` as `collectors once` runs it (64 keys at once, one jobs page per key on a first run),
   in a child process; its peak RSS and its store worker's (a child of it, waited for before measuring) are
   reported apart: they are two processes, and their sum bounds what they hold together;
   meanwhile a reader in another process opens the database every half second (as a dashboard does): how
   long it waits for the collector's writer, and whether it ever gives up;
3. a no-change cycle right after (same clock): requests per key;
4. the results refresh on what was collected, in a child process;
5. every page rendered cold on that database (scripts/bench_pages_scale.py, AppTest, each page in its own
   process, --repeat 1, no naive comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_collector import ADMIN_TOKEN, ENDPOINTS, SIM_NOW, start_stand_in  # noqa: E402

GOALS = {"first_s": 60.0, "collector_rss_mb": 500.0, "requests_per_key": 3.0, "page_cold_s": 3.0}
MEMORY_GROWTH_GOAL = 0.20  # peak RSS at the largest fleet within 20 % of the smallest's
READ_EVERY_S = 0.5


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: KiB


def child_collect(config_path: str, db: str) -> dict[str, Any]:
    """One collection as the benchmark runs it; the store worker is ended before its peak is read."""
    from collectors.store_worker import store_worker
    from collectors.sync import collect
    from config import load_config

    base = load_config(config_path)
    config = dataclasses.replace(base, collector=dataclasses.replace(base.collector, max_job_pages_first_run=1))
    began = time.perf_counter()
    summary = asyncio.run(collect(config, db, endpoints=ENDPOINTS, now=lambda: SIM_NOW))
    seconds = time.perf_counter() - began
    store_worker().close()
    return {
        "seconds": seconds,
        "cpu_s": time.process_time(),
        "worker_cpu_s": (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(resource.RUSAGE_CHILDREN)),
        "keys": summary.keys_total,
        "keys_ok": summary.keys_ok,
        "requests": summary.requests,
        "retries": summary.retries,
        "rows": summary.rows_written,
        "status": summary.status,
        "collector_rss_mb": _peak_mb(resource.RUSAGE_SELF),
        "worker_rss_mb": _peak_mb(resource.RUSAGE_CHILDREN),
    }


def child_refresh(config_path: str, db: str) -> dict[str, Any]:
    from config import load_config
    from service.refresh import refresh_results

    config = load_config(config_path)
    began = time.perf_counter()
    done = refresh_results(db, config.rules, config.reconciliation, as_of=SIM_NOW)
    return {"seconds": time.perf_counter() - began, "line": done.line(), "rss_mb": _peak_mb(resource.RUSAGE_SELF)}


def child_read(db: str, stop: str) -> dict[str, Any]:
    """A dashboard-like reader in another process, every READ_EVERY_S until `stop` exists: how long it waited."""
    from store import StoreError, StoreNotReady, read_connection

    waits: list[float] = []
    errors: list[str] = []
    while not Path(stop).exists():
        began = time.monotonic()
        try:
            with read_connection(db) as con:
                con.execute("SELECT count(*) FROM collector_run_items").fetchall()
            waits.append(time.monotonic() - began)
        except StoreNotReady:
            pass
        except StoreError as exc:
            errors.append(str(exc))
        time.sleep(READ_EVERY_S)
    waits.sort()
    return {
        "reads": len(waits),
        "errors": errors,
        "median_s": waits[len(waits) // 2] if waits else None,
        "slowest_s": waits[-1] if waits else None,
    }


def _spawn(*args: str) -> dict[str, Any]:
    env = dict(os.environ, RBV_ADMIN_TOKEN=ADMIN_TOKEN)
    done = subprocess.run([sys.executable, __file__, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pages_cold(db: Path, folder: Path) -> dict[str, float]:
    out = folder / "pages.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_pages_scale.py"), "--db", str(db), "--now"]
    cmd += [SIM_NOW.isoformat(), "--repeat", "1", "--no-naive", "--sessions", "2", "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0 and not out.exists():
        raise SystemExit(f"bench_pages_scale failed:\n{done.stderr[-3000:]}")
    pages = json.loads(out.read_text(encoding="utf-8"))["pages"]
    return {title: page["cold_s"] for title, page in pages.items()}


def measure(n_keys: int, latency_ms: float, with_pages: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{n_keys}-") as tmp:
        folder = Path(tmp)
        print(f"{n_keys} keys: starting the stand-in (warming)", file=sys.stderr, flush=True)
        proc, config_path, warm_s = start_stand_in(n_keys, latency_ms, folder)
        db = folder / "monitor.duckdb"
        try:
            stop = folder / "stop-reading"
            reader = subprocess.Popen(
                [sys.executable, __file__, "--child", "read", str(db), str(stop)], cwd=ROOT, stdout=subprocess.PIPE
            )
            try:
                first = _spawn("--child", "collect", str(config_path), str(db))
            finally:
                stop.touch()
                out, _ = reader.communicate(timeout=120)
            first["reader"] = json.loads(out.decode().strip().splitlines()[-1])
            print(f"  first collection: {first}", file=sys.stderr, flush=True)
            cycle = _spawn("--child", "collect", str(config_path), str(db))
            print(f"  no-change cycle: {cycle}", file=sys.stderr, flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        refresh = _spawn("--child", "refresh", str(config_path), str(db))
        print(f"  refresh: {refresh['line']}", file=sys.stderr, flush=True)
        pages = pages_cold(db, folder) if with_pages else {}
        print(f"  pages cold: {pages}", file=sys.stderr, flush=True)
        size_mb = db.stat().st_size / 2**20
    return {
        "keys": n_keys,
        "warm_s": warm_s,
        "first": first,
        "cycle": cycle,
        "refresh": refresh,
        "pages": pages,
        "db_mb": size_mb,
    }


def table(results: list[dict[str, Any]], latency_ms: float) -> list[str]:
    def row(name: str, cells: list[str], goal: str) -> str:
        return f"| {name} | " + " | ".join(cells) + f" | {goal} |"

    head = "| measure | " + " | ".join(f"{r['keys']:,} keys" for r in results) + " | goal at the largest |"
    lines = [head, "|---" * (len(results) + 2) + "|"]
    lines.append(
        row(
            f"first collection at {latency_ms:g} ms",
            [
                f"{r['first']['seconds']:.1f} s ({r['first']['requests']:,} requests, {r['first']['rows']:,} rows)"
                for r in results
            ],
            f"≤ {GOALS['first_s']:.0f} s",
        )
    )
    lines.append(
        row(
            "CPU: collector, its store worker",
            [f"{r['first']['cpu_s']:.1f} s, {r['first'].get('worker_cpu_s', float('nan')):.1f} s" for r in results],
            "",
        )
    )
    lines.append(
        row(
            "collector peak RSS (its store worker's)",
            [f"{r['first']['collector_rss_mb']:.0f} MB ({r['first']['worker_rss_mb']:.0f} MB)" for r in results],
            f"≤ {GOALS['collector_rss_mb']:.0f} MB; within {100 * MEMORY_GROWTH_GOAL:.0f} % of the smallest",
        )
    )
    lines.append(
        row(
            "a reader in another process meanwhile: waits (median / slowest), errors",
            [
                f"{r['first']['reader']['median_s']:.2f} / {r['first']['reader']['slowest_s']:.2f} s over "
                f"{r['first']['reader']['reads']} reads, {len(r['first']['reader']['errors'])} errors"
                for r in results
            ],
            "no errors",
        )
    )
    lines.append(
        row(
            "no-change cycle",
            [
                f"{r['cycle']['requests'] / r['keys']:.2f} requests per key, {r['cycle']['seconds']:.1f} s, "
                f"{r['cycle']['rows']:,} rows changed"
                for r in results
            ],
            f"≤ {GOALS['requests_per_key']:g} requests per key",
        )
    )
    lines.append(
        row(
            "results refresh (peak RSS)",
            [f"{r['refresh']['seconds']:.1f} s ({r['refresh']['rss_mb']:.0f} MB)" for r in results],
            "",
        )
    )
    titles = list(results[0]["pages"])
    for title in titles:
        lines.append(
            row(f"page cold: {title}", [f"{r['pages'].get(title, float('nan')):.2f} s" for r in results], "≤ 3 s")
        )
    lines.append(row("database file", [f"{r['db_mb']:.0f} MB" for r in results], ""))
    return lines


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    small, large = results[0], results[-1]
    growth = large["first"]["collector_rss_mb"] / small["first"]["collector_rss_mb"] - 1
    worker_growth = large["first"]["worker_rss_mb"] / small["first"]["worker_rss_mb"] - 1
    checks = [
        ("first collection", large["first"]["seconds"] <= GOALS["first_s"], f"{large['first']['seconds']:.1f} s"),
        (
            "collector peak RSS",
            large["first"]["collector_rss_mb"] <= GOALS["collector_rss_mb"],
            f"{large['first']['collector_rss_mb']:.0f} MB (store worker {large['first']['worker_rss_mb']:.0f} MB)",
        ),
        (
            "memory growth",
            growth <= MEMORY_GROWTH_GOAL,
            f"collector {100 * growth:+.0f} %, store worker {100 * worker_growth:+.0f} % "
            f"from {small['keys']:,} to {large['keys']:,} keys",
        ),
        (
            "no-change requests per key",
            large["cycle"]["requests"] / large["keys"] <= GOALS["requests_per_key"],
            f"{large['cycle']['requests'] / large['keys']:.2f}",
        ),
    ]
    if large["pages"]:
        slowest = max(large["pages"], key=large["pages"].get)
        checks.append(("every page cold", large["pages"][slowest] <= GOALS["page_cold_s"], f"slowest {slowest}"))
    return [f"- {name}: {'met' if ok else 'MISSED'} ({detail})" for name, ok, detail in checks]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--no-pages", action="store_true", help="skip the page renders")
    p.add_argument("--json", help="also write all results to this file")
    p.add_argument("--child", choices=["collect", "refresh", "read"], help=argparse.SUPPRESS)
    p.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child = {"collect": child_collect, "refresh": child_refresh, "read": child_read}[args.child]
        print(json.dumps(child(*args.paths)))
        return 0
    os.environ["RBV_ADMIN_TOKEN"] = ADMIN_TOKEN
    results = [measure(n, args.latency_ms, not args.no_pages) for n in sorted(args.keys)]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    print("\n".join(table(results, args.latency_ms)))
    print("\n" + "\n".join(verdicts(results)))
    print(
        f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end; "
        f"`python scripts/bench_scale.py --keys {' '.join(map(str, sorted(args.keys)))} "
        f"--latency-ms {args.latency_ms:g}`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
