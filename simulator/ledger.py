"""Generate the team's own job ledger (CSV) for a period, with injected disagreements recorded as truth."""

from __future__ import annotations

import csv
import hashlib
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .catalog import MODEL_RATES, MODELS
from .clock import iso, to_ms
from .world import World

COLUMNS = (
    "job_id",
    "credits",
    "key_name",
    "project_id",
    "model",
    "output_format",
    "duration_seconds",
    "status",
    "created_at",
)
_TERMINAL = ("completed", "failed")


def _project(name: str) -> str:
    service = name.lower().replace("_", "-")
    for env in ("-prod", "-staging", "-dev"):
        if service.endswith(env):
            service = service[: -len(env)]
    return "proj_" + service


def build_ledger(world: World, now: datetime, days: int = 30) -> tuple[list[dict], list[dict]]:
    """Ledger rows (oldest first) covering jobs created in [now - days, now], and the injected issues.

    Covers the managed, enabled keys (the ones the team calls with). Rows carry each job's final
    outcome (the team books a job when it settles). Issues: {category, key_name, job_id, field,
    ledger_value, provider_value} with category missing_in_provider | missing_in_ledger | ledger_mismatch.
    """
    start = now - timedelta(days=days)
    settled_view = now + timedelta(minutes=15)
    billing_jobs = {item["job_id"] for item in world.billing_issues() if item["job_id"]}
    rows: list[dict] = []
    for spec in world.keys():
        if not spec.managed or not spec.enabled:
            continue
        for job in world.jobs(spec.name, now):
            if job["created_at"] < iso(start):
                break
            if job["status"] not in _TERMINAL:
                job = world.job(spec.name, job["id"], settled_view) or job
            rows.append(
                {
                    "job_id": job["id"],
                    "credits": job["credits"],
                    "key_name": spec.name,
                    "project_id": _project(spec.name),
                    "model": job["model"],
                    "output_format": job["output_format"],
                    "duration_seconds": job["duration_seconds"],
                    "status": job["status"],
                    "created_at": job["created_at"],
                }
            )
    rows.sort(key=lambda r: (r["created_at"], r["job_id"]))
    rng = np.random.default_rng([world.seed, 4242, days, to_ms(now) // 3_600_000])
    lo, hi = iso(start + timedelta(days=1)), iso(now - timedelta(hours=1))
    candidates = [
        i
        for i, r in enumerate(rows)
        if lo <= r["created_at"] <= hi and r["job_id"] not in billing_jobs and r["credits"] >= 10
    ]
    issues: list[dict] = []
    if len(candidates) < 7:
        return rows, issues
    picks = [candidates[int(i)] for i in rng.choice(len(candidates), size=7, replace=False)]
    for n, i in enumerate(picks[3:]):
        row = rows[i]
        field = ("model", "status", "credits", "credits")[n]
        provider = row[field]
        if field == "model":
            row["model"] = MODELS[(MODELS.index(row["model"]) + 1) % len(MODELS)]
        elif field == "status":
            row["status"] = "failed" if row["status"] == "completed" else "completed"
        else:
            row["credits"] = round(row["credits"] * float(rng.uniform(0.7, 0.9)), 2)
        issues.append(
            {
                "category": "ledger_mismatch",
                "key_name": row["key_name"],
                "job_id": row["job_id"],
                "field": field,
                "ledger_value": row[field],
                "provider_value": provider,
            }
        )
    for i in picks[:3]:
        row = rows[i]
        issues.append(
            {
                "category": "missing_in_ledger",
                "key_name": row["key_name"],
                "job_id": row["job_id"],
                "field": None,
                "ledger_value": None,
                "provider_value": None,
            }
        )
    dropped = set(picks[:3])
    rows = [r for i, r in enumerate(rows) if i not in dropped]
    owners = sorted({r["key_name"] for r in rows})
    for k in range(3):
        key_name = owners[int(rng.integers(len(owners)))]
        at = start + timedelta(seconds=float(rng.uniform(86_400, (now - start).total_seconds() - 3600)))
        model = int(rng.integers(len(MODELS)))
        duration = round(float(rng.uniform(20, 200)), 1)
        job_id = "job_" + hashlib.blake2b(f"{world.seed}|ghost|{k}|{iso(at)}".encode(), digest_size=12).hexdigest()
        ghost = {
            "job_id": job_id,
            "credits": round(duration / 60 * MODEL_RATES[model], 2),
            "key_name": key_name,
            "project_id": _project(key_name),
            "model": MODELS[model],
            "output_format": "mp4",
            "duration_seconds": duration,
            "status": "completed",
            "created_at": iso(at),
        }
        rows.append(ghost)
        issues.append(
            {
                "category": "missing_in_provider",
                "key_name": key_name,
                "job_id": job_id,
                "field": None,
                "ledger_value": None,
                "provider_value": None,
            }
        )
    rows.sort(key=lambda r: (r["created_at"], r["job_id"]))
    return rows, issues


def write_ledger(world: World, path: str | Path, now: datetime | None = None, days: int = 30) -> list[dict]:
    """Write the ledger CSV; return its injected issues (also kept as world.ledger_truth)."""
    rows, issues = build_ledger(world, now or world.now(), days)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    world.ledger_truth = issues
    return issues
