"""`python -m analytics anomalies`: spike/drop incidents per key and metric as JSON or CSV rows.

Rows: {key_name, metric, direction, start, end, peak_score, grain, severity, alert_worthy}; metric is
calls, failed_jobs or credits, direction spike or drop, grain hour or day (calls before event polling
began are judged per day, from the usage summary), severity low, medium or high (the incident's size
against the key's normal day).  By default only alert-worthy incidents are listed; `--all` lists every one.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

from analytics.cli_keys import UsageError, parse_now
from analytics.detection import CLI_COLUMNS, detect
from analytics.export import to_csv, to_json
from store import StoreError
from store.anomaly_reads import daily_calls, hourly_series


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("anomalies", help="spike/drop incidents per key and metric", description=__doc__)
    parser.add_argument("--db", required=True, help="the collectors' DuckDB file")
    parser.add_argument("--since", help="only incidents ending at or after this ISO instant (UTC if no offset)")
    parser.add_argument("--now", help="detect as of this ISO instant (UTC if no offset); default: now")
    parser.add_argument("--all", action="store_true", help="every incident, not only the alert-worthy ones")
    parser.add_argument("--format", choices=["json", "csv"], default="json")


def _instant(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_now(text)
    except UsageError:
        raise UsageError(f"{flag}: '{text}' is not an ISO-8601 instant (e.g. 2025-06-02T12:00:00Z)") from None


def incidents_for(db_path: str | Path, now: datetime, since: datetime | None = None) -> pd.DataFrame:
    """The shared path of the CLI, the page, alerts and the review: every incident, hourly and daily grain.

    The whole history is scored (baselines warm); calls before hourly coverage come from the usage summary.
    """
    hourly = hourly_series(db_path, now, ordered=False)  # detect pivots: order is moot
    return detect(hourly, now, since=since, daily=daily_calls(db_path, until=now))


def run(args: argparse.Namespace) -> int:
    try:
        now = _instant(args.now, "--now") if args.now is not None else parse_now(None)
        since = _instant(args.since, "--since")
        if since is not None and since > now:
            raise UsageError("--since is after --now")
        if not Path(args.db).is_file():
            raise UsageError(f"--db: {args.db} does not exist")
        found = incidents_for(args.db, now, since)
    except (UsageError, StoreError) as exc:
        print(f"analytics anomalies: error: {exc}", file=sys.stderr)
        return 2
    if not args.all:
        found = found[found["alert_worthy"].astype(bool)]
    rows = found[CLI_COLUMNS].assign(peak_score=found["peak_score"].astype(float).round(4))
    text = to_json(rows) if args.format == "json" else to_csv(rows, CLI_COLUMNS)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
