"""`python -m analytics keys`: every key finding as JSON or CSV rows {key_name, finding, detail, since}."""

from __future__ import annotations

import argparse
import sys

from analytics.export import to_csv, to_json
from analytics.keys import FINDING_COLUMNS
from cli.common import UsageError, analysis_config, parse_now, require_db, say_provenance
from service.keys import key_findings
from store import StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="staleness and governance findings for every key", description=__doc__)
    parser.add_argument("--db", required=True, help="the collectors' DuckDB file")
    parser.add_argument("--config", help="key config TOML; its [rules] table sets the thresholds")
    parser.add_argument("--now", help="evaluate as of this ISO instant (UTC if no offset); default: now")
    parser.add_argument("--format", choices=["json", "csv"], default="json")


def run(args: argparse.Namespace) -> int:
    try:
        now = parse_now(args.now)
        rules = analysis_config(args.config).rules
        require_db(args.db)
        found = key_findings(args.db, now, rules)
    except (UsageError, StoreError) as exc:
        print(f"analytics keys: error: {exc}", file=sys.stderr)
        return 2
    say_provenance("keys", "findings", found.provenance, args.now is not None)
    # NaT is a datetime subclass, so exporters would print "NaT"; an unknown `since` is null / empty.
    findings = found.frame[FINDING_COLUMNS].astype(object)
    findings = findings.where(findings.notna(), None)
    text = to_json(findings) if args.format == "json" else to_csv(findings, FINDING_COLUMNS)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
