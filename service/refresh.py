"""The results refresh: after a collection the one writer computes the findings once and stores them.

Read everything from one snapshot (the data of one moment), a key group at a time (its frames released
before the next group is read), then replace the stored results in one transaction (store.result_tables):
killing it half-way leaves the previous results readable, and running it again for the same data writes the
same rows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from analytics import credits
from analytics.credits import GroupReconciliation
from analytics.keys import GroupFindings, Rules, evaluate_groups
from analytics.review import build_review, default_week
from collectors.store_worker import release_memory
from service import credits as credit_cases
from service.anomalies import Detected, combine_detected, detect_incidents
from service.keys import group_findings
from service.results import settings_tag
from service.review import assemble_inputs, review_span, week_discrepancies, week_reconciliation
from store import Snapshot, StoreError, key_reads, result_tables, snapshot
from store.result_tables import ResultSet, Spool


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


# Keys computed together: the frames of one group are what the refresh holds at a time, so its memory does not
# grow with the fleet. The detector scores a group's whole history as hours x keys matrices (~0.8 MB per key
# over 90 days): its groups are smaller.
GROUP_KEYS = 500
DETECT_GROUP_KEYS = 100


def _split(names: list[str], size: int) -> list[list[str]]:
    """`names` in groups of `size` (one empty group when there are none)."""
    return [names[first : first + size] for first in range(0, max(len(names), 1), size)]


def _fleet_findings(snap: Snapshot, at: datetime, rules: Rules, groups: list[list[str]]) -> pd.DataFrame:
    """Every finding as of `at`: the per-key rules a group at a time, then the rules comparing keys once over
    the groups' small parts (analytics.keys.evaluate_groups, as the Dask engine runs them)."""
    parts: list[GroupFindings] = []
    for keys in groups:
        parts.append(group_findings(snap, at, rules, keys))
        release_memory()  # the group's frames are gone: hand their memory back before the next group reads
    return evaluate_groups(parts, at, rules)


def _compute(
    snap: Snapshot,
    as_of: datetime,
    rules: Rules,
    settings: credits.ReconcileSettings,
    group_keys: int,
    detect_group_keys: int,
    credit_days: Spool,
) -> list[ResultSet]:
    """Every result kind over the fleet, computed key group by key group as the Dask engine runs them
    (service.engine): per-key results per group, then what compares keys with each other once over them."""
    span = review_span(default_week(as_of), as_of)
    names = key_reads.refresh_key_names(snap)
    groups, detect_groups = _split(names, group_keys), _split(names, detect_group_keys)
    # Findings one instant at a time (now, then the review's two): each holds every key's traffic profile.
    findings = {at: _fleet_findings(snap, at, rules, groups) for at in (as_of, span.findings_at, span.previous_at)}
    # Then the incidents, then the credits: a pass's transient frames never meet another pass's kept parts.
    found: list[Detected] = []
    for keys in detect_groups:
        found.append(detect_incidents(snap, as_of, keys=keys))
        release_memory()
    credit_groups: list[credit_cases.StoredGroup] = []
    week_groups: list[GroupReconciliation] = []
    for keys in groups:
        group, days = credit_cases.stored_group(snap, settings, as_of, keys)
        credit_groups.append(group)
        credit_days.add(days)  # final per key: written out, not kept
        del days
        if span.judged:
            week_groups.append(week_reconciliation(snap, span, settings, keys))
        release_memory()
    detected = combine_detected(found)
    judged = credit_cases.stored_frames(credit_groups, as_of)
    inputs = assemble_inputs(
        snap,
        span,
        settings,
        findings[span.findings_at] if span.judged else None,
        findings[span.previous_at],
        week_discrepancies(week_groups) if span.judged else None,
        detected.incidents,
    )
    review = build_review({**inputs, "decisions": None}, span.week, as_of)
    tags = {"rules": settings_tag(rules), "settings": settings_tag(settings)}
    return [
        ResultSet("findings", {"key_findings": findings[as_of]}, detail={"rules": tags["rules"]}),
        ResultSet(
            "incidents",
            {"incidents": detected.incidents, "series_keys": pd.DataFrame({"key_name": detected.keys})},
        ),
        ResultSet(
            "credits",
            {"discrepancies": judged.found, "credit_days": credit_days, "summary_days": judged.summary_days},
            window_start=judged.start,
            window_end=as_of,
            detail={"settings": tags["settings"], "pricing": judged.pricing.__dict__},
        ),
        ResultSet(
            "review",
            {"review": pd.DataFrame({"week": [span.week], "review": [json.dumps(review, default=str)]})},
            detail={**tags, "week": span.week},
        ),
    ]


def refresh_results(
    db_path: str | Path,
    rules: Rules,
    settings: credits.ReconcileSettings,
    as_of: datetime | None = None,
    group_keys: int = GROUP_KEYS,
    detect_group_keys: int = DETECT_GROUP_KEYS,
) -> RefreshSummary:
    """Compute key findings, incidents, the last month's reconciliation by day and the last full week's
    review as of `as_of` (default: now, UTC), and store them stamped with it and the collection run read.

    The keys are read and computed `group_keys` (the detector: `detect_group_keys`) at a time from one
    snapshot; the results equal those of one group holding every key."""
    began, cpu = time.monotonic(), time.process_time()
    as_of = as_of or _utc_now()
    refresh_id = result_tables.begin_refresh(db_path, as_of, _utc_now())  # (migrates an older file first)
    try:
        with Spool(credits.CREDIT_DAY_ORDER) as credit_days:
            with snapshot(db_path) as snap:
                mark = result_tables.data_mark(snap)  # the newest collection this snapshot holds
                results = _compute(snap, as_of, rules, settings, group_keys, detect_group_keys, credit_days)
            seconds, cpu_seconds = time.monotonic() - began, time.process_time() - cpu
            result_tables.store_results(db_path, refresh_id, as_of, mark, results, _utc_now(), seconds, cpu_seconds)
    except BaseException as exc:
        result_tables.fail_refresh(db_path, refresh_id, f"{type(exc).__name__}: {exc}", _utc_now())
        raise
    frames = {r.kind: r.frames for r in results}
    rows = {
        "findings": len(frames["findings"]["key_findings"]),
        "incidents": len(frames["incidents"]["incidents"]),
        "discrepancies": len(frames["credits"]["discrepancies"]),
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
