"""Measure how long the Keys, Key detail and Traffic pages take to render (AppTest) on a collected database.

    .venv/bin/python scripts/bench_pages_keys.py [--db data/demo/demo.duckdb] [--config FILE] [--now ISO]

"cold" is a page's first run with empty caches (what an operator waits for after the 30 s cache expires);
"warm" is a rerun (a widget change). Imports are paid once before timing, since a running server has them.
Wall time depends on what else the machine runs, so the process CPU time of the cold run is shown too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit import logger as st_logger  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from ui.settings import Settings  # noqa: E402

PAGES = {"Keys": ("keys", {}), "Key detail": ("key_detail", {"key": None}), "Traffic explorer": ("traffic", {})}
BUDGET_S = 1.0


def _app(page: str, settings: Settings, query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=120)
    at.session_state["settings"] = settings
    for key, value in query.items():
        at.query_params[key] = value
    return at


def _timed_run(at: AppTest) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one run."""
    start, cpu = time.perf_counter(), time.process_time()
    at.run()
    elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
    if at.exception:
        raise SystemExit(f"page raised: {at.exception[0].value}")
    return elapsed, cpu_used


def _busiest_key(db: Path) -> str:
    from store.key_reads import key_inventory

    keys = key_inventory(db)
    ranked = keys.sort_values("last_used_at", ascending=False, na_position="last")
    return str(ranked["key_name"].iloc[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(ROOT / "data" / "demo" / "demo.duckdb"))
    parser.add_argument("--config", default=None)
    parser.add_argument("--now", default=None, help="pin the dashboard's clock (RBV_NOW), for frozen worlds")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    db = Path(args.db)
    if not db.is_file():
        print(f"no database at {db}: run `make run` once (the demo) or pass --db", file=sys.stderr)
        return 2
    if args.now:
        os.environ["RBV_NOW"] = args.now
    settings = Settings(db_path=db, config_path=Path(args.config) if args.config else None, demo=True)
    key = _busiest_key(db)
    import streamlit as st

    st_logger.set_log_level("error")  # bare-mode AppTest warns on every run; the table is the output
    _app("traffic", settings, {}).run()  # pay the imports once
    print(f"database {db} · {args.repeat} repetitions · budget {BUDGET_S:.1f} s")
    print(f"{'page':<18}{'cold median':>12}{'cold max':>10}{'cold CPU':>10}{'warm median':>13}")
    over = False
    for title, (page, query) in PAGES.items():
        query = {k: (v or key) for k, v in query.items()}
        cold, cold_cpu, warm = [], [], []
        for _ in range(args.repeat):
            st.cache_data.clear()
            at = _app(page, settings, query)
            wall, cpu = _timed_run(at)
            cold.append(wall)
            cold_cpu.append(cpu)
            warm.append(_timed_run(at)[0])
        over |= statistics.median(cold) > BUDGET_S
        print(
            f"{title:<18}{statistics.median(cold):>11.3f}s{max(cold):>9.3f}s{statistics.median(cold_cpu):>9.3f}s"
            f"{statistics.median(warm):>12.3f}s"
        )
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
