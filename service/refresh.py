"""The results refresh: after a collection the one writer computes the findings once and stores them.

Read everything from one snapshot (the data of one moment), compute with no connection held, then replace
the stored results in one transaction (store.result_tables): killing it half-way leaves the previous
results readable, and running it again for the same data writes the same rows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from analytics import credits
from analytics.keys import Rules
from analytics.review import build_review, default_week
from service import credits as credit_cases
from service.anomalies import detect_incidents
from service.keys import evaluate_findings
from service.results import settings_tag
from service.review import load_inputs
from store import StoreError, result_tables, snapshot
from store.result_tables import ResultSet


@dataclass(frozen=True)
class RefreshSummary:
    refresh_id: int
    as_of: datetime
    data_run_id: int | None
    seconds: float
    cpu_seconds: float
    rows: dict[str, int]

    def line(self) -> str:
        counts = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in self.rows.items())
        run = f"run {self.data_run_id}" if self.data_run_id is not None else "no run yet"
        return (
            f"results {self.refresh_id} as of {self.as_of:%Y-%m-%d %H:%M} UTC ({run}): {counts} "
            f"in {self.seconds:.1f}s ({self.cpu_seconds:.1f}s CPU)"
        )


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def refresh_results(
    db_path: str | Path,
    rules: Rules,
    settings: credits.ReconcileSettings,
    as_of: datetime | None = None,
) -> RefreshSummary:
    """Compute key findings, incidents, the last month's reconciliation by day and the last full week's
    review as of `as_of` (default: now, UTC), and store them stamped with it and the collection run read."""
    began, cpu = time.monotonic(), time.process_time()
    as_of = as_of or _utc_now()
    refresh_id = result_tables.begin_refresh(db_path, as_of, _utc_now())  # (migrates an older file first)
    try:
        with snapshot(db_path) as snap:
            mark = result_tables.data_mark(snap)  # the newest collection this snapshot holds
            findings = evaluate_findings(snap, as_of, rules)
            detected = detect_incidents(snap, as_of)
            judged, window_start = credit_cases.stored_frames(snap, settings, as_of)
            week = default_week(as_of)
            review = build_review(
                {**load_inputs(snap, week, as_of, rules, settings, detected.incidents), "decisions": None},
                week,
                as_of,
            )
        tags = {"rules": settings_tag(rules), "settings": settings_tag(settings)}
        results = [
            ResultSet("findings", {"key_findings": findings}, detail={"rules": tags["rules"]}),
            ResultSet(
                "incidents",
                {"incidents": detected.incidents, "series_keys": pd.DataFrame({"key_name": detected.keys})},
            ),
            ResultSet(
                "credits",
                {"discrepancies": judged.found, "credit_days": judged.days, "summary_days": judged.summary_days},
                window_start=window_start,
                window_end=as_of,
                detail={"settings": tags["settings"], "pricing": judged.pricing.__dict__},
            ),
            ResultSet(
                "review",
                {"review": pd.DataFrame({"week": [week], "review": [json.dumps(review, default=str)]})},
                detail={**tags, "week": week},
            ),
        ]
        seconds, cpu_seconds = time.monotonic() - began, time.process_time() - cpu
        result_tables.store_results(db_path, refresh_id, as_of, mark, results, _utc_now(), seconds, cpu_seconds)
    except BaseException as exc:
        result_tables.fail_refresh(db_path, refresh_id, f"{type(exc).__name__}: {exc}", _utc_now())
        raise
    rows = {
        "findings": len(findings),
        "incidents": len(detected.incidents),
        "discrepancies": len(judged.found),
    }
    return RefreshSummary(refresh_id, as_of, mark.run_id, seconds, cpu_seconds, rows)


def refresh_due(db_path: str | Path, now: datetime, max_age_s: float = 3600.0) -> bool:
    """True when a collection finished after the stored results' run, or they are older than `max_age_s`
    (findings such as staleness move with time even when no data arrives), or there are none."""
    try:
        meta = result_tables.current_results(db_path).get("findings")
        mark = result_tables.data_mark(db_path)
    except StoreError:
        return True
    if meta is None:
        return True
    newer = mark.run_id is not None and (meta.data_run_id is None or mark.run_id > meta.data_run_id)
    return newer or (now - meta.as_of).total_seconds() >= max_age_s
