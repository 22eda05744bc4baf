"""`python -m analytics anomalies`: spike/drop incidents per key and metric as JSON or CSV rows.

Rows: {key_name, metric, direction, start, end, peak_score, grain, severity, alert_worthy}; metric is
calls, failed_jobs or credits, direction spike or drop, grain hour or day (calls before event polling
began are judged per day, from the usage summary), severity low, medium or high (the incident's size
against the key's normal day).  By default only alert-worthy incidents are listed; `--all` lists every one.
"""

from __future__ import annotations

import argparse
import sys

from analytics.detection import CLI_COLUMNS
from analytics.export import to_csv, to_json
from cli.common import UsageError, parse_now, require_db, say_provenance
from service.anomalies import incidents
from store import StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("anomalies", help="spike/drop incidents per key and metric", description=__doc__)
    parser.add_argument("--db", required=True, help="the collectors' DuckDB file")
    parser.add_argument("--since", help="only incidents ending at or after this ISO instant (UTC if no offset)")
    parser.add_argument("--now", help="detect as of this ISO instant (UTC if no offset); default: now")
    parser.add_argument("--all", action="store_true", help="every incident, not only the alert-worthy ones")
    parser.add_argument("--format", choices=["json", "csv"], default="json")


def run(args: argparse.Namespace) -> int:
    try:
        now = parse_now(args.now)
        since = parse_now(args.since, "--since") if args.since is not None else None
        if since is not None and since > now:
            raise UsageError("--since is after --now")
        require_db(args.db)
        found = incidents(args.db, now, since)
    except (UsageError, StoreError) as exc:
        print(f"analytics anomalies: error: {exc}", file=sys.stderr)
        return 2
    say_provenance("anomalies", "incidents", found.provenance, args.now is not None)
    frame = found.frame
    if not args.all:
        frame = frame[frame["alert_worthy"].astype(bool)]
    rows = frame[CLI_COLUMNS].assign(peak_score=frame["peak_score"].astype(float).round(4))
    text = to_json(rows) if args.format == "json" else to_csv(rows, CLI_COLUMNS)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
