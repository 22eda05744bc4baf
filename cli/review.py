"""`python -m analytics review`: the weekly key review of an ISO week as HTML, Markdown or JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analytics.review import WeekError, default_week, parse_week
from analytics.review_render import render
from cli.common import UsageError, analysis_config, parse_now, say_provenance
from cli_args import check_output
from private_files import write_private
from service.review import week_review
from store import StoreError
from store.decisions import last_decisions
from store.state_file import state_path


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
    now = parse_now(args.now)
    week = args.week or default_week(now)
    try:
        parse_week(week)
    except WeekError as exc:
        raise UsageError(f"--week: {exc}") from None
    config = analysis_config(args.config)
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
            last_decisions(state)  # an unreadable state file fails here, before the report is computed
        done = week_review(args.db, week, now, config.rules, config.reconciliation, state)
    except StoreError as exc:
        raise UsageError(f"database error: {exc}") from None
    say_provenance("review", f"week {week}", done.provenance, args.now is not None)
    return render(done.review, args.format)


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
