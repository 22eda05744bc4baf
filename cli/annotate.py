"""`python -m analytics annotate`: a marker on the traffic and anomaly charts (a deploy, a note, …) for one key.

Stored in the dashboard's own state file beside --db (or RBV_STATE_DB), never in the collector's database.
Key rotations in the config, decisions recorded in the weekly review and smoke-check failures need no
command: they appear on the charts by themselves.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from cli.common import UsageError, parse_now, require_db
from service.annotations import KINDS, AnnotationError, add_annotation
from store import StoreError
from untrusted import log_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "annotate", help="add a marker (deploy, note, …) to a key's charts", description=__doc__
    )
    parser.add_argument("--db", required=True, help="the collectors' DuckDB file (the marker goes beside it)")
    parser.add_argument("--key", required=True, help="the key the marker concerns")
    parser.add_argument("--at", required=True, help="when, an ISO instant (UTC if no offset)")
    parser.add_argument("--text", required=True, help="what happened (one line, up to 500 characters)")
    parser.add_argument("--kind", choices=KINDS, default="deploy", help="default: deploy")
    parser.add_argument("--by", help="who adds it (default: the user running the command)")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "command line"


def run(args: argparse.Namespace) -> int:
    try:
        at = parse_now(args.at, "--at")
        require_db(args.db)
        annotation_id = add_annotation(args.db, args.key, at, args.text, args.kind, args.by or _user(), parse_now(None))
    except (UsageError, AnnotationError, StoreError) as exc:
        print(f"analytics annotate: error: {log_text(exc)}", file=sys.stderr)
        return 2
    print(f"annotation {annotation_id}: {args.kind} on {log_text(args.key)} at {at:%Y-%m-%d %H:%M} UTC")
    return 0
