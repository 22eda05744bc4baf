"""Time the store's read functions on a (scale) database and summarise each statement's EXPLAIN ANALYZE plan."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import pkgutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402  (the benchmark inspects plans, so it talks to DuckDB itself)

import store  # noqa: E402
from store import lifecycle  # noqa: E402
from store.connection import read_connection, reading  # noqa: E402


class _Recorder:
    """A connection that remembers every statement (and its parameters) run through it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, log: list[tuple[str, list[Any] | None]]) -> None:
        self._con, self._log = con, log

    def execute(self, sql: str, params: Any = None) -> Any:
        self._log.append((sql, params))
        return self._con.execute(sql, params) if params is not None else self._con.execute(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def read_modules() -> list[Any]:
    """store.reads and every store/*_reads.py present now (others add them as pages grow)."""
    names = ["store.reads", "store.result_tables"] + sorted(
        f"store.{m.name}" for m in pkgutil.iter_modules(store.__path__) if m.name.endswith("_reads")
    )
    return [importlib.import_module(name) for name in names]


@contextlib.contextmanager
def recording(modules: list[Any], log: list[tuple[str, list[Any] | None]]) -> Iterator[None]:
    @contextlib.contextmanager
    def recorded(source: Any) -> Iterator[Any]:
        with reading(source) as con:
            yield _Recorder(con, log)

    saved = [(m, m.reading) for m in modules if hasattr(m, "reading")]
    for module, _ in saved:
        module.reading = recorded
    try:
        yield
    finally:
        for module, original in saved:
            module.reading = original


def context(db: Path) -> dict[str, Any]:
    """Arguments that make sense for this database: its 'now', a busy key, one of that key's jobs."""
    with read_connection(db) as con:
        row = con.execute("SELECT max(finished_at) FROM collector_runs").fetchall()[0]
        now = row[0] or datetime.now(UTC).replace(tzinfo=None)
        busy = con.execute(
            "SELECT key_name FROM usage_events WHERE occurred_at >= ? GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
            [now - timedelta(days=7)],
        ).fetchall()
        key = busy[0][0] if busy else None
        job = con.execute(
            "SELECT job_id FROM jobs WHERE key_name = ? ORDER BY created_at DESC LIMIT 1", [key]
        ).fetchall()
        views = [r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
    return {"now": now, "today": now.date(), "key": key, "job": job[0][0] if job else None, "views": views}


def calls(db: Path, ctx: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """How to call each known read function on a big account (the dashboard's default ranges)."""
    now, today, key, job = ctx["now"], ctx["today"], ctx["key"], ctx["job"]
    return {
        "reads.usage_totals": lambda f: f(db, today - timedelta(days=29), today),
        "reads.daily_usage": lambda f: f(db, today - timedelta(days=89), today),
        "reads.key_overview": lambda f: f(db, today - timedelta(days=29), today),
        "reads.table_counts": lambda f: f(db, ctx["views"]),
        "key_reads.hourly_activity": lambda f: f(db, now - timedelta(days=7), now),
        "key_reads.daily_activity": lambda f: f(db, today - timedelta(days=89), today),
        "key_reads.event_coverage": lambda f: f(db, now - timedelta(days=7)),
        "key_reads.governance_facts": lambda f: f(db, now, 90, 14, 30),
        "key_reads.key_activity": lambda f: f(db, today, 30),
        "key_reads.events_breakdowns": lambda f: f(db, key, now - timedelta(days=30), now),
        "key_reads.key_jobs": lambda f: f(db, key),
        "key_reads.job_history": lambda f: f(db, job),
        "credit_reads.jobs_with_charges": lambda f: f(db, now - timedelta(days=30), now),
        "credit_reads.orphan_charge_events": lambda f: f(db, now - timedelta(days=30), now),
        "credit_reads.daily_charges": lambda f: f(db, today - timedelta(days=30), today),
        "credit_reads.job_detail": lambda f: f(db, job),
    }


def infer_call(func: Callable[..., Any], db: Path, ctx: dict[str, Any]) -> Callable[[Any], Any] | None:
    """Arguments for a read function nobody listed in `calls`, from its parameter names and annotations."""
    now, today = ctx["now"], ctx["today"]
    args: list[Any] = [db]
    for param in list(inspect.signature(func).parameters.values())[1:]:
        text = str(param.annotation)
        is_day = "date" in text and "datetime" not in text
        value: Any = inspect.Parameter.empty
        if param.name in ("key_name", "key"):
            value = ctx["key"]
        elif param.name == "job_id":
            value = ctx["job"]
        elif param.name in ("start", "since"):
            value = today - timedelta(days=29) if is_day else now - timedelta(days=7)
        elif param.name in ("end", "until"):
            value = today if is_day else now
        elif param.name == "now":
            value = now
        elif param.name == "today":
            value = today
        elif param.name in ("current", "previous") and "tuple" in text:
            back = 0 if param.name == "current" else 30
            value = (today - timedelta(days=29 + back), today - timedelta(days=back))
        elif param.name == "views":
            value = ctx["views"]
        elif param.default is not inspect.Parameter.empty:
            break  # the rest keep their defaults
        elif "None" in text:
            value = None
        if value is inspect.Parameter.empty:
            return None
        args.append(value)
    return lambda f: f(*args)


def _plan_summary(con: duckdb.DuckDBPyConnection, sql: str, params: Any, top: int) -> dict[str, Any]:
    text = con.execute(f"EXPLAIN (ANALYZE, FORMAT json) {sql}", params).fetchall()[0][1]
    plan = json.loads(text)
    operators: list[tuple[float, str, int]] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") not in (None, "RESULT_COLLECTOR", "EXPLAIN_ANALYZE"):
            name = node["type"]
            table = (node.get("extra_info") or {}).get("Table")
            operators.append(
                (
                    float(node.get("timing", 0.0)),
                    f"{name}({table})" if table else name,
                    int(node.get("intermediate_rows", 0)),
                )
            )
        for child in node.get("children", []):
            walk(child)

    for node in plan.get("operator", []):
        walk(node)
    query = plan.get("query", {})
    operators.sort(reverse=True)
    return {
        "ms": 1000 * float(query.get("total_time", 0.0)),
        "cpu_ms": 1000 * float(query.get("cpu_time", 0.0)),
        "rows_scanned": int(query.get("total_rows_scanned", 0)),
        "row_groups": f"{query.get('total_row_groups_scanned', '?')}/{query.get('total_row_groups_to_scan', '?')}",
        "peak_mb": float(plan.get("system", {}).get("peak_buffer_memory", 0)) / 1e6,
        "top": operators[:top],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db", required=True, help="a database written by the collectors or simulator.scale")
    p.add_argument("--repeat", type=int, default=3, help="warm runs per function (median reported)")
    p.add_argument("--top", type=int, default=3, help="operators shown per statement")
    p.add_argument(
        "--generate",
        nargs=2,
        type=int,
        metavar=("KEYS", "DAYS"),
        help="first (re)generate the database with simulator.scale and time it",
    )
    p.add_argument("--now", default="2026-11-20T12:00:00Z", help="with --generate: the instant the data ends at")
    args = p.parse_args(argv)
    db = Path(args.db)

    if args.generate:
        from simulator.clock import parse_instant
        from simulator.scale import build

        result = build(
            db,
            args.generate[0],
            args.generate[1],
            now=parse_instant(args.now),
            force=True,
            progress=lambda m: print(f"  {m}", flush=True),
        )
        print(f"generated in {result.seconds:.1f} s: {result.line()}")
    if not db.exists():
        print(f"bench_store_queries: error: no database at {db}", file=sys.stderr)
        return 2
    found = lifecycle.info(db)
    print(f"database {db}: {found.file_bytes / 1e6:,.1f} MB, schema v{found.schema_version}")
    print("  " + ", ".join(f"{name} {count:,}" for name, count in found.tables.items() if count))
    ctx = context(db)
    print(f"  now {ctx['now']:%Y-%m-%d %H:%M}, busiest key (7 d) {ctx['key']}, threads {duckdb_threads(db)}")

    modules = read_modules()
    known = calls(db, ctx)
    results: list[tuple[str, str, float, float, list[tuple[str, Any]]]] = []
    skipped: list[str] = []
    for module in modules:
        short = module.__name__.split(".", 1)[1]
        for name, func in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or func.__module__ != module.__name__:
                continue
            label = f"{short}.{name}"
            invoke = known.get(label) or infer_call(func, db, ctx)
            if invoke is None:
                skipped.append(label)
                continue
            log: list[tuple[str, Any]] = []
            try:
                with recording(modules, log):
                    began = time.perf_counter()
                    invoke(func)
                    cold = time.perf_counter() - began
                warm_runs = []
                for _ in range(max(1, args.repeat)):
                    began = time.perf_counter()
                    invoke(func)
                    warm_runs.append(time.perf_counter() - began)
                results.append((label, "ok", cold, statistics.median(warm_runs), log))
            except Exception as exc:  # a function another engineer is changing must not stop the run
                results.append((label, f"error: {str(exc).splitlines()[0][:80]}", 0.0, 0.0, []))

    print(f"\n{'function':<36} {'first ms':>9} {'median ms':>10} {'stmts':>6}   (wall time, incl. opening the file)")
    for label, status, cold, warm, log in sorted(results, key=lambda r: -r[3]):
        if status != "ok":
            print(f"{label:<36} {status}")
            continue
        print(f"{label:<36} {1000 * cold:>9.1f} {1000 * warm:>10.1f} {len(log):>6}")
    if skipped:
        print(f"skipped (need arguments this script does not know yet): {', '.join(skipped)}")

    print("\nEXPLAIN ANALYZE per statement (engine time; row groups scanned/total; peak buffer; top operators):")
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("SET enable_progress_bar = false").fetchall()
        for label, status, _, _, log in sorted(results, key=lambda r: -r[3]):
            if status != "ok":
                continue
            for n, (sql, params) in enumerate(log, start=1):
                if not sql.lstrip().upper().startswith(("SELECT", "WITH", "FROM")):
                    continue
                try:
                    s = _plan_summary(con, sql, params, args.top)
                except duckdb.Error as exc:
                    print(f"  {label}#{n}: plan unavailable: {str(exc).splitlines()[0][:80]}")
                    continue
                if not s["top"]:
                    continue  # answered from metadata (count(*) of a table, a constant): nothing to plan
                ops = "; ".join(f"{op} {1000 * t:.1f} ms {rows:,} rows" for t, op, rows in s["top"])
                print(
                    f"  {label}#{n}: {s['ms']:.1f} ms (cpu {s['cpu_ms']:.1f}), {s['rows_scanned']:,} rows scanned, "
                    f"rg {s['row_groups']}, peak {s['peak_mb']:.1f} MB | {ops}"
                )
    finally:
        con.close()
    ok = [r for r in results if r[1] == "ok"]
    if ok:
        slowest = max(ok, key=lambda r: r[3])
        print(
            f"\n{len(ok)} functions timed, {len(results) - len(ok)} errors, {len(skipped)} skipped; "
            f"slowest median {1000 * slowest[3]:.0f} ms ({slowest[0]})"
        )
    return 0


def duckdb_threads(db: Path) -> str:
    with read_connection(db) as con:
        return str(con.execute("SELECT current_setting('threads')").fetchall()[0][0])


if __name__ == "__main__":
    sys.exit(main())
