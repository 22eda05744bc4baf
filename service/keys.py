"""Key findings: read the facts the rules need, evaluate them, or read what the last refresh stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from analytics.keys import FINDING_COLUMNS, GroupFindings, KeyFacts, Rules, evaluate, evaluate_group
from service.results import Provenance, provenance, usable
from store import Source, key_reads, result_tables


def key_facts(
    source: Source, now: datetime, rules: Rules, spark_days: int = 0, keys: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """The store frames the rules need, over the windows the rules look at (of the key group `keys`, if given)."""
    return key_reads.governance_facts(
        source,
        now,
        daily_days=max(rules.sandbox_window_days, rules.shape_window_days) + 1,
        hourly_days=rules.shape_window_days,
        spark_days=spark_days,
        keys=keys,
    )


def evaluate_findings(source: Source, now: datetime, rules: Rules) -> pd.DataFrame:
    """Every rule over every key as of `now` (what a refresh stores, and what runs when nothing stored fits)."""
    return evaluate(KeyFacts.from_frames(key_facts(source, now, rules)), now, rules)


def group_findings(source: Source, now: datetime, rules: Rules, keys: list[str]) -> GroupFindings:
    """The per-key rules over one key group, and what the rules comparing keys need of it (analytics.keys
    evaluate_groups over every group's is `evaluate_findings`)."""
    return evaluate_group(KeyFacts.from_frames(key_facts(source, now, rules, keys=keys)), now, rules)


@dataclass(frozen=True)
class Findings:
    frame: pd.DataFrame  # FINDING_COLUMNS
    provenance: Provenance


def key_findings(db_path: Source, now: datetime, rules: Rules) -> Findings:
    """The stored findings when they stand for `now` and these rules, else computed now with the same code."""
    meta = usable(db_path, "findings", now, rules=rules)
    if meta is not None:
        frame = result_tables.key_findings(db_path)[FINDING_COLUMNS]
        frame = frame.assign(since=pd.to_datetime(frame["since"]))
    else:
        frame = evaluate_findings(db_path, now, rules)
    return Findings(frame, provenance(db_path, now, meta))


@dataclass(frozen=True)
class KeysView:
    """What the Keys and Key detail pages show: inventory, recent activity, and the findings."""

    inventory: pd.DataFrame
    activity: pd.DataFrame
    findings: Findings


def keys_view(db_path: Source, now: datetime, rules: Rules, spark_days: int = 30) -> KeysView:
    return KeysView(
        key_reads.key_inventory(db_path),
        key_reads.key_activity(db_path, now.date(), spark_days),
        key_findings(db_path, now, rules),
    )


@dataclass(frozen=True)
class KeyView:
    """What the Key detail page shows of one key: its inventory row (none when not configured) and the findings."""

    inventory: pd.DataFrame
    findings: Findings


def key_view(db_path: Source, now: datetime, rules: Rules, key_name: str) -> KeyView:
    """One key's identity and the findings, without every key's inventory and activity (10,000 keys' worth)."""
    return KeyView(key_reads.key_inventory(db_path, key_name), key_findings(db_path, now, rules))
