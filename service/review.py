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
from service.credits import billing_data, pricing_for
from service.keys import evaluate_findings
from service.results import Provenance, provenance, usable
from store import Source, decisions, result_tables, review_reads, snapshot
from store.alert_store import alert_book
from store.state_file import state_path

FORMATS = ("html", "md", "json")


@dataclass(frozen=True)
class ReviewSpan:
    """The instants a week's review reads: the week, the week before it, and how much of it `now` has seen."""

    week: str
    start: datetime
    end: datetime
    now: datetime

    @property
    def cut(self) -> datetime:
        return min(self.end, self.now)

    @property
    def judged(self) -> bool:
        """Part of the week is over: its findings, discrepancies and incidents are judged."""
        return self.cut > self.start

    @property
    def findings_at(self) -> datetime:
        return self.cut - timedelta(microseconds=1)

    @property
    def previous_at(self) -> datetime:
        return min(self.start, self.now) - timedelta(microseconds=1)


def review_span(week: str, now: datetime) -> ReviewSpan:
    start, end = week_bounds(week)
    return ReviewSpan(week, start, end, now)


def week_reconciliation(
    source: Source, span: ReviewSpan, settings: credits.ReconcileSettings, keys: list[str] | None = None
) -> credits.GroupReconciliation:
    """The week's jobs judged (of the key group `keys`, if given), up to the summary convention."""
    data = billing_data(source, span.start, span.cut, None, settings.pricing, keys=keys)
    data = credits.BillingData(
        jobs=data.jobs,
        orphan_events=data.orphan_events,
        daily=credit_days_of_week(data.daily, span.start, span.end),
        rates=data.rates,
        jobs_listed_at=data.jobs_listed_at,
        jobs_history_from=data.jobs_history_from,
        pricing=data.pricing,
    )
    # Only the week's jobs are judged (cut to [start, cut]), as find_discrepancies judges them.
    return credits.reconcile_group(data, settings, span.now, start=span.start, end=span.cut)


def week_discrepancies(groups: list[credits.GroupReconciliation]) -> pd.DataFrame:
    """The week's discrepancies from disjoint key groups' week_reconciliation: one convention for them all."""
    left_out = credits.summary_convention(g.fits.votes for g in groups)
    return credits.join_reconciliations([credits.finish_reconcile(g, left_out) for g in groups]).found


def assemble_inputs(
    source: Source,
    span: ReviewSpan,
    settings: credits.ReconcileSettings,
    findings: pd.DataFrame | None,
    previous_findings: pd.DataFrame,
    discrepancies: pd.DataFrame | None,
    incidents: pd.DataFrame | None,
) -> dict[str, Any]:
    """Everything `build_review` needs but the decisions: the week's frames read from `source`, with the
    findings at its end and before it, and its discrepancies and incidents (None when the week is not judged)."""
    inputs: dict[str, Any] = review_reads.review_frames(source, span.start, span.end, span.start - timedelta(days=7))
    inputs["findings"] = findings
    inputs["previous_findings"] = previous_findings
    inputs["pricing"] = pricing_for(source, settings.pricing).as_dict()
    if span.judged and discrepancies is not None and incidents is not None:
        inputs["discrepancies"] = discrepancies
        inputs["anomalies"] = anomaly_section(overlapping(incidents, span.start, span.cut))
    else:
        inputs["discrepancies"] = pd.DataFrame(columns=list(credits.DISCREPANCY_COLUMNS))
        inputs["anomalies"] = {"available": True, "reason": "", "incidents": []}
    return inputs


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
    span = review_span(week, now)
    findings = evaluate_findings(source, span.findings_at, rules) if span.judged else None
    previous = evaluate_findings(source, span.previous_at, rules)
    found = None
    if span.judged:
        found = week_discrepancies([week_reconciliation(source, span, settings)])
        if incidents is None:
            incidents = detect_incidents(source, now, since=span.start).incidents
    return assemble_inputs(source, span, settings, findings, previous, found, incidents)


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
