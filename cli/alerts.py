"""`python -m analytics alerts check`: one detection-and-delivery pass, exactly what `collectors serve` runs every
`[alerts] check_minutes`: alerts opened for alert-worthy incidents, budget crossings and collector health,
auto-resolved, muted, snoozed and re-notified by the config's rules, and every notice due sent.

Prints one JSON line per notice sent: {channel, kind, key_name, dedup_key, action} with action
trigger|renotify|resolve. Exit 0; 1 when a notice could not be delivered (it stays queued and is retried at
the next check; the reason is on stderr); 2 for a usage, config or database error.
"""

from __future__ import annotations

import argparse
import json
import sys

from cli.common import UsageError, analysis_config, parse_now, require_db
from service.alerts import check_alerts
from store import StoreError
from untrusted import log_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("alerts", help="alert checks (what `collectors serve` runs)", description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    check = actions.add_parser("check", help="one detection and delivery pass", description=__doc__)
    check.add_argument("--db", required=True, help="the collectors' DuckDB file")
    check.add_argument("--config", required=True, help="key config TOML: [alerts] channels and routes, [budgets]")
    check.add_argument("--now", help="check as of this ISO instant (UTC if no offset); default: now")


def run(args: argparse.Namespace) -> int:
    try:
        now = parse_now(args.now)
        config = analysis_config(args.config)
        require_db(args.db)
        result = check_alerts(args.db, config, now)
    except (UsageError, StoreError) as exc:
        print(f"analytics alerts: error: {log_text(exc)}", file=sys.stderr)
        return 2
    for sent in result.sent:
        print(json.dumps(sent.as_dict(), ensure_ascii=False), flush=True)
    print(f"analytics alerts: {log_text(result.line())}", file=sys.stderr)
    return 1 if result.failed else 0
