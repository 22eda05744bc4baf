"""`python -m analytics keys`: every key finding as JSON or CSV rows {key_name, finding, detail, since}."""

from __future__ import annotations

import argparse
import sys

from analytics.export import to_csv, to_json
from analytics.keys import FINDING_COLUMNS
from cli.common import (
    UsageError,
    add_source_arguments,
    analysis_config,
    engine_client,
    parse_now,
    say_provenance,
    source_of,
)
from service import engine
from service.keys import key_findings
from store import StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="staleness and governance findings for every key", description=__doc__)
    add_source_arguments(parser)
    parser.add_argument("--config", help="key config TOML; its [rules] table sets the thresholds")
    parser.add_argument("--now", help="evaluate as of this ISO instant (UTC if no offset); default: now")
    parser.add_argument("--format", choices=["json", "csv"], default="json")


def run(args: argparse.Namespace) -> int:
    try:
        now = parse_now(args.now)
        rules = analysis_config(args.config).rules
        source = source_of(args)
        if args.engine == "dask":
            with engine_client(args) as client:
                frame = engine.key_findings(client, source, now, rules)
        else:
            found = key_findings(source, now, rules)
            say_provenance("keys", "findings", found.provenance, args.now is not None)
            frame = found.frame
    except (UsageError, StoreError) as exc:
        print(f"analytics keys: error: {exc}", file=sys.stderr)
        return 2
    # NaT is a datetime subclass, so exporters would print "NaT"; an unknown `since` is null / empty.
    findings = frame[FINDING_COLUMNS].astype(object)
    findings = findings.where(findings.notna(), None)
    text = to_json(findings) if args.format == "json" else to_csv(findings, FINDING_COLUMNS)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
