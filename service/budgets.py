"""Budgets and runway: read the usage summary and the keys' scopes, judge every scope's month, and say how long
the prepaid balance lasts; the threshold crossings become budget alerts (service.alerts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from analytics import budgets
from analytics.alert_rules import budget_severity
from analytics.budgets import BudgetSettings, Runway
from store import Source, reads
from store.alert_store import latest_balance, record_balance
from store.state_file import state_path


@dataclass(frozen=True)
class BudgetReport:
    rows: pd.DataFrame  # analytics.budgets.COLUMNS, one row per key, environment, owner and the account
    runway: Runway | None
    as_of: datetime
    scopes: pd.DataFrame  # key_name, environment, owner


def entered_balance(db_path: str | Path, now: datetime) -> dict[str, Any] | None:
    """The newest prepaid balance entered on the Credits page before `now` (None when none was)."""
    return latest_balance(state_path(db_path), until=now)


def budget_report(
    db_path: Source,
    settings: BudgetSettings,
    now: datetime,
    entered: Mapping[str, Any] | None = None,
    budgeted_only: bool = False,
) -> BudgetReport:
    """Every scope's month as of `now` (the usage summary's days up to `now`'s; `budgeted_only`: the scopes with
    a budget and the account), and the prepaid runway from the newer of the configured balance and the one
    `entered` on the page."""
    configured = (
        (settings.prepaid_balance, settings.prepaid_as_of)
        if settings.prepaid_balance is not None and settings.prepaid_as_of is not None
        else None
    )
    balance = budgets.latest_balance(configured, entered)
    first = budgets.month_start(now) - timedelta(days=budgets.HISTORY_DAYS)
    if balance is not None:
        first = min(first, balance[1].date())
    scopes = reads.key_scopes(db_path)
    scoped = reads.scope_daily_credits(db_path, first, now.date(), budgets.own_scope_keys(settings, budgeted_only))
    rows = budgets.scoped_budget_rows(scoped, scopes, settings, now, budgeted_only)
    runway = None
    if balance is not None:
        account = scoped[scoped["scope"] == "account"]
        series = pd.Series(account["credits"].to_numpy(), index=list(account["day"]))
        runway = budgets.runway(series, balance[0], balance[1], now, balance[2])
    return BudgetReport(rows, runway, now, scopes)


def enter_balance(db_path: str | Path, credits: float, as_of: datetime, who: str, now: datetime) -> None:
    """The prepaid balance read on `as_of`, entered on the Credits page (kept in the dashboard's state file)."""
    if not credits >= 0:
        raise ValueError("the balance must be a number of credits ≥ 0")
    who = (who or "").strip()
    if not who or len(who) > 200 or not who.isprintable():
        raise ValueError("say who enters the balance (up to 200 printable characters)")
    if as_of > now:
        raise ValueError("the balance's date cannot be in the future")
    record_balance(state_path(db_path), credits, as_of, who, now)


def crossings(report: BudgetReport, settings: BudgetSettings) -> list[dict[str, Any]]:
    """A budget signal per threshold each budgeted scope's month-to-date spend has crossed (the alert check opens
    each once per period and announces only the highest of those crossed together)."""
    if report.rows.empty:
        return []
    scopes = report.scopes.set_index("key_name")
    month_start = datetime.combine(budgets.month_start(report.as_of), datetime.min.time())
    out = []
    for row in report.rows.to_dict("records"):
        spent, budget = row["spent_credits"], row["budget_credits"]
        if spent is None or budget is None or pd.isna(spent) or pd.isna(budget):
            continue
        reached = budgets.crossed(float(spent), float(budget), settings.thresholds)
        scope, name = row["scope"], row["name"]
        environment = owner = None
        if scope == "key" and name in scopes.index:
            environment, owner = scopes.at[name, "environment"], scopes.at[name, "owner"]
        elif scope == "environment":
            environment = name
        elif scope == "owner":
            owner = name
        for threshold in reached:
            detail = {
                **{k: row[k] for k in budgets.COLUMNS if k not in ("status",)},
                "threshold": threshold,
                "highest": threshold == reached[-1],
            }
            out.append(
                {
                    "kind": "budget",
                    "dedup_key": f"budget/{scope}/{name}/{row['month']}/{threshold:g}",
                    "start": month_start,
                    "end": report.as_of,
                    "key_name": name if scope == "key" else None,
                    "subject": f"{scope} {name}",
                    "metric": "budget",
                    "direction": f"{scope}:{threshold:g}%",
                    "severity": budget_severity(threshold),
                    "environment": environment,
                    "owner": None if owner is None or pd.isna(owner) else owner,
                    "detail": detail,
                }
            )
    return out
