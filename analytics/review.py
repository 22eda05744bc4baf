"""The weekly key review: what changed in an ISO week, what needs a decision, and how far to trust it.

Pure over its inputs (service.review reads them from one snapshot of the store): `build_review` makes the
review as plain data, `attach_decisions` adds the decisions recorded so far (they change between reads).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from analytics import credits
from analytics.export import to_records
from analytics.keys import FINDINGS, STALE_FINDINGS
from analytics.traffic import top_movers

SECTIONS = (
    "week",
    "decisions_needed",
    "stale_keys",
    "governance",
    "new_keys",
    "rotations",
    "anomalies",
    "top_movers",
    "credits_by_environment",
    "credits_by_model",
    "reconciliation",
    "collector_health",
    "decisions",
)
ROTATION_FINDINGS = ("rotation_overdue", "rotation_due")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class WeekError(ValueError):
    """A week that is not YYYY-Www, or not a real ISO week."""


def parse_week(text: str) -> tuple[int, int]:
    match = _WEEK.match(text.strip())
    if not match:
        raise WeekError(f"week '{text}' is not an ISO week like 2026-W46")
    year, week = int(match.group(1)), int(match.group(2))
    try:
        date.fromisocalendar(year, week, 1)
    except ValueError:
        raise WeekError(f"week '{text}' does not exist (year {year} has no week {week})") from None
    return year, week


def week_label(day: date) -> str:
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def default_week(now: datetime) -> str:
    """The last full ISO week before `now`."""
    return week_label(now.date() - timedelta(days=now.date().weekday() + 7))


def week_bounds(week: str) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) of an ISO week, naive UTC."""
    year, number = parse_week(week)
    monday = date.fromisocalendar(year, number, 1)
    start = datetime(monday.year, monday.month, monday.day)
    return start, start + timedelta(days=7)


def anomaly_section(found: pd.DataFrame) -> dict[str, Any]:
    """The review's incidents section from the incidents that touch its week (any columns the detector gave):
    the alert-worthy ones listed, the minor ones counted."""
    minor = int((~found["alert_worthy"].astype(bool)).sum()) if "alert_worthy" in found else 0
    if "alert_worthy" in found:
        found = found[found["alert_worthy"].astype(bool)]
    columns = [
        c
        for c in ("key_name", "metric", "direction", "grain", "severity", "start", "end", "peak_score", "expected",
                  "observed")
        if c in found
    ]  # fmt: skip
    frame = found[columns].copy()
    for name in ("peak_score", "expected", "observed"):
        if name in frame:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").round(2)
    return {"available": True, "reason": "", "incidents": to_records(frame), "minor": minor}


def _pairs(findings: pd.DataFrame | None) -> set[tuple[str, str]]:
    if findings is None or findings.empty:
        return set()
    return set(zip(findings["key_name"], findings["finding"], strict=True))


def _finding_rows(findings: pd.DataFrame | None, pairs: set[tuple[str, str]]) -> list[dict[str, Any]]:
    if findings is None or findings.empty or not pairs:
        return []
    mask = [(k, f) in pairs for k, f in zip(findings["key_name"], findings["finding"], strict=True)]
    rows = findings[mask][["key_name", "finding", "detail", "since"]]
    return to_records(rows.assign(label=rows["finding"].map(FINDINGS)).sort_values(["key_name", "finding"]))


def _in_days(frame: pd.DataFrame, column: str, start: datetime, end: datetime) -> pd.DataFrame:
    if frame.empty:
        return frame
    days = pd.to_datetime(frame[column])
    return frame[(days >= pd.Timestamp(start)) & (days < pd.Timestamp(end))]


def _change(current: float, previous: float) -> dict[str, Any]:
    change = current - previous
    return {
        "current": round(float(current), 2),
        "previous": round(float(previous), 2),
        "change": round(float(change), 2),
        "change_pct": round(change / previous * 100, 1) if previous else None,
    }


def _wow(frame: pd.DataFrame, by: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    prev = _in_days(frame, "day", start - timedelta(days=7), start)
    cur = _in_days(frame, "day", start, end)
    a = cur.groupby(by)["credits"].sum() if not cur.empty else pd.Series(dtype=float)
    b = prev.groupby(by)["credits"].sum() if not prev.empty else pd.Series(dtype=float)
    groups = sorted(set(a.index) | set(b.index))
    rows = [{by: g, **_change(a.get(g, 0.0), b.get(g, 0.0))} for g in groups]
    return sorted(rows, key=lambda r: (-r["current"], r[by]))


def _movers(frame: pd.DataFrame, value: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    prev = _in_days(frame, "day", start - timedelta(days=7), start)
    cur = _in_days(frame, "day", start, end)
    empty = pd.DataFrame({"key_name": pd.Series(dtype=str), value: pd.Series(dtype=float)})
    moved = top_movers(cur if not cur.empty else empty, prev if not prev.empty else empty, value=value, limit=10)
    moved["change_pct"] = (moved["change_pct"] * 100).round(1)
    return to_records(moved.round({"current": 2, "previous": 2, "change": 2}))


def build_review(inputs: Mapping[str, Any], week: str, now: datetime) -> dict[str, Any]:
    """The review of ISO `week` as plain data (JSON-ready), every section present even for an empty week,
    with the decisions of `inputs["decisions"]` (when given) attached."""
    review = _review(inputs, week, now)
    decisions = inputs.get("decisions")
    return attach_decisions(review, decisions) if decisions is not None else review


def attach_decisions(review: Mapping[str, Any], decisions: pd.DataFrame) -> dict[str, Any]:
    """The review with each flagged key's last decision and the decisions section filled from `decisions`
    (the newest decision per key); the review given is left as it was."""
    last_by_key = {r["key_name"]: r for r in to_records(decisions)} if not decisions.empty else {}
    out = dict(review)
    out["decisions_needed"] = [
        {**item, "last_decision": last_by_key.get(item["key_name"])} for item in review["decisions_needed"]
    ]
    out["decisions"] = sorted(last_by_key.values(), key=lambda r: r["key_name"])
    return out


def _review(inputs: Mapping[str, Any], week: str, now: datetime) -> dict[str, Any]:
    start, end = week_bounds(week)
    prev_start = start - timedelta(days=7)
    cut = min(end, now)
    findings, previous = inputs.get("findings"), inputs.get("previous_findings")
    now_pairs, prev_pairs = _pairs(findings), _pairs(previous)
    opened, resolved = now_pairs - prev_pairs, prev_pairs - now_pairs
    governance_available = findings is not None

    flagged: dict[str, dict[str, Any]] = {}
    for row in _finding_rows(findings, now_pairs):
        item = flagged.setdefault(
            row["key_name"], {"key_name": row["key_name"], "new": False, "findings": [], "last_decision": None}
        )
        item["findings"].append({**row, "new": (row["key_name"], row["finding"]) in opened})
        item["new"] = item["new"] or (row["key_name"], row["finding"]) in opened
    needed = sorted(flagged.values(), key=lambda r: (not r["new"], r["key_name"]))

    stale_pairs = {p for p in now_pairs if p[1] in STALE_FINDINGS}
    stale = [{**r, "new": (r["key_name"], r["finding"]) in opened} for r in _finding_rows(findings, stale_pairs)]
    rotation_pairs = {p for p in now_pairs if p[1] in ROTATION_FINDINGS}
    keys = inputs["keys"]
    new_keys = _in_days(keys, "created_at", start, cut).sort_values("created_at") if not keys.empty else keys
    rotated = keys[keys["rotated_at"].notna()] if not keys.empty else keys
    rotated = _in_days(rotated, "rotated_at", start, cut) if not rotated.empty else rotated

    usage, models = inputs["usage"], inputs["models"]
    week_usage = _in_days(usage, "day", start, end)
    daily = (
        week_usage.groupby("day", as_index=False)[["calls", "credits"]].sum().round({"credits": 2})
        if not week_usage.empty
        else pd.DataFrame(columns=["day", "calls", "credits"])
    )
    discrepancies = inputs["discrepancies"]
    counts = discrepancies["category"].value_counts() if not discrepancies.empty else pd.Series(dtype=int)
    by_category = [
        {
            "category": c,
            "count": int(counts.get(c, 0)),
            "delta": round(float(discrepancies.loc[discrepancies["category"] == c, "delta"].sum()), 2)
            if c in counts
            else 0.0,
            "help": credits.CATEGORY_HELP.get(c, ""),
        }
        for c in credits.CATEGORIES
    ]
    refunds = 0.0
    if not discrepancies.empty and "refund_due" in discrepancies:
        refunds = float(discrepancies["refund_due"].fillna(0).sum())
    runs, failed, gaps = inputs["runs"], inputs["failed_items"], inputs["gaps"]
    run_status = runs["status"].value_counts().to_dict() if not runs.empty else {}
    totals_now = week_usage[["calls", "jobs", "failed", "credits"]].sum() if not week_usage.empty else None
    prev_usage = _in_days(usage, "day", prev_start, start)
    totals_prev = prev_usage[["calls", "jobs", "failed", "credits"]].sum() if not prev_usage.empty else None
    activity = {
        name: _change(
            float(totals_now[name]) if totals_now is not None else 0.0,
            float(totals_prev[name]) if totals_prev is not None else 0.0,
        )
        for name in ("calls", "jobs", "failed", "credits")
    }
    anomalies = dict(inputs.get("anomalies") or {"available": False, "reason": "not computed", "incidents": []})

    return {
        "week": {
            "week": week,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "previous_week": week_label(prev_start.date()),
            "generated_at": now.isoformat(),
            "complete": now >= end,
            "has_activity": bool(activity["calls"]["current"] or activity["jobs"]["current"]),
            "activity": activity,
            **_comparison(now >= end, inputs.get("first_day"), prev_start),
            "daily": to_records(daily),
        },
        "decisions_needed": needed,
        "stale_keys": stale,
        "governance": {
            "available": governance_available,
            "open": len(now_pairs),
            "previous_open": len(prev_pairs),
            "opened": _finding_rows(findings, opened),
            "resolved": _finding_rows(previous, resolved),
            "by_finding": {
                f: sum(1 for p in now_pairs if p[1] == f) for f in FINDINGS if any(p[1] == f for p in now_pairs)
            },
        },
        "new_keys": to_records(new_keys[["key_name", "environment", "owner", "created_at"]]) if not keys.empty else [],
        "rotations": {
            "due_or_overdue": _finding_rows(findings, rotation_pairs),
            "rotated_this_week": to_records(rotated[["key_name", "environment", "rotated_at"]])
            if not rotated.empty
            else [],
        },
        "anomalies": anomalies,
        "top_movers": {
            "calls": _movers(usage[["key_name", "day", "calls"]] if not usage.empty else usage, "calls", start, end),
            "credits": _movers(
                usage[["key_name", "day", "credits"]] if not usage.empty else usage, "credits", start, end
            ),
        },
        "credits_by_environment": _wow(usage, "environment", start, end) if not usage.empty else [],
        "credits_by_model": _wow(models, "model", start, end) if not models.empty else [],
        "reconciliation": {
            "total": len(discrepancies),
            "refunds_due": round(refunds, 2),
            "by_category": by_category,
            # Which rates judged over- and undercharges: the API's, [pricing], or the published ones.
            "pricing": dict(inputs.get("pricing") or {"source": "unknown", "label": "not recorded", "warning": None}),
        },
        "collector_health": {
            "runs": len(runs),
            "runs_by_status": {str(k): int(v) for k, v in run_status.items()},
            "failed_items": to_records(failed),
            "coverage_gaps": to_records(gaps),
            "trust": _trust(runs, failed, gaps, inputs.get("first_run_at"), start),
        },
        "decisions": [],
    }


def _comparison(complete: bool, first_day: date | None, prev_start: datetime) -> dict[str, Any]:
    """Whether the week's totals compare with the week before, like for like, and if not why: a week still
    running is not compared with a whole one, and a week before nobody collected is not a rise from zero."""
    if not complete:
        return {"compared": False, "not_compared_because": "this week is not over"}
    if first_day is None or pd.Timestamp(first_day) > pd.Timestamp(prev_start):
        since = f"before {pd.Timestamp(first_day):%Y-%m-%d}" if first_day is not None else "yet"
        return {
            "compared": False,
            "not_compared_because": f"nothing was collected {since}, so the week before is unknown",
        }
    return {"compared": True, "not_compared_because": ""}


def not_compared_because(week: Mapping[str, Any]) -> str:
    """Why a review's week is not compared with the week before, or "" when it is (a review stored before
    reviews said so is not compared)."""
    if week.get("compared"):
        return ""
    return week.get("not_compared_because") or "this stored review predates the check"


def _trust(
    runs: pd.DataFrame, failed: pd.DataFrame, gaps: pd.DataFrame, first_run_at: datetime | None, start: datetime
) -> str:
    """How far the week's figures can be trusted, in words: a week collected only afterwards (the demo's first
    days, a new install) is not the same as a week the collector missed."""
    if runs.empty:
        if first_run_at is not None and pd.Timestamp(first_run_at) >= pd.Timestamp(start):
            return (
                f"collected afterwards: the first collection ran {pd.Timestamp(first_run_at):%Y-%m-%d %H:%M} UTC and "
                "read this week's daily totals and jobs back; its individual events were never polled"
            )
        return "no collection ran this week: its daily totals and jobs were read later, its events were missed"
    return "clean" if failed.empty and gaps.empty else "partial: see failures and gaps"
