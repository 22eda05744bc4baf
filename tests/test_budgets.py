"""Budgets and runway: month-to-date spend exactly as the usage summary reports it, a month-end forecast whose
band holds the truth about as often as it says, the exhaustion date, thresholds, the prepaid runway, and the CLI."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.__main__ import main as analytics_main
from analytics.budgets import BudgetSettings, budget_rows, crossed, forecast_month, runway, scope_daily, status_of
from config import ConfigError, config_from_dict
from service.alerts import plan_notices
from service.budgets import budget_report, enter_balance
from store import reads
from store.alert_store import list_alerts, notices


def _series(days: list[date], values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=days)


def test_the_forecast_band_holds_the_month_end_about_as_often_as_it_says():
    """Daily spend with a weekly rhythm (weekends at 40 %), slow growth and noise: forecast on the 12th at noon,
    compare with the month's real total, over 200 months."""
    rng = np.random.default_rng(17)
    inside, errors = 0, []
    for trial in range(200):
        start = date(2026, 1 + trial % 12, 1)
        first = start - timedelta(days=70)
        days = [first + timedelta(days=i) for i in range(70 + 31)]
        level = rng.uniform(200, 5000)
        growth = rng.uniform(-0.004, 0.006)
        weekly = np.array([1.15, 1.1, 1.1, 1.05, 1.0, 0.4, 0.4])
        values = np.array(
            [level * (1 + growth) ** i * weekly[d.weekday()] * rng.lognormal(0, 0.15) for i, d in enumerate(days)]
        )
        month = [d.month == start.month and d.year == start.year for d in days]
        truth = values[month].sum()
        now = datetime(start.year, start.month, 12, 12)
        seen = values.copy()
        today = days.index(now.date())
        seen[today] *= 0.5  # the summary's today is half a day old at noon
        known = _series(days[: today + 1], seen[: today + 1])
        forecast = forecast_month(known, now)
        inside += forecast.low <= truth <= forecast.high
        errors.append(abs(forecast.total - truth) / truth)
    coverage = inside / 200
    assert 0.8 <= coverage <= 0.99, coverage  # a 90 % band
    assert float(np.median(errors)) < 0.05, float(np.median(errors))


def test_exhaustion_date_status_and_thresholds_on_a_steady_key():
    days = [date(2026, 10, 1) + timedelta(days=i) for i in range(40)]  # to 9 November
    credits = [100.0] * 39 + [50.0]  # at noon, today's row holds half a day
    daily = pd.DataFrame({"key_name": "k", "day": days, "credits": credits})
    keys = pd.DataFrame({"key_name": ["k"], "environment": ["prod"], "owner": [None]})
    now = datetime(2026, 11, 9, 12, 0)
    settings = BudgetSettings(keys=(("k", 2000.0),))
    rows = budget_rows(daily, keys, settings, now).set_index(["scope", "name"])
    row = rows.loc[("key", "k")]
    assert row["spent_credits"] == 850.0  # 1-9 November, today's half day included as reported
    assert row["forecast_credits"] == pytest.approx(850 + 50 + 100 * 21, abs=0.01)  # the rest of today, 21 days
    assert row["forecast_low"] == pytest.approx(row["forecast_credits"], abs=0.01)  # no scatter, no doubt
    assert row["projected_exhausted_on"] == "2026-11-20"  # 900 by tonight, then 100 a day: 2,000 on the 20th
    assert row["status"] == "warn"  # 42 %, but heading past the budget
    account = rows.loc[("account", "account")]
    assert pd.isna(account["status"]) and pd.isna(account["budget_credits"]) and account["spent_credits"] == 850.0
    assert set(rows.index.get_level_values("scope")) == {"key", "environment", "account"}  # no owner: no owner row
    assert crossed(850.0, 1000.0, (50.0, 80.0, 100.0)) == [50.0, 80.0]
    assert status_of(1000.0, 1000.0, 1000.0, (50.0, 80.0, 100.0)) == "over"
    assert status_of(400.0, 900.0, 1000.0, (50.0, 80.0, 100.0)) == "ok"
    assert status_of(400.0, 900.0, None, (50.0,)) is None


def test_a_budget_for_a_scope_nothing_was_collected_for_is_unknown_not_zero():
    daily = pd.DataFrame({"key_name": ["k"], "day": [date(2026, 11, 1)], "credits": [5.0]})
    keys = pd.DataFrame({"key_name": ["k"], "environment": ["prod"], "owner": ["team"]})
    settings = BudgetSettings(owners=(("other-team", 100.0),))
    row = (
        budget_rows(daily, keys, settings, datetime(2026, 11, 2))
        .set_index(["scope", "name"])
        .loc[("owner", "other-team")]
    )
    assert row["budget_credits"] == 100.0 and pd.isna(row["spent_credits"]) and pd.isna(row["status"])


def test_the_store_sums_each_scope_as_the_analytics_do_and_only_budgeted_keys_get_their_own(collected):
    """The page reads each scope's days summed in DuckDB (10,000 keys' days never reach pandas): the same days and
    credits as summing the usage summary's rows per scope; budgeted-only leaves out the keys with no budget."""
    first, last = date(2026, 9, 1), collected.now.date()
    daily, keys = reads.daily_credits(collected.db_path, first, last), reads.key_scopes(collected.db_path)
    budgeted = [str(daily["key_name"].iloc[0])]
    for names in (None, budgeted, []):
        ours = reads.scope_daily_credits(collected.db_path, first, last, names)
        theirs = scope_daily(daily, keys, names)
        assert len(ours) > 0 and list(ours.columns) == list(theirs.columns)
        pd.testing.assert_frame_equal(ours.drop(columns="credits"), theirs.drop(columns="credits"), check_dtype=False)
        assert np.allclose(ours["credits"], theirs["credits"], rtol=0, atol=1e-6)
        assert set(ours.loc[ours["scope"] == "key", "name"]) == set(daily["key_name"] if names is None else names)

    settings = BudgetSettings(account=1e9, keys=((budgeted[0], 10.0),))
    now = collected.now.replace(tzinfo=None)
    shown = budget_report(collected.db_path, settings, now, budgeted_only=True).rows
    assert list(zip(shown["scope"], shown["name"], strict=True)) == [("key", budgeted[0]), ("account", "account")]
    every = budget_report(collected.db_path, settings, now).rows.set_index(["scope", "name"])
    assert len(every.loc["key"]) == len(keys)
    for scope, name in (("key", budgeted[0]), ("account", "account")):
        assert shown.set_index(["scope", "name"]).loc[(scope, name), "spent_credits"] == pytest.approx(
            every.loc[(scope, name), "spent_credits"], abs=0.005
        )


def test_runway_of_the_prepaid_balance():
    days = [date(2026, 9, 1) + timedelta(days=i) for i in range(70)]  # to 9 November
    account = _series(days, [500.0] * 70)
    left = runway(account, 20_000.0, datetime(2026, 11, 1), datetime(2026, 11, 9, 12), "config")
    assert left.spent_since == 4500.0 and left.remaining == 15_500.0  # 1-9 November
    assert left.daily_burn == pytest.approx(500.0)
    assert left.days == pytest.approx(31.0)  # half of today, then 30.5 days more
    assert left.runs_out_on == date(2026, 12, 10)
    gone = runway(account, 1_000.0, datetime(2026, 11, 1), datetime(2026, 11, 9, 12), "config")
    assert gone.remaining < 0 and gone.days == 0.0
    assert gone.runs_out_on == date(2026, 11, 2)  # 500 on the 1st, 1,000 by the end of the 2nd: gone since then


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = analytics_main(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_spent_is_the_summarys_month_to_date_exactly(collected, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    config = tmp_path / "budgets.toml"
    config.write_text(
        collected.config_path.read_text(encoding="utf-8")
        + "\n[budgets]\naccount = 5000000\nenvironments = { prod = 100000 }\nprepaid_balance = 9000000\n"
        + 'prepaid_as_of = "2026-11-01"\n',
        encoding="utf-8",
    )
    code, out, err = _run(["budgets", "--db", str(collected.db_path), "--config", str(config),
                           "--now", collected.now.isoformat(), "--format", "json"])  # fmt: skip
    assert code == 0, err
    rows = pd.DataFrame(json.loads(out))
    assert list(rows.columns) == [
        "scope", "name", "month", "budget_credits", "spent_credits", "forecast_credits", "forecast_low",
        "forecast_high", "projected_exhausted_on", "status",
    ]  # fmt: skip
    keys = rows[rows["scope"] == "key"].set_index("name")
    truth = {}
    for spec in collected.world.keys():
        reported = [r for r in collected.world.daily_usage(spec.name) if r["date"] >= "2026-11-01"]
        truth[spec.name] = round(sum(r["credits"] for r in reported), 2)
    summarised = [name for name in keys.index if pd.notna(keys.at[name, "spent_credits"])]
    assert len(summarised) >= 25
    for name in summarised:
        assert keys.at[name, "spent_credits"] == truth[name], name  # to the cent the summary reports
    unknown = keys[keys["spent_credits"].isna()]  # keys whose summary could not be read: unknown, not 0
    assert all(unknown["forecast_credits"].isna())
    assert keys["budget_credits"].isna().all() and keys["status"].isna().all()  # no key budgets: fields empty
    account = rows[rows["scope"] == "account"].iloc[0]
    assert account["spent_credits"] == pytest.approx(sum(truth[n] for n in summarised), abs=0.01)
    assert account["budget_credits"] == 5_000_000 and account["status"] in ("ok", "warn")
    assert account["forecast_low"] <= account["forecast_credits"] <= account["forecast_high"]
    prod = rows[(rows["scope"] == "environment") & (rows["name"] == "prod")].iloc[0]
    assert prod["status"] in ("warn", "over") and prod["budget_credits"] == 100_000
    assert set(rows["scope"]) == {"key", "environment", "owner", "account"} and set(rows["month"]) == {"2026-11"}
    assert "prepaid balance 9,000,000.00 credits as of 2026-11-01 (config)" in err and "runway" in err

    # --now earlier in the month: the days up to its day, as of then.
    code, out, _ = _run(["budgets", "--db", str(collected.db_path), "--config", str(config),
                         "--now", "2026-11-10T12:00:00Z", "--format", "csv"])  # fmt: skip
    assert code == 0
    early = pd.read_csv(io.StringIO(out)).query("scope == 'key'").set_index("name")
    for name in summarised[:5]:
        tenth = [r for r in collected.world.daily_usage(name) if "2026-11-01" <= r["date"] <= "2026-11-10"]
        assert early.at[name, "spent_credits"] == pytest.approx(round(sum(r["credits"] for r in tenth), 2), abs=0.005)


def test_cli_errors_are_one_line(collected, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[budgets]\nkeys = { "k" = -5 }\n', encoding="utf-8")
    code, _, err = _run(["budgets", "--db", str(collected.db_path), "--config", str(bad)])
    assert code == 2 and "expected monthly credits > 0" in err and err.count("\n") == 1
    code, _, err = _run(["budgets", "--db", str(tmp_path / "none.duckdb"), "--config", str(bad)])
    assert code == 2


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"thresholds": [50, "x"]}, "thresholds"),
        ({"environments": {"qa": 5}}, "not prod, staging or dev"),
        ({"prepaid_balance": 100}, "prepaid_as_of"),
        ({"owner": {"a": 1}}, "unknown field"),
    ],
)
def test_budget_config_errors(section, problem):
    with pytest.raises(ConfigError, match=problem):
        config_from_dict({"budgets": section}, secrets=False)


def _budget_signal(threshold: float, month: str = "2026-11", start: datetime = datetime(2026, 11, 1)) -> dict:
    return {
        "kind": "budget", "dedup_key": f"budget/environment/prod/{month}/{threshold:g}", "start": start,
        "end": start, "subject": "environment prod", "metric": "budget", "direction": f"environment:{threshold:g}%",
        "severity": "medium", "environment": "prod",
        "detail": {"scope": "environment", "name": "prod", "month": month, "threshold": threshold,
                   "budget_credits": 1000.0, "spent_credits": threshold * 10},
    }  # fmt: skip


def test_one_notice_per_threshold_crossing_per_period_and_the_period_end(tmp_path):
    """50 % then 80 % on later checks: one notice each; the next month resolves them (PagerDuty hears it)."""
    config = config_from_dict(
        {"alerts": {"channels": {"chat": {"type": "slack", "url_env": "RBV_NOPE"},
                                 "pager": {"type": "pagerduty", "routing_key_env": "RBV_NOPE_PD"}}}},
        secrets=False,
    )  # fmt: skip
    state = tmp_path / "state.duckdb"
    t = datetime(2026, 11, 10)
    plan_notices(state, config.alerts, t, signals=[_budget_signal(50)])
    plan_notices(state, config.alerts, t + timedelta(hours=1), signals=[_budget_signal(50)])
    plan_notices(state, config.alerts, t + timedelta(days=5), signals=[_budget_signal(50), _budget_signal(80)])
    plan_notices(state, config.alerts, t + timedelta(days=6), signals=[_budget_signal(50), _budget_signal(80)])
    queued = notices(state).sort_values("notice_id")
    triggers = queued[queued["action"] == "trigger"]
    assert sorted(zip(triggers["dedup_key"], triggers["channel"], strict=True)) == sorted(
        (f"budget/environment/prod/2026-11/{t:g}", c) for t in (50, 80) for c in ("chat", "pager")
    )
    # 50 % superseded by 80 %: PagerDuty resolves its incident; chat is not told a lower threshold "recovered".
    resolves = queued[queued["action"] == "resolve"]
    assert list(zip(resolves["dedup_key"], resolves["channel"], strict=True)) == [
        ("budget/environment/prod/2026-11/50", "pager")
    ]
    plan_notices(state, config.alerts, datetime(2026, 12, 1, 0, 5), signals=[])
    alerts = list_alerts(state).set_index("dedup_key")
    assert alerts.loc["budget/environment/prod/2026-11/80", "resolution"] == "period_ended"
    last = notices(state).sort_values("notice_id").iloc[-1]
    assert (last["action"], last["channel"], last["dedup_key"]) == (
        "resolve",
        "pager",
        "budget/environment/prod/2026-11/80",
    )


def test_a_balance_entered_on_the_page_wins_over_an_older_configured_one(collected, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    with pytest.raises(ValueError, match="future"):
        enter_balance(collected.db_path, 10.0, collected.now + timedelta(days=1), "ops", collected.now)
    enter_balance(collected.db_path, 123_456.0, datetime(2026, 11, 15), "ops", collected.now)
    config = tmp_path / "b.toml"
    config.write_text('[budgets]\nprepaid_balance = 5\nprepaid_as_of = "2026-11-01"\n', encoding="utf-8")
    code, _, err = _run(["budgets", "--db", str(collected.db_path), "--config", str(config),
                         "--now", collected.now.isoformat()])  # fmt: skip
    assert code == 0 and "123,456.00 credits as of 2026-11-15 (entered on the page by ops)" in err
