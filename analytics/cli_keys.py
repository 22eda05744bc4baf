"""`python -m analytics keys`: every key finding as JSON or CSV rows {key_name, finding, detail, since}."""

from __future__ import annotations

import argparse
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from analytics.export import to_csv, to_json
from analytics.keys import FINDING_COLUMNS, KeyFacts, Rules, RulesError, evaluate
from store import StoreError
from store.key_reads import governance_facts


class UsageError(Exception):
    """Bad input from the command line, reported as one line."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="staleness and governance findings for every key", description=__doc__)
    parser.add_argument("--db", required=True, help="the collectors' DuckDB file")
    parser.add_argument("--config", help="key config TOML; only its [rules] table is read")
    parser.add_argument("--now", help="evaluate as of this ISO instant (UTC if no offset); default: now")
    parser.add_argument("--format", choices=["json", "csv"], default="json")


def parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC).replace(tzinfo=None)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now: '{text}' is not an ISO-8601 instant (e.g. 2025-06-02T12:00:00Z)") from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def rules_from_file(path: str | Path | None) -> Rules:
    """Rules from the config's `[rules]` table (defaults when no file); secrets are not resolved or needed."""
    if path is None:
        return Rules()
    config = Path(path)
    if not config.is_file():
        raise UsageError(f"--config: {config} does not exist")
    try:
        data: dict[str, Any] = tomllib.loads(config.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config: {config} is not valid TOML ({exc})") from None
    section = data.get("rules", {})
    if not isinstance(section, dict):
        raise UsageError(f"--config: {config}: [rules] must be a table")
    try:
        return Rules.from_mapping(section)
    except RulesError as exc:
        raise UsageError(f"{config}: {exc}") from None


def facts_for(db_path: str | Path, now: datetime, rules: Rules, spark_days: int = 0) -> dict[str, Any]:
    """The store frames the rules need, over the windows the rules look at."""
    return governance_facts(
        db_path,
        now,
        daily_days=max(rules.sandbox_window_days, rules.shape_window_days) + 1,
        hourly_days=rules.shape_window_days,
        spark_days=spark_days,
    )


def findings_for(db_path: str | Path, now: datetime, rules: Rules) -> pd.DataFrame:
    """Read the facts and evaluate every rule (the shared path of the CLI, the pages and the review)."""
    return evaluate(KeyFacts.from_frames(facts_for(db_path, now, rules)), now, rules)


def run(args: argparse.Namespace) -> int:
    try:
        now = parse_now(args.now)
        rules = rules_from_file(args.config)
        if not Path(args.db).is_file():
            raise UsageError(f"--db: {args.db} does not exist")
        findings = findings_for(args.db, now, rules)
    except (UsageError, StoreError) as exc:
        print(f"analytics keys: error: {exc}", file=sys.stderr)
        return 2
    # NaT is a datetime subclass, so exporters would print "NaT"; an unknown `since` is null / empty.
    findings = findings[FINDING_COLUMNS].astype(object)
    findings = findings.where(findings.notna(), None)
    text = to_json(findings) if args.format == "json" else to_csv(findings, FINDING_COLUMNS)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
