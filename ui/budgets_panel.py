"""The Credits page's Budgets section: this month's spend, forecast and status per scope, and the prepaid runway."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from analytics.budgets import BudgetSettings
from service.budgets import BudgetReport, budget_report, enter_balance, entered_balance
from store import StoreError
from ui.data import read
from ui.format import credits, day, local_time, number, plain
from ui.tables import table

SCOPE_ORDER = {"account": 0, "environment": 1, "owner": 2, "key": 3}


def _table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per scope, what matters first (status, how much is used, when it runs out), the band last."""
    used = rows["spent_credits"] / rows["budget_credits"]
    return pd.DataFrame(
        {
            "scope": rows["scope"],
            "name": rows["name"],
            "status": rows["status"].fillna("—"),
            "used %": used * 100,
            "spent": rows["spent_credits"],
            "budget": rows["budget_credits"],
            "forecast": rows["forecast_credits"],
            "runs out": rows["projected_exhausted_on"].map(day),  # '—' when the budget lasts the month
            "forecast low": rows["forecast_low"],
            "forecast high": rows["forecast_high"],
        }
    ).sort_values(["scope", "name"], key=lambda c: c.map(SCOPE_ORDER) if c.name == "scope" else c)


def _show(rows: pd.DataFrame, key: str) -> None:
    def credit_column(heading: str, help: str | None = None) -> dict:
        return st.column_config.NumberColumn(heading, format="%,.2f", help=help)

    band = "The month-end forecast's 90 % band"
    table(
        rows,
        {
            "status": st.column_config.TextColumn(
                "Status", help="ok; warn: past a threshold or heading past the budget; over"
            ),
            "budget": credit_column("Budget (credits)"),
            "spent": credit_column("Spent (credits)", "Month to date, from the daily usage summary"),
            "used %": st.column_config.ProgressColumn("Used", format="%.0f %%", min_value=0, max_value=100),
            "forecast": credit_column("Month-end forecast"),
            "forecast low": credit_column("Forecast low", band),
            "forecast high": credit_column("Forecast high", band),
            "runs out": st.column_config.TextColumn("Runs out", help="Projected at the scope's own pattern (UTC day)"),
        },
        pin=2,
        key=key,
    )


def budgets_section(db_path: str, settings: BudgetSettings, now: datetime, tz: ZoneInfo) -> None:
    """Budgets, spend and forecast this month (as of `now`), the prepaid balance's runway, and its entry form."""
    st.subheader("Budgets")
    try:
        entered = entered_balance(db_path, now)
        minute = now.replace(second=0, microsecond=0)
        # Budgeted scopes only, unless asked: forecasting every key costs ~1 s at 1,000 keys.
        every = st.toggle("Every key, environment and owner", value=False, key="budgets_every")
        report: BudgetReport = read(budget_report, db_path, settings, minute, entered, budgeted_only=not every)
    except StoreError as exc:
        st.error(f"Budgets: {plain(exc, None)}")
        return
    rows = report.rows
    month = rows["month"].iloc[0] if not rows.empty else f"{now:%Y-%m}"
    st.caption(
        f"{month}, month to date as of {local_time(now, tz)}: spend is the daily usage summary's credits (grain: "
        "day; today's row so far). Forecast: the month's end at each scope's own daily and weekly pattern, with "
        f"a 90 % band. Warnings at {', '.join(f'{t:g} %' for t in settings.thresholds)} of a budget "
        "([budgets] in the key config); each crossing is one notice per month through the alert channels."
    )
    budgeted = rows[rows["budget_credits"].notna()]
    if every and not budgeted.empty:
        st.caption("Budgeted scopes first; every scope, budgeted or not, below.")
    if budgeted.empty:
        st.info("No budgets configured: add a `[budgets]` table to the key config (see the README).")
    else:
        over = int((budgeted["status"] == "over").sum())
        warn = int((budgeted["status"] == "warn").sum())
        if over:
            st.error(f"{over} budget(s) spent this month.", icon=":material/money_off:")
        elif warn:
            st.warning(f"{warn} budget(s) past a warning threshold or heading past the budget.")
        _show(_table(budgeted), "budgets_table")
    runway = report.runway
    cols = st.columns(3)
    account = rows[rows["scope"] == "account"]
    if not account.empty and pd.notna(account["spent_credits"].iloc[0]):
        a = account.iloc[0]
        cols[0].metric(
            "Spent this month",
            credits(a["spent_credits"]),
            help="Every configured key's credits, from the daily usage summary.",
        )
        if pd.notna(a["forecast_credits"]):
            cols[1].metric(
                "Month-end forecast",
                credits(a["forecast_credits"]),
                help=f"90 % band {credits(a['forecast_low'])} – {credits(a['forecast_high'])} credits.",
            )
    if runway is not None:
        spent = runway.remaining <= 0
        cols[2].metric(
            "Prepaid runway",
            "unknown" if runway.days is None else f"{number(runway.days, 1)} days",
            help=f"Balance {credits(runway.balance)} credits as of {day(runway.as_of)} UTC ({plain(runway.source)}); "
            f"{credits(runway.spent_since)} spent since, {credits(runway.remaining)} left"
            + (f"; {'ran' if spent else 'runs'} out {day(runway.runs_out_on)}" if runway.runs_out_on else "")
            + ".",
        )
        if runway.runs_out_on is not None and spent:
            st.caption(f"The prepaid balance ran out on {day(runway.runs_out_on)}: enter the new balance below.")
        elif runway.runs_out_on is not None:
            st.caption(
                f"At the account's pattern ({credits(runway.daily_burn or 0)} credits on an average day), the "
                f"prepaid balance runs out on {day(runway.runs_out_on)} (UTC day)."
            )
    if every:
        _show(_table(rows), "budgets_all")
    with st.expander("Enter the prepaid balance"), st.form("balance_form", clear_on_submit=True):
        left, middle, right = st.columns(3)
        balance = left.number_input("Balance (credits)", min_value=0.0, step=1000.0, key="balance_credits")
        as_of = middle.date_input("Read on (UTC day)", value=now.date(), max_value=now.date(), key="balance_day")
        who = right.text_input("Who", max_chars=200, key="balance_who")
        if st.form_submit_button("Save balance"):
            try:
                enter_balance(db_path, float(balance), datetime.combine(as_of, datetime.min.time()), who, now)
                st.success("Balance saved: the runway counts spend from that day on.")
            except (ValueError, StoreError) as exc:
                st.warning(plain(exc, None))
