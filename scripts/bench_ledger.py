"""Benchmark the ledger parser: time per row as the file grows (linear?), and hostile files refused by their bounds.

`.venv/bin/python scripts/bench_ledger.py` prints one line per case: bytes, best of 3 wall seconds, and
microseconds per line. Valid ledgers are built like the stand-in's (`simulator.ledger`): 9 columns, ~130 bytes
a row, in CSV with `,`, in CSV with `;` and decimal commas, and in JSON Lines.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.ledger import MAX_COLUMNS, parse_ledger  # noqa: E402

COLUMNS = "job_id,credits,key_name,project_id,model,output_format,duration_seconds,status,created_at"


def _row(i: int) -> list[str]:
    return [f"job_{i:08d}", f"{(i % 997) * 1.25:.2f}", f"svc-{i % 40}-prod", f"proj_svc{i % 40}", "pro", "mp4",
            f"{20 + i % 300:.1f}", "completed", f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00.000Z"]  # fmt: skip


def csv_ledger(rows: int) -> bytes:
    return (COLUMNS + "\n" + "".join(",".join(_row(i)) + "\n" for i in range(rows))).encode()


def semicolon_ledger(rows: int) -> bytes:
    lines = [COLUMNS.replace(",", ";")]
    for i in range(rows):
        cells = _row(i)
        cells[1] = f"{1000 + (i % 997) * 1.25:,.2f}".replace(",", " ").replace(".", ",")  # "1 001,25"
        lines.append(";".join(cells))
    return ("\n".join(lines) + "\n").encode()


def jsonl_ledger(rows: int) -> bytes:
    names = COLUMNS.split(",")
    rows_text = (json.dumps(dict(zip(names, _row(i), strict=True)), separators=(",", ":")) for i in range(rows))
    return "".join(line + "\n" for line in rows_text).encode()


def best_of(data: bytes, runs: int = 3) -> tuple[float, str]:
    best, outcome = float("inf"), ""
    for _ in range(runs):
        started = time.perf_counter()
        result = parse_ledger(data)
        best = min(best, time.perf_counter() - started)
        outcome = "ok" if result.ok else result.error_lines()[0][:70]
    return best, outcome


def main() -> int:
    print(f"{'case':<34} {'bytes':>12} {'best s':>8} {'µs/line':>8}  outcome")
    for name, build in (("csv ,", csv_ledger), ("csv ; decimal comma", semicolon_ledger), ("json lines", jsonl_ledger)):
        for rows in (20_000, 40_000, 80_000):
            data = build(rows)
            seconds, outcome = best_of(data)
            label, per_line = f"{name} {rows:,} rows", seconds / rows * 1e6
            print(f"{label:<34} {len(data):>12,} {seconds:>8.3f} {per_line:>8.1f}  {outcome}")
    wide = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1))
    hostile = {
        "header of 1,000,000 columns": b",".join(b"c%d" % i for i in range(1_000_000)) + b"\nj,1\n",
        f"header of {MAX_COLUMNS + 1} columns": (wide + "\nj,1\n").encode(),
        "1,000,001 rows": b"job_id,credits\n" + b"j,1\n" * 1_000_001,
    }
    for name, data in hostile.items():
        seconds, outcome = best_of(data)
        print(f"{name:<34} {len(data):>12,} {seconds:>8.3f} {'':>8}  {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
