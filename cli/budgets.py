"""`python -m analytics budgets`: every key, environment, owner and the account with its month-to-date spend,
month-end forecast (90 % band) and, where a budget is configured, when it runs out and its status.

Rows: {scope, name, month, budget_credits, spent_credits, forecast_credits, forecast_low, forecast_high,
projected_exhausted_on, status}; scope key|environment|owner|account, status ok|warn|over (null without a
budget). spent_credits is the daily usage summary's month-to-date, days up to --now's. The prepaid balance's
runway ([budgets] prepaid_balance, or the newest entered on the Credits page) is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from analytics.budgets import COLUMNS
from analytics.export import to_csv, to_json
from cli.common import UsageError, analysis_config, parse_now, require_db
from service.budgets import budget_report, entered_balance
from store import StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("budgets", help="monthly credit budgets, forecasts and runway", description=__doc__)
    parser.add_argument("--db", required=True, help="the collectors' DuckDB file")
    parser.add_argument("--config", required=True, help="key config TOML; its [budgets] table sets the budgets")
    parser.add_argument("--now", help="as of this ISO instant (UTC if no offset); default: now")
    parser.add_argument("--format", choices=["json", "csv"], default="json")


def run(args: argparse.Namespace) -> int:
    try:
        now = parse_now(args.now)
        settings = analysis_config(args.config).budgets
        require_db(args.db)
        report = budget_report(args.db, settings, now, entered_balance(args.db, now))
    except (UsageError, StoreError) as exc:
        print(f"analytics budgets: error: {exc}", file=sys.stderr)
        return 2
    if report.runway is not None:
        r = report.runway
        lasts = (
            f"runway {r.days:,.1f} days ({'ran' if r.remaining <= 0 else 'runs'} out {r.runs_out_on})"
            if r.days is not None
            else "runway unknown (no spend to learn a daily burn from)"
        )
        print(
            f"analytics budgets: prepaid balance {r.balance:,.2f} credits as of {r.as_of:%Y-%m-%d} ({r.source}); "
            f"{r.spent_since:,.2f} spent since, {r.remaining:,.2f} left; {lasts}",
            file=sys.stderr,
        )
    rows = report.rows[COLUMNS].astype(object)
    rows = rows.where(rows.notna(), None)
    text = to_json(rows) if args.format == "json" else to_csv(rows, COLUMNS)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
