"""`python -m analytics review`: the weekly key review of an ISO week as HTML, Markdown or JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analytics import credits
from analytics.cli_keys import UsageError, parse_now, rules_from_file
from analytics.review import WeekError, build_review, default_week, load_inputs, parse_week
from analytics.review_render import render
from cli_args import check_output
from private_files import write_private
from store import StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser("review", help="the weekly key review report", description=__doc__)
    cmd.add_argument("--db", required=True, help="the collectors' DuckDB file (read-only)")
    cmd.add_argument("--week", help="ISO week YYYY-Www (default: the last full week before --now)")
    cmd.add_argument("--now", help="ISO instant to report as of (default: now, UTC)")
    cmd.add_argument("--config", help="key config TOML ([rules] and [reconciliation] are read)")
    cmd.add_argument(
        "--state-db", help="the dashboard's state DuckDB with decisions (default: RBV_STATE_DB or beside --db)"
    )
    cmd.add_argument("--format", choices=("html", "md", "json"), required=True)
    cmd.add_argument("--out", required=True, help="file to write ('-' for stdout); never one of the inputs")
    cmd.add_argument("--force", action="store_true", help="replace --out if it exists")


def report(args: argparse.Namespace) -> str:
    """The rendered report for the parsed arguments (raises UsageError with one line)."""
    from store.state_file import state_path

    now = parse_now(args.now)
    week = args.week or default_week(now)
    try:
        parse_week(week)
    except WeekError as exc:
        raise UsageError(f"--week: {exc}") from None
    rules = rules_from_file(args.config)
    try:
        settings = credits.load_settings(args.config)
    except credits.ReconcileConfigError as exc:
        raise UsageError(f"--config: {exc}") from None
    if not Path(args.db).is_file():
        raise UsageError(f"--db: {args.db} does not exist")
    state = Path(args.state_db) if args.state_db else state_path(args.db)
    if args.out != "-":  # fail before the (slow) report, not after
        try:
            check_output("--out", args.out, args.force, (args.db, state, args.config))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    try:
        if state.exists():
            from store.decisions import last_decisions

            last_decisions(state)  # an unreadable state file fails here, before the report is computed
        inputs = load_inputs(args.db, week, now, rules, settings, state)
    except StoreError as exc:
        raise UsageError(f"database error: {exc}") from None
    return render(build_review(inputs, week, now), args.format)


def run(args: argparse.Namespace) -> int:
    try:
        text = report(args)
        if args.out == "-":
            sys.stdout.write(text)
        else:
            write_private(args.out, text, replace=args.force)
    except UsageError as exc:
        print(f"analytics review: error: {exc}", file=sys.stderr)
        return 2
    except FileExistsError:  # appeared while the report was computed
        print(f"analytics review: error: --out: {args.out} already exists: pass --force to replace it", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"analytics review: error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0
