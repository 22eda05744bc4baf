"""Render every dashboard page on the scale database (AppTest): cold and warm time, peak RSS, heavy query plans,
and the same page data computed the naive way (load whole tables into pandas) for comparison.

    .venv/bin/python scripts/bench_pages_scale.py [--db /tmp/scale.duckdb] [--now ISO] [--repeat 3] [--json FILE]

Method. Every measurement runs in its own fresh Python process (the parent only starts them and prints the
table), so peak RSS is that process's own `ru_maxrss` and nothing one page allocated inflates another.
A page process imports the app's modules, runs `AppTest.from_file("dashboard.py")` once on a tiny empty
database (pays imports and Streamlit's first-run cost, as a running server already has), then points RBV_DB
at the scale database and, `--repeat` times: clears `st.cache_data`, switches to the page and runs it
("cold": what an operator waits for after the cache expires or the data changes), then reruns it ("warm":
a widget change or a revisit within the cache's lifetime). Peak RSS is taken after the timed runs, before
EXPLAIN ANALYZE of the statements the cold run issued (recorded through the store's read modules).
One more process renders all pages one after another, like a dashboard server process serving a session,
and reports its peak RSS. The "naive" processes load `jobs` and `usage_events` whole (`SELECT *`) into
pandas and compute the heaviest pages' data (Credits' billing frames, the hourly per-key series behind the
Keys / Traffic / Anomalies pages) with pandas; their results are checked against the store reads.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported inside the measured functions, not at startup
    import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

PAGES = {
    "Overview": "pages/overview.py",
    "Keys": "pages/keys.py",
    "Key detail": "pages/key_detail.py",
    "Traffic explorer": "pages/traffic.py",
    "Anomalies": "pages/anomalies.py",
    "Credits": "pages/credits.py",
    "Weekly review": "pages/review.py",
    "Collection health": "pages/collection.py",
}
COLD_GOAL_S, WARM_GOAL_S, RSS_GOAL_MB = 2.0, 0.5, 600.0
DEFAULT_NOW = "2026-11-20T12:00:00"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _env(db: Path, now: str, state_dir: Path) -> None:
    os.environ["RBV_DB"] = str(db)
    os.environ["RBV_NOW"] = now
    os.environ.pop("RBV_CONFIG", None)
    os.environ.pop("RBV_DEMO", None)
    os.environ["RBV_STATE_DB"] = str(state_dir / "state.duckdb")


def _busiest_key(db: Path, now: datetime) -> str:
    from store.connection import read_connection

    with read_connection(db) as con:
        row = con.execute(
            "SELECT key_name FROM key_daily_usage WHERE day > ?::DATE - 7 GROUP BY 1 ORDER BY sum(calls) DESC LIMIT 1",
            [now],
        ).fetchone()
    return str(row[0])


def _warm_app(tiny_db: Path) -> None:
    """Pay imports and Streamlit's first script run on an empty database, so timings are the page's own."""
    from streamlit.testing.v1 import AppTest

    from store import write_transaction

    with write_transaction(tiny_db):
        pass
    saved = os.environ["RBV_DB"]
    os.environ["RBV_DB"] = str(tiny_db)
    try:
        at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=600).run()
        for path in PAGES.values():
            at.switch_page(path).run()
    finally:
        os.environ["RBV_DB"] = saved
    import altair  # noqa: F401  (charts are only built when there is data)
    import vl_convert  # noqa: F401


def child_pages(args: argparse.Namespace) -> dict[str, Any]:
    """Time the given pages in this process; with --plans, EXPLAIN ANALYZE what their cold runs issued."""
    import streamlit as st
    from streamlit import logger as st_logger
    from streamlit.testing.v1 import AppTest

    st_logger.set_log_level("error")
    db, now = Path(args.db), args.now
    out: dict[str, Any] = {"pages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        _env(db, now, Path(tmp))
        _warm_app(Path(tmp) / "tiny.duckdb")
        out["rss_after_imports_mb"] = _rss_mb()
        key = _busiest_key(db, datetime.fromisoformat(now))
        for title in args.pages:
            path = PAGES[title]
            statements: list[tuple[str, Any]] = []
            cold, cold_cpu, warm = [], [], []
            for n in range(args.repeat):
                at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=600)
                if title == "Key detail":
                    at.query_params["key"] = key
                _register_pages(at, Path(tmp) / "tiny.duckdb")
                at.switch_page(path)
                st.cache_data.clear()
                gc.collect()
                log: list[tuple[str, Any]] = statements if n == 0 else []
                with _recording(log):
                    began, cpu = time.perf_counter(), time.process_time()
                    at.run()
                    cold.append(time.perf_counter() - began)
                    cold_cpu.append(time.process_time() - cpu)
                if at.exception:
                    raise SystemExit(f"{title} raised: {at.exception[0].value}")
                began = time.perf_counter()
                at.run()
                warm.append(time.perf_counter() - began)
                if at.exception:
                    raise SystemExit(f"{title} raised on rerun: {at.exception[0].value}")
            out["pages"][title] = {
                "cold_s": statistics.median(cold),
                "cold_max_s": max(cold),
                "cold_cpu_s": statistics.median(cold_cpu),
                "warm_s": statistics.median(warm),
                "statements": len(statements),
            }
            out["pages"][title]["peak_rss_mb"] = _rss_mb()
            if args.plans:
                out["pages"][title]["plans"] = _plans(db, statements, args.top)
    out["peak_rss_mb"] = _rss_mb()
    return out


def child_concurrent(args: argparse.Namespace) -> dict[str, Any]:
    """The weekly review in a meeting: one session cold, then `--sessions` sessions at once in one process
    (threads, as a Streamlit server runs sessions), each time with `st.cache_data` cleared first."""
    import threading

    import streamlit as st
    from streamlit import logger as st_logger
    from streamlit.testing.v1 import AppTest

    st_logger.set_log_level("error")
    db = Path(args.db)
    with tempfile.TemporaryDirectory() as tmp:
        _env(db, args.now, Path(tmp))
        _warm_app(Path(tmp) / "tiny.duckdb")

        def session() -> Any:
            at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=600)
            _register_pages(at, Path(tmp) / "tiny.duckdb")
            return at.switch_page(PAGES["Weekly review"])

        def render(apps: list[Any]) -> float:
            st.cache_data.clear()
            gc.collect()
            errors: list[str] = []

            def run(at: Any) -> None:
                at.run()
                errors.extend(str(e.value) for e in at.exception)

            threads = [threading.Thread(target=run, args=(at,)) for at in apps]
            began = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise SystemExit(f"weekly review raised: {errors[0]}")
            return time.perf_counter() - began

        one = statistics.median(render([session()]) for _ in range(args.repeat))
        many = statistics.median(render([session() for _ in range(args.sessions)]) for _ in range(args.repeat))
    return {"one_s": one, "many_s": many, "sessions": args.sessions, "peak_rss_mb": _rss_mb()}


def _register_pages(at: Any, tiny_db: Path) -> None:
    """First run on the empty database: registers the pages (st.navigation) without rendering big data."""
    from ui.settings import load_settings

    saved = os.environ["RBV_DB"]
    os.environ["RBV_DB"] = str(tiny_db)
    try:
        at.run()
    finally:
        os.environ["RBV_DB"] = saved
    # After a switch_page AppTest runs the page on the session's state (dashboard.py's first run put the
    # tiny database's settings there), so point the session at the database under test, as the tests do.
    at.session_state["settings"] = load_settings([])


def _recording(log: list[tuple[str, Any]]) -> Any:
    """Record the statements the store's read modules run (`execute`, and `sql` for the Arrow reads)."""
    import bench_store_queries as bsq

    def sql(self: Any, query: str, params: Any = None, **kwargs: Any) -> Any:
        self._log.append((query, params))
        return self._con.sql(query, params=params, **kwargs)

    bsq._Recorder.sql = sql
    return bsq.recording(bsq.read_modules(), log)


def _plans(db: Path, statements: list[tuple[str, Any]], top: int) -> list[dict[str, Any]]:
    import duckdb
    from bench_store_queries import _plan_summary

    con = duckdb.connect(str(db), read_only=True)
    found = []
    try:
        con.execute("SET enable_progress_bar = false").fetchall()
        for sql, params in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "WITH", "FROM")):
                continue
            try:
                s = _plan_summary(con, sql, params, top)
            except duckdb.Error:
                continue
            if s["top"]:
                s["sql"] = " ".join(sql.split())[:160]
                found.append(s)
    finally:
        con.close()
    return sorted(found, key=lambda s: -s["ms"])[:top]


# --- naive: whole tables into pandas, the same aggregates computed there ---------------------------


def _naive_frames(db: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            name: con.execute(f"SELECT * FROM {name}").df()
            for name in ("jobs", "usage_events", "keys", "key_daily_usage", "coverage_gaps")
        }
    finally:
        con.close()


def naive_credits(db: Path, since: datetime, until: datetime) -> dict[str, Any]:
    """Credits page data: jobs in range with charge-event count/sum, orphan charges, daily charges."""
    import pandas as pd

    t = _naive_frames(db)
    jobs, ev, keys, usage = t["jobs"], t["usage_events"], t["keys"], t["key_daily_usage"]
    charge = ev[(ev["credits"] > 0) & ev["job_id"].notna()]
    per_job = charge.groupby("job_id").agg(
        charge_events=("event_id", "size"), charge_credits=("credits", "sum"), last_at=("occurred_at", "max")
    )
    in_range = jobs[(jobs["created_at"] >= since) & (jobs["created_at"] <= until)]
    with_charges = in_range.merge(keys[["key_name", "environment"]], on="key_name", how="left").merge(
        per_job, left_on="job_id", right_index=True, how="left"
    )
    with_charges["charge_events"] = with_charges["charge_events"].fillna(0).astype("int64")
    listed = set(jobs["job_id"])
    orphans = charge[~charge["job_id"].isin(listed)]
    orphans_in_range = orphans[(orphans["occurred_at"] >= since) & (orphans["occurred_at"] <= until)]
    job_part = (
        jobs.assign(day=jobs["created_at"].dt.floor("D"), c=jobs["credits_charged"].fillna(0.0))
        .groupby(["key_name", "day"])["c"]
        .sum()
    )
    dup = per_job[per_job["charge_events"] > 1].join(jobs.set_index("job_id")[["key_name", "credits_charged"]])
    dup = dup.assign(
        day=dup["last_at"].dt.floor("D"), c=(dup["charge_credits"] - dup["credits_charged"].fillna(0.0)).clip(lower=0)
    )
    extra_part = dup.groupby(["key_name", "day"])["c"].sum()
    orphan_part = orphans.assign(day=orphans["occurred_at"].dt.floor("D")).groupby(["key_name", "day"])["credits"].sum()
    charges = pd.concat([job_part, extra_part, orphan_part], axis=1).fillna(0.0).sum(axis=1).rename("charges")
    usage = usage.assign(day=pd.to_datetime(usage["day"]))
    days = usage[(usage["day"] >= pd.Timestamp(since.date())) & (usage["day"] <= pd.Timestamp(until.date()))]
    daily = days.merge(charges.reset_index(), on=["key_name", "day"], how="left").fillna({"charges": 0.0})
    return _credits_summary(with_charges, orphans_in_range, daily)


def ours_credits(db: Path, since: datetime, until: datetime) -> dict[str, Any]:
    from store import credit_reads

    jobs = credit_reads.jobs_with_charges(db, since, until)
    orphans = credit_reads.orphan_charge_events(db, since, until)
    daily = credit_reads.daily_charges(db, since.date(), until.date())
    return _credits_summary(jobs, orphans, daily)


def _credits_summary(jobs: pd.DataFrame, orphans: pd.DataFrame, daily: pd.DataFrame) -> dict[str, Any]:
    """What the naive and our Credits reads must agree on."""
    return {
        "jobs": len(jobs),
        "charge_events": int(jobs["charge_events"].sum()),
        "orphans": len(orphans),
        "daily_rows": len(daily),
        "daily_charges": round(float(daily["charges"].sum()), 2),
    }


def naive_hourly(db: Path, since: datetime, until: datetime) -> dict[str, Any]:
    """The hourly per-key calls (events) and jobs / failed / credits (jobs) behind Keys, Traffic, Anomalies."""
    t = _naive_frames(db)
    ev, jobs = t["usage_events"], t["jobs"]
    ev = ev[(ev["occurred_at"] >= since) & (ev["occurred_at"] < until)]
    calls = ev.groupby(["key_name", ev["occurred_at"].dt.floor("h")]).size()
    jobs = jobs[(jobs["created_at"] >= since) & (jobs["created_at"] < until)]
    per_hour = jobs.assign(hour=jobs["created_at"].dt.floor("h"), failed=jobs["status"].eq("failed")).groupby(
        ["key_name", "hour"]
    )
    jb = per_hour.agg(jobs=("job_id", "size"), failed=("failed", "sum"), credits=("credits_charged", "sum"))
    return {"calls": int(calls.sum()), "jobs": int(jb["jobs"].sum()), "failed": int(jb["failed"].sum())}


def ours_hourly(db: Path, since: datetime, until: datetime) -> dict[str, Any]:
    from store import key_reads

    frame = key_reads.hourly_activity(db, since, until)
    return {"calls": int(frame["calls"].sum()), "jobs": int(frame["jobs"].sum()), "failed": int(frame["failed"].sum())}


NAIVE = {
    "credits (30 d)": (naive_credits, ours_credits, 30),
    "hourly per key (90 d)": (naive_hourly, ours_hourly, 90),
}


def child_naive(args: argparse.Namespace) -> dict[str, Any]:
    import pandas  # noqa: F401  (imports are not what is compared)

    import store.credit_reads  # noqa: F401
    import store.key_reads  # noqa: F401

    naive, ours, days = NAIVE[args.case]
    now = datetime.fromisoformat(args.now)
    until = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    since = until - timedelta(days=days)
    func = naive if args.variant == "naive" else ours
    base = _rss_mb()
    began, cpu = time.perf_counter(), time.process_time()
    result = func(Path(args.db), since, until)
    return {
        "s": time.perf_counter() - began,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": _rss_mb(),
        "rss_before_mb": base,
        "result": result,
    }


# --- the parent ----------------------------------------------------------------------------------


def _spawn(argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_db(db: Path, now: str) -> None:
    from store.connection import read_connection

    if not db.is_file():
        raise SystemExit(
            f"no database at {db}: make it with `.venv/bin/python -m simulator.scale --keys 1000 --days 90 --db {db}`"
        )
    with read_connection(db) as con:
        keys, events, jobs = con.execute(
            "SELECT (SELECT count(*) FROM keys), (SELECT count(*) FROM usage_events), (SELECT count(*) FROM jobs)"
        ).fetchone()
    print(
        f"database {db}: {db.stat().st_size / 1e6:,.0f} MB, {keys:,} keys, {events:,} events, {jobs:,} jobs; now {now}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="/tmp/scale.duckdb")
    p.add_argument("--now", default=DEFAULT_NOW, help="RBV_NOW: the scale database's last instant")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--top", type=int, default=3, help="heaviest statements shown per page")
    p.add_argument("--pages", nargs="*", default=list(PAGES), choices=list(PAGES))
    p.add_argument("--no-naive", action="store_true")
    p.add_argument("--json", help="also write all results to this file")
    p.add_argument("--sessions", type=int, default=6, help="concurrent weekly-review sessions (default 6)")
    p.add_argument("--child", choices=["pages", "naive", "concurrent"], help=argparse.SUPPRESS)
    p.add_argument("--plans", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.now = args.now.replace("Z", "")
    # dashboard.py reads `--db` from the command line before RBV_DB: the page processes must not show it ours.
    sys.argv = sys.argv[:1]

    if args.child == "pages":
        print(json.dumps(child_pages(args), default=str))
        return 0
    if args.child == "naive":
        print(json.dumps(child_naive(args), default=str))
        return 0
    if args.child == "concurrent":
        print(json.dumps(child_concurrent(args), default=str))
        return 0

    db = Path(args.db)
    _check_db(db, args.now)
    print(
        f"machine: {os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"{platform.python_implementation()} {platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    common = ["--db", str(db), "--now", args.now, "--top", str(args.top)]
    results: dict[str, Any] = {"pages": {}, "started": datetime.now(UTC).isoformat()}
    print(f"\n{'page':<19}{'cold s':>8}{'max s':>8}{'cpu s':>7}{'warm s':>8}{'peak RSS MB':>13}  goals")
    over = False
    for title in args.pages:
        r = _spawn(["--child", "pages", "--pages", title, "--repeat", str(args.repeat), "--plans", *common])
        page = r["pages"][title] | {"rss_after_imports_mb": r["rss_after_imports_mb"]}
        results["pages"][title] = page
        misses = [
            name
            for name, bad in (
                ("cold", page["cold_s"] > COLD_GOAL_S),
                ("warm", page["warm_s"] > WARM_GOAL_S),
                ("RSS", page["peak_rss_mb"] > RSS_GOAL_MB),
            )
            if bad
        ]
        over |= bool(misses)
        print(
            f"{title:<19}{page['cold_s']:>8.2f}{page['cold_max_s']:>8.2f}{page['cold_cpu_s']:>7.2f}"
            f"{page['warm_s']:>8.2f}{page['peak_rss_mb']:>13.0f}  {'MISS ' + ', '.join(misses) if misses else 'ok'}",
            flush=True,
        )
    session = _spawn(["--child", "pages", "--pages", *args.pages, "--repeat", "1", *common])
    results["session_peak_rss_mb"] = session["peak_rss_mb"]
    results["rss_after_imports_mb"] = session["rss_after_imports_mb"]
    print(
        f"one process rendering all {len(args.pages)} pages (cold then warm): peak RSS "
        f"{session['peak_rss_mb']:.0f} MB (after imports {session['rss_after_imports_mb']:.0f} MB)"
    )

    if "Weekly review" in args.pages:
        meeting = _spawn(["--child", "concurrent", "--sessions", str(args.sessions), "--repeat", "2", *common])
        results["weekly_review_concurrent"] = meeting
        ratio = meeting["many_s"] / meeting["one_s"]
        over |= ratio > 2.0
        print(
            f"weekly review, {meeting['sessions']} sessions at once in one process: {meeting['many_s']:.2f} s "
            f"vs one session {meeting['one_s']:.2f} s ({ratio:.1f}x; goal <= 2x) "
            f"{'ok' if ratio <= 2.0 else 'MISS'}; peak RSS {meeting['peak_rss_mb']:.0f} MB"
        )

    print("\nheaviest statements of each page's cold run (EXPLAIN ANALYZE: engine ms, rows scanned, peak buffer):")
    for title, page in results["pages"].items():
        for s in page.get("plans", []):
            ops = "; ".join(f"{op} {1000 * t:.0f} ms" for t, op, _ in s["top"])
            print(
                f"  {title:<18} {s['ms']:>7.1f} ms  {s['rows_scanned']:>11,} rows  {s['peak_mb']:>6.1f} MB  | {ops}"
                f"\n  {'':<18} {s['sql'][:110]}"
            )

    if not args.no_naive:
        results["naive"] = {}
        print(
            f"\n{'naive vs ours':<24}{'naive s':>9}{'ours s':>8}{'ratio':>7}{'naive MB':>10}{'ours MB':>9}{'ratio':>7}"
        )
        for case in NAIVE:
            naive = _spawn(["--child", "naive", "--case", case, "--variant", "naive", *common])
            ours = _spawn(["--child", "naive", "--case", case, "--variant", "ours", *common])
            same = naive["result"] == ours["result"]
            results["naive"][case] = {"naive": naive, "ours": ours, "same_result": same}
            print(
                f"{case:<24}{naive['s']:>9.2f}{ours['s']:>8.2f}{naive['s'] / ours['s']:>6.1f}x"
                f"{naive['peak_rss_mb']:>10.0f}{ours['peak_rss_mb']:>9.0f}"
                f"{naive['peak_rss_mb'] / ours['peak_rss_mb']:>6.1f}x"
                + ("" if same else f"  RESULTS DIFFER: naive {naive['result']} ours {ours['result']}")
            )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
