"""The weekly review: its inputs read from one consistent snapshot of the store, or the week the last
refresh stored; decisions are read fresh and attached (they change while the meeting records them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from analytics import credits
from analytics.alerts import report_messages
from analytics.keys import Rules
from analytics.review import anomaly_section, attach_decisions, build_review, default_week, week_bounds
from analytics.review_render import render
from collectors.http_client import RetryPolicy
from config import Config
from private_files import make_private_dir, write_private
from service.alerts import deliver_pending
from service.anomalies import detect_incidents, overlapping
from service.credits import billing_data
from service.keys import evaluate_findings
from service.results import Provenance, provenance, usable
from store import Source, decisions, result_tables, review_reads, snapshot
from store.alert_store import alert_book
from store.state_file import state_path

FORMATS = ("html", "md", "json")


def load_inputs(
    source: Source,
    week: str,
    now: datetime,
    rules: Rules,
    settings: credits.ReconcileSettings,
    incidents: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Everything `build_review` needs but the decisions, read from `source` (give it a snapshot).

    The week's incidents are those known as of `now` that touch the week; `incidents` (detected as of
    `now`, e.g. by the same refresh) saves detecting again.
    """
    start, end = week_bounds(week)
    prev_start = start - timedelta(days=7)
    cut = min(end, now)
    inputs: dict[str, Any] = review_reads.review_frames(source, start, end, prev_start)
    inputs["findings"] = evaluate_findings(source, cut - timedelta(microseconds=1), rules) if cut > start else None
    inputs["previous_findings"] = evaluate_findings(source, min(start, now) - timedelta(microseconds=1), rules)
    # Only the week's jobs are judged (find_discrepancies cuts to [start, cut]).
    data = billing_data(source, start, cut, None, settings.pricing)
    data = credits.BillingData(
        jobs=data.jobs,
        orphan_events=data.orphan_events,
        daily=credit_days_of_week(data.daily, start, end),
        rates=data.rates,
        jobs_listed_at=data.jobs_listed_at,
        pricing=data.pricing,
    )
    inputs["pricing"] = data.pricing_used.as_dict()
    if cut > start:
        inputs["discrepancies"] = credits.find_discrepancies(data, settings, now, start=start, end=cut)
        found = incidents if incidents is not None else detect_incidents(source, now, since=start).incidents
        inputs["anomalies"] = anomaly_section(overlapping(found, start, cut))
    else:
        inputs["discrepancies"] = pd.DataFrame(columns=list(credits.DISCREPANCY_COLUMNS))
        inputs["anomalies"] = {"available": True, "reason": "", "incidents": []}
    return inputs


def credit_days_of_week(daily: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    if daily.empty:
        return daily
    days = pd.to_datetime(daily["day"])
    return daily[(days >= pd.Timestamp(start)) & (days < pd.Timestamp(end))]


def compute_review(
    db_path: Source, week: str, now: datetime, rules: Rules, settings: credits.ReconcileSettings
) -> dict[str, Any]:
    """The review of `week` as of `now` (no decisions attached), every input from one snapshot."""
    if isinstance(db_path, str | Path):
        with snapshot(db_path) as snap:
            inputs = load_inputs(snap, week, now, rules, settings)
    else:
        inputs = load_inputs(db_path, week, now, rules, settings)
    return build_review({**inputs, "decisions": None}, week, now)


@dataclass(frozen=True)
class WeekReview:
    review: dict[str, Any]  # with the decisions attached
    provenance: Provenance


def week_review(
    db_path: str | Path,
    week: str,
    now: datetime,
    rules: Rules,
    settings: credits.ReconcileSettings,
    state_db: str | Path | None,
) -> WeekReview:
    """The review of `week`: the stored one when the last refresh made it for this week and these settings
    (and `now` is not before it), else computed now; the decisions recorded so far attached either way."""
    meta = usable(db_path, "review", now, rules=rules, settings=settings)
    review = result_tables.review(db_path, week) if meta is not None and meta.detail.get("week") == week else None
    if review is None:
        meta = None
        review = compute_review(db_path, week, now, rules, settings)
    decided = decisions.last_decisions(state_db) if state_db is not None else pd.DataFrame(columns=decisions.COLUMNS)
    return WeekReview(attach_decisions(review, decided), provenance(db_path, now, meta))


def write_weekly_review(
    db_path: str | Path, out_dir: str | Path, now: datetime, rules: Rules, settings: credits.ReconcileSettings
) -> list[Path]:
    """The `[review] weekly_cron` job: the last full ISO week before `now` into `out_dir/review-YYYY-Www.*`.

    Each file is written beside its target and renamed into place, so a reader never sees half a report;
    files are owner-only (0600, see private_files), and the same week written again replaces its files.
    """
    return _write_review(db_path, out_dir, now, rules, settings)[0]


def _write_review(
    db_path: str | Path, out_dir: str | Path, now: datetime, rules: Rules, settings: credits.ReconcileSettings
) -> tuple[list[Path], dict[str, Any]]:
    week = default_week(now)
    review = week_review(db_path, week, now, rules, settings, state_path(db_path)).review
    folder = make_private_dir(out_dir)
    written = [write_private(folder / f"review-{week}.{fmt}", render(review, fmt), replace=True) for fmt in FORMATS]
    return written, review


@dataclass(frozen=True)
class ReportRun:
    written: list[Path]
    queued: int
    sent: int
    errors: tuple[str, ...]


def send_weekly_review(
    db_path: str | Path, config: Config, now: datetime, retry: RetryPolicy | None = None
) -> ReportRun:
    """The Monday report, nobody watching: the last full week's review written (as `write_weekly_review`), then
    its HTML mailed to the `[review] deliver_to` e-mail channels and its headline numbers with a link posted to
    the others. The notices go through the alerts' outbox: once per week and channel, retried until delivered."""
    written, review = _write_review(db_path, config.review.reports_dir, now, config.rules, config.reconciliation)
    targets = [c for c in config.alerts.all_channels() if c.name in config.review.deliver_to]
    if not targets:
        return ReportRun(written, 0, 0, ())
    week = review["week"]["week"]
    messages = report_messages(review, f"{config.alerts.dashboard_url}/review")
    html = next(p for p in written if p.suffix == ".html")
    report = {"alert_id": None, "kind": "report", "key_name": None, "dedup_key": f"report/{week}"}
    queued = 0
    with alert_book(state_path(db_path)) as book:
        for channel in targets:
            payload = dict(messages[channel.type])
            if channel.type == "email":
                payload["html_file"] = str(html.resolve())
            key = f"report/{week}|trigger|1|{channel.name}"
            queued += book.queue(report, channel.name, channel.type, "trigger", 1, payload, key, now)
    delivery = deliver_pending(state_path(db_path), config.alerts, now, retry)
    return ReportRun(written, queued, len(delivery.sent), delivery.errors)
