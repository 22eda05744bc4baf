"""`python -m analytics reconcile`: credit discrepancies from the store (and a team ledger) as JSON or CSV."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analytics import credits
from analytics.export import to_csv, to_json
from analytics.ledger import LedgerInvalid, describe_size, load_ledger
from cli.common import UsageError, analysis_config
from cli_args import check_output
from private_files import write_private
from service.credits import billing_data
from store import StoreError


def register(subparsers: Any) -> None:
    cmd = subparsers.add_parser(
        "reconcile",
        help="reconcile charged credits against jobs (and a team ledger)",
        description="One row per discrepancy: category, key_name, job_id, day, expected_credits, "
        f"charged_credits, delta, pricing_source. Categories: {', '.join(credits.CATEGORIES)}. "
        "stderr says which pricing was used (the API's, [pricing] from --config, or the published rates).",
    )
    cmd.add_argument("--db", required=True, help="the collectors' DuckDB file (opened read-only)")
    cmd.add_argument("--ledger", help="team ledger CSV (job_id, credits, and optional columns)")
    cmd.add_argument(
        "--since",
        help="ISO start: discrepancies and the ledger period begin here "
        "(default: all history; the ledger's earliest created_at for the ledger)",
    )
    cmd.add_argument("--now", help="ISO instant to reconcile as of (default: the current time, UTC)")
    cmd.add_argument("--format", choices=("json", "csv"), default="json", help="output format (default json)")
    cmd.add_argument(
        "--config", help="key config TOML: [reconciliation] sets rounding/tolerance, [pricing] fallback rates"
    )
    cmd.add_argument("--rounding", choices=tuple(credits.ROUNDING_POLICIES), help="override the rounding policy")
    cmd.add_argument("--tolerance", type=float, help="override the tolerance in credits (default 0.01)")
    cmd.add_argument("--output", "-o", help="write to this file instead of stdout (never one of the inputs)")
    cmd.add_argument("--force", action="store_true", help="replace --output if it exists")


def _instant(text: str, flag: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} '{text}' is not an ISO date or timestamp (e.g. 2025-03-01T00:00:00Z)") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _settings(args: argparse.Namespace) -> credits.ReconcileSettings:
    settings = analysis_config(args.config).reconciliation
    if args.rounding:
        settings = dataclasses.replace(settings, rounding=args.rounding)
    if args.tolerance is not None:
        if not args.tolerance >= 0:
            raise UsageError(f"--tolerance must be a number ≥ 0, got {args.tolerance}")
        settings = dataclasses.replace(settings, tolerance=args.tolerance)
    return settings


def _read_ledger(path: str, settings: credits.ReconcileSettings) -> Any:
    ledger_path = Path(path)
    if not ledger_path.is_file():
        raise UsageError(f"ledger {path} does not exist")
    size = ledger_path.stat().st_size
    if size > settings.ledger_max_bytes:
        # Refuse before reading: a huge file is rejected without loading it into memory.
        raise UsageError(
            f"ledger {path}: the file is {describe_size(size)}; the limit is "
            f"{describe_size(settings.ledger_max_bytes)} (split the ledger by period)"
        )
    try:
        return load_ledger(ledger_path.read_bytes(), settings.ledger_max_bytes)
    except LedgerInvalid as exc:
        lines = exc.result.error_lines()
        first = f"ledger {path}: {lines[0]}"
        if len(lines) > 1:
            first += f" (and {len(lines) - 1} more: " + "; ".join(lines[1:4]) + (" …)" if len(lines) > 4 else ")")
        raise UsageError(first) from None


def reconcile(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The report text, and the notes for stderr: which pricing judged it, and what was not judged."""
    if args.output:  # before the work, not after
        try:
            check_output("--output", args.output, args.force, (args.db, args.ledger, args.config))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    settings = _settings(args)
    now = _instant(args.now, "--now") if args.now else datetime.now(UTC).replace(tzinfo=None)
    since = _instant(args.since, "--since") if args.since else None
    if since is not None and since > now:
        raise UsageError(f"--since {args.since} is after --now")
    ledger = _read_ledger(args.ledger, settings) if args.ledger else None
    if not Path(args.db).is_file():
        raise UsageError(f"no database at {args.db}: run `python -m collectors once` first")
    try:
        # Every job up to now (a ledger may name any of them); discrepancies are cut to --since below.
        data = billing_data(args.db, None, now, None, settings.pricing, orphans_since=since)
        pricing = data.pricing_used
    except StoreError as exc:
        raise UsageError(f"database error: {exc}") from None
    try:
        done = credits.reconcile(data, settings, now, start=since, ledger=ledger, ledger_since=since)
    except ValueError as exc:
        raise UsageError(f"ledger {args.ledger}: {exc}") from None
    # Which pricing judged the rows: every row carries its source, and this line says it in words.
    notes = [f"pricing: {pricing.label}"]
    if pricing.warning:
        notes.append(f"warning: {pricing.warning}")
    if done.ledger_unjudged is not None and not done.ledger_unjudged.empty:
        reasons = done.ledger_unjudged["window"].value_counts()
        notes.append(
            f"ledger: {len(done.ledger_unjudged)} row(s) the provider never listed are outside its listing and "
            "were not judged (" + "; ".join(f"{n} {why}" for why, n in reasons.items()) + ")"
        )
    rows = credits.output_rows(done.found)
    text = to_json(rows) + "\n" if args.format == "json" else to_csv(rows, list(credits.OUTPUT_COLUMNS))
    return text, notes


def run(args: argparse.Namespace) -> int:
    try:
        text, notes = reconcile(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output:
        try:
            write_private(args.output, text, replace=args.force)
        except FileExistsError:
            print(f"error: --output: {args.output} already exists: pass --force to replace it", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    for note in notes:
        print(note, file=sys.stderr)
    return 0
