"""Monthly credit budgets (pure): month-to-date spend, a month-end forecast with its uncertainty, the date a
budget runs out, the warn thresholds crossed, and the prepaid balance's runway.

Spend is the daily usage summary's credits, summed exactly (to the cent it reports). The forecast follows
each scope's own pattern: a day-of-week profile learnt from the last eight weeks times a level and trend
fitted to them (recent days weigh more: half-life three weeks); its 90 % band combines the day-to-day scatter
around that pattern with the uncertainty of the level and trend themselves.
"""

from __future__ import annotations

import calendar
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

SCOPES = ("key", "environment", "owner", "account")
STATUSES = ("ok", "warn", "over")
DEFAULT_THRESHOLDS = (50.0, 80.0, 100.0)
COLUMNS = [
    "scope",
    "name",
    "month",
    "budget_credits",
    "spent_credits",
    "forecast_credits",
    "forecast_low",
    "forecast_high",
    "projected_exhausted_on",
    "status",
]
ACCOUNT = "account"
HISTORY_DAYS = 56  # eight weeks teach the day-of-week profile
TREND_HALF_LIFE_DAYS = 21.0
SCATTER_DAYS = 28
Z90 = 1.645
RUNWAY_HORIZON_DAYS = 3650
CENT = 0.01


@dataclass(frozen=True)
class BudgetSettings:
    """`[budgets]`: monthly credits per scope, warn thresholds in percent, and the prepaid balance."""

    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    account: float | None = None
    keys: tuple[tuple[str, float], ...] = ()
    environments: tuple[tuple[str, float], ...] = ()
    owners: tuple[tuple[str, float], ...] = ()
    prepaid_balance: float | None = None
    prepaid_as_of: datetime | None = None

    def budget_for(self, scope: str, name: str) -> float | None:
        if scope == "account":
            return self.account
        table = {"key": self.keys, "environment": self.environments, "owner": self.owners}[scope]
        return dict(table).get(name)

    @property
    def configured(self) -> bool:
        return bool(self.account is not None or self.keys or self.environments or self.owners)


@dataclass(frozen=True)
class Forecast:
    """Month-end spend: point and 90 % band (None when the scope has no complete day to learn from), and the
    expected credits of each day still to come (today's remainder first)."""

    total: float | None
    low: float | None
    high: float | None
    daily: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    level: float | None = None  # expected credits on an average day


@dataclass(frozen=True)
class Runway:
    """The prepaid balance: what is left of it now, the average day's burn, and how long it lasts."""

    balance: float
    as_of: datetime
    spent_since: float
    remaining: float
    daily_burn: float | None
    days: float | None
    runs_out_on: date | None
    source: str  # "config" or "entered on the page by …"


def month_start(now: datetime) -> date:
    return date(now.year, now.month, 1)


def month_end(now: datetime) -> date:
    return date(now.year, now.month, calendar.monthrange(now.year, now.month)[1])


def month_label(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


def scope_daily(daily: pd.DataFrame, keys: pd.DataFrame, key_names: list[str] | None = None) -> pd.DataFrame:
    """[scope, name, day, credits]: each key, environment, owner and the whole account, day by day, sorted.

    `daily` is [key_name, day, credits] from the usage summary, `keys` [key_name, environment, owner]; a key
    without an owner counts towards no owner's scope (and towards its environment and the account). Only the
    keys in `key_names` get a scope of their own when it is given (the budgeted ones: not 10,000 forecasts).
    The store sums the same in DuckDB (`reads.scope_daily_credits`) without shipping every key's day here.
    """
    if daily.empty:
        return pd.DataFrame(columns=["scope", "name", "day", "credits"])
    frame = daily[["key_name", "day", "credits"]].merge(
        keys[["key_name", "environment", "owner"]], on="key_name", how="left"
    )
    frame["credits"] = frame["credits"].astype(float)
    own = frame if key_names is None else frame[frame["key_name"].isin(key_names)]

    def summed(part: pd.DataFrame, column: str | None, scope: str) -> pd.DataFrame:
        if column is None:
            return part.groupby("day", as_index=False)["credits"].sum().assign(scope=scope, name=ACCOUNT)
        out = part.groupby([column, "day"], as_index=False)["credits"].sum()
        return out.rename(columns={column: "name"}).assign(scope=scope)

    parts = [
        summed(own, "key_name", "key"),
        summed(frame, "environment", "environment"),
        summed(frame, "owner", "owner"),
        summed(frame, None, "account"),
    ]
    long = pd.concat(parts, ignore_index=True)
    long["day"] = pd.to_datetime(long["day"]).dt.date
    return long[["scope", "name", "day", "credits"]].sort_values(["scope", "name", "day"], ignore_index=True)


def own_scope_keys(settings: BudgetSettings, budgeted_only: bool) -> list[str] | None:
    """The keys whose own month is judged: every key (None), or only those with a budget."""
    return [name for name, _ in settings.keys] if budgeted_only else None


def _ordinals(days) -> np.ndarray:
    # date.toordinal() of every day, without a Python call per row: 1970-01-01 is ordinal 719,163.
    return pd.to_datetime(pd.Series(days)).to_numpy().astype("datetime64[D]").astype(np.int64) + 719_163


def _weekday(ordinals: np.ndarray) -> np.ndarray:
    return (ordinals - 1) % 7  # date.toordinal() is 1 on Monday 0001-01-01


def _weekly_profile(values: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Seven day-of-week factors averaging 1 (flat until two weeks are known: each weekday seen twice)."""
    mean = float(values.mean()) if len(values) else 0.0
    if len(values) < 14 or mean <= 0:
        return np.ones(7)
    sums = np.bincount(weekday, weights=values, minlength=7)
    counts = np.bincount(weekday, minlength=7)
    factors = np.where(counts > 0, sums / np.maximum(counts, 1) / mean, 1.0)
    return factors / factors.mean()


def _wls(x: np.ndarray, age: np.ndarray, fitted_elsewhere: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted least squares of `x` on time (recent days weigh more; half-life TREND_HALF_LIFE_DAYS): the level
    at today and its change per day, their covariance, and the scatter of a day around the line. A trend only
    once three weeks are known (fewer cannot tell a trend from noise)."""
    weights = 0.5 ** (age / TREND_HALF_LIFE_DAYS)
    design = np.column_stack([np.ones_like(age), -age]) if len(x) >= 21 else np.ones((len(x), 1))
    inverse = np.linalg.pinv(design.T @ (design * weights[:, None]))
    beta = inverse @ (design.T @ (weights * x))
    residuals = x - design @ beta
    # In-sample residuals understate the scatter by the parameters fitted to them (the line's, the profile's).
    dof = max(len(x) - design.shape[1] - fitted_elsewhere, 1)
    recent = age <= SCATTER_DAYS
    scatter = float(np.sqrt(np.mean(residuals[recent] ** 2) * len(x) / dof)) if recent.sum() > 1 else float("nan")
    # The sandwich form: the weights say how much a day matters, not how precise it is.
    meat = design.T @ (design * (weights**2 * residuals**2)[:, None])
    cov = inverse @ meat @ inverse * len(x) / max(len(x) - design.shape[1], 1)
    if design.shape[1] == 1:
        beta, cov = np.array([beta[0], 0.0]), np.array([[cov[0, 0], 0.0], [0.0, 0.0]])
    return beta, cov, scatter


def forecast_month(series: pd.Series, now: datetime) -> Forecast:
    """The month-end total of `series` (credits by day, this month's days included) as of `now`.

    Complete days before today teach the pattern; today's row is partial, so only the rest of today is
    forecast on top of it (in proportion to the time left), then each day to the month's end. A scope that
    spent every day is modelled multiplicatively (log credits: growth compounds, scatter is a share of the
    day); one with idle days additively.
    """
    series = series.sort_index()
    return _forecast(_ordinals(series.index), series.to_numpy(dtype=float), now)


def _forecast(ordinals: np.ndarray, credits: np.ndarray, now: datetime) -> Forecast:
    """`forecast_month` on arrays: day ordinals (ascending) and their credits."""
    today = now.date().toordinal()
    first = month_start(now).toordinal()
    spent = float(credits[(ordinals >= first) & (ordinals <= today)].sum())
    past = (ordinals >= today - HISTORY_DAYS) & (ordinals < today)
    if not past.any():
        return Forecast(None, None, None)
    values, age = credits[past], (today - ordinals[past]).astype(float)
    past_weekday = _weekday(ordinals[past])
    elapsed = (now - datetime.combine(now.date(), datetime.min.time())) / timedelta(days=1)
    ahead_days = np.arange(today, month_end(now).toordinal() + 1, dtype=np.int64)
    days = [date.fromordinal(int(o)) for o in ahead_days]
    ahead = (ahead_days - today).astype(float)
    share = np.ones(len(ahead_days))
    share[0] = max(0.0, 1.0 - elapsed)
    weekday = _weekday(ahead_days)
    seen = np.bincount(past_weekday, minlength=7)
    weekly = len(values) >= 14  # each weekday seen twice
    if (values > 0).all():
        logs = np.log(values)
        profile = np.zeros(7)
        if weekly:
            sums = np.bincount(past_weekday, weights=logs, minlength=7)
            means = np.where(seen > 0, sums / np.maximum(seen, 1), np.nan)
            profile = np.nan_to_num(means - np.nanmean(means))
        beta, cov, scatter = _wls(logs - profile[past_weekday], age, 7 if weekly else 0)
        scatter = 0.0 if math.isnan(scatter) else scatter
        expected = np.exp(beta[0] + beta[1] * ahead + profile[weekday] + scatter**2 / 2) * share
        day_noise = float(np.sum(expected**2) * (math.exp(scatter**2) - 1))
        loading = np.array([expected.sum(), (expected * ahead).sum()])
        by_weekday = np.bincount(weekday, weights=expected, minlength=7) * scatter
        level = float(np.exp(beta[0] + scatter**2 / 2) * np.mean(np.exp(profile)))
    else:
        profile = _weekly_profile(values, past_weekday)
        active = profile[past_weekday] > 0  # a weekday that never spends says nothing about the level
        if not active.any():
            return Forecast(round(spent, 2), round(spent, 2), round(spent, 2), pd.Series(0.0, index=days), 0.0)
        beta, cov, scatter = _wls(values[active] / profile[past_weekday][active], age[active], 7 if weekly else 0)
        scatter = float(np.mean(values)) if math.isnan(scatter) else scatter
        factor = profile[weekday]
        expected = np.clip(beta[0] + beta[1] * ahead, 0.0, None) * factor * share
        day_noise = float(np.sum((share * factor * scatter) ** 2))
        loading = np.array([np.sum(share * factor), np.sum(share * factor * ahead)])
        by_weekday = np.bincount(weekday, weights=share, minlength=7) * scatter
        level = max(float(beta[0]), 0.0)
    # Each weekday's factor is itself a mean of a few days: its error moves all of that weekday's days together.
    profile_error = float(np.sum(by_weekday[seen > 1] ** 2 / seen[seen > 1])) if weekly else 0.0
    variance = day_noise + float(loading @ cov @ loading) + profile_error
    point = float(expected.sum())
    margin = Z90 * math.sqrt(max(variance, 0.0))
    return Forecast(
        total=round(spent + point, 2),
        low=round(spent + max(0.0, point - margin), 2),
        high=round(spent + point + margin, 2),
        daily=pd.Series(expected, index=days),
        level=level,
    )


def exhausted_on(series: pd.Series, forecast: Forecast, budget: float | None, now: datetime) -> date | None:
    """The day the month's spend reaches `budget`: when it did, or when the forecast says it will this month."""
    series = series.sort_index()
    return _exhausted(_ordinals(series.index), series.to_numpy(dtype=float), forecast, budget, now)


def _exhausted(
    ordinals: np.ndarray, credits: np.ndarray, forecast: Forecast, budget: float | None, now: datetime
) -> date | None:
    if budget is None:
        return None
    month = (ordinals >= month_start(now).toordinal()) & (ordinals <= now.date().toordinal())
    running = np.cumsum(credits[month])
    reached = np.nonzero(running >= budget)[0]
    if len(reached):
        return date.fromordinal(int(ordinals[month][reached[0]]))
    ahead = (running[-1] if len(running) else 0.0) + np.cumsum(forecast.daily.to_numpy(dtype=float))
    # Forecast sums carry float noise; credits are counted in cents.
    reached = np.nonzero(ahead >= budget - CENT / 2)[0]
    return forecast.daily.index[reached[0]] if len(reached) else None


def crossed(spent: float, budget: float | None, thresholds: tuple[float, ...]) -> list[float]:
    """The thresholds (percent of `budget`) that month-to-date spend has reached, lowest first."""
    if not budget or budget <= 0:
        return []
    return sorted(t for t in thresholds if spent >= budget * t / 100.0)


def status_of(spent: float, forecast: float | None, budget: float | None, thresholds: tuple[float, ...]) -> str | None:
    """over: the budget is spent; warn: a warn threshold is crossed or the forecast passes the budget; else ok."""
    if budget is None:
        return None
    if spent >= budget:
        return "over"
    warned = [t for t in crossed(spent, budget, thresholds) if t < 100]
    return "warn" if warned or (forecast is not None and forecast > budget) else "ok"


def budget_rows(
    daily: pd.DataFrame, keys: pd.DataFrame, settings: BudgetSettings, now: datetime, budgeted_only: bool = False
) -> pd.DataFrame:
    """One row per key, environment, owner and the account (COLUMNS), budgeted or not (`budgeted_only`: the
    scopes with a budget, and the account); a budget named for a scope that has no usage at all gets a row with
    unknown spend (nothing was collected for it)."""
    scoped = scope_daily(daily, keys, own_scope_keys(settings, budgeted_only))
    return scoped_budget_rows(scoped, keys, settings, now, budgeted_only)


def scoped_budget_rows(
    scoped: pd.DataFrame, keys: pd.DataFrame, settings: BudgetSettings, now: datetime, budgeted_only: bool = False
) -> pd.DataFrame:
    """`budget_rows` from the days already summed per scope (`scope_daily`'s frame, sorted by scope, name, day)."""
    scoped = scoped[scoped["day"] <= now.date()] if not scoped.empty else scoped
    names: dict[str, list[str]] = {
        "key": sorted(keys["key_name"].dropna().unique()),
        "environment": sorted(keys["environment"].dropna().unique()),
        "owner": sorted(keys["owner"].dropna().unique()),
        "account": [ACCOUNT],
    }
    for scope, table in (("key", settings.keys), ("environment", settings.environments), ("owner", settings.owners)):
        names[scope] += sorted(name for name, _ in table if name not in names[scope])
        if budgeted_only:
            names[scope] = [n for n in names[scope] if settings.budget_for(scope, n) is not None]
    # One pass over sorted arrays: each scope's days are a slice (pandas per group would cost ~1 s at 1,000 keys).
    groups: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    if not scoped.empty:
        ordinals = _ordinals(scoped["day"])
        credits = scoped["credits"].to_numpy(dtype=float)
        scope_of, name_of = scoped["scope"].to_numpy(dtype=object), scoped["name"].to_numpy(dtype=object)
        starts = np.flatnonzero((scope_of[1:] != scope_of[:-1]) | (name_of[1:] != name_of[:-1])) + 1
        cuts = [0, *starts.tolist(), len(scoped)]
        for lo, hi in itertools.pairwise(cuts):
            groups[(scope_of[lo], name_of[lo])] = (ordinals[lo:hi], credits[lo:hi])
    first = month_start(now).toordinal()
    rows = []
    for scope in SCOPES:
        for name in names[scope]:
            budget = settings.budget_for(scope, name)
            found = groups.get((scope, name))
            if found is None:
                rows.append(_row(scope, name, now, budget, None, Forecast(None, None, None), None, None))
                continue
            days, credits = found
            spent = round(float(credits[days >= first].sum()), 2)
            forecast = _forecast(days, credits, now)
            status = status_of(spent, forecast.total, budget, settings.thresholds)
            exhausted = _exhausted(days, credits, forecast, budget, now)
            rows.append(_row(scope, name, now, budget, spent, forecast, exhausted, status))
    return pd.DataFrame(rows, columns=COLUMNS)


def _row(
    scope: str,
    name: str,
    now: datetime,
    budget: float | None,
    spent: float | None,
    forecast: Forecast,
    exhausted: date | None,
    status: str | None,
) -> dict:
    return {
        "scope": scope,
        "name": name,
        "month": month_label(now),
        "budget_credits": budget,
        "spent_credits": spent,
        "forecast_credits": forecast.total,
        "forecast_low": forecast.low,
        "forecast_high": forecast.high,
        "projected_exhausted_on": exhausted.isoformat() if exhausted else None,
        "status": status,
    }


def runway(account_daily: pd.Series, balance: float, as_of: datetime, now: datetime, source: str) -> Runway:
    """What is left of a prepaid `balance` read at `as_of` (the start of that day's spend) and how long it lasts
    at the account's own daily and weekly pattern."""
    series = account_daily.sort_index()
    since = float(series[[as_of.date() <= d <= now.date() for d in series.index]].sum()) if len(series) else 0.0
    remaining = round(balance - since, 2)
    forecast = forecast_month(series, now)
    if forecast.level is None or forecast.level <= 0:
        return Runway(balance, as_of, round(since, 2), remaining, None, None, None, source)
    if remaining <= 0:  # already spent: the day the spend since `as_of` reached the balance
        spent = series[[as_of.date() <= d <= now.date() for d in series.index]].cumsum()
        gone_on = next((d for d, total in spent.items() if total >= balance), now.date())
        return Runway(balance, as_of, round(since, 2), remaining, forecast.level, 0.0, gone_on, source)
    ordinals, today = _ordinals(series.index), now.date().toordinal()
    past = (ordinals >= today - HISTORY_DAYS) & (ordinals < today)
    profile = _weekly_profile(series.to_numpy(dtype=float)[past], _weekday(ordinals[past]))
    elapsed = (now - datetime.combine(now.date(), datetime.min.time())) / timedelta(days=1)
    left, day, days = remaining, now.date(), 0.0
    for step in range(RUNWAY_HORIZON_DAYS):
        share = max(0.0, 1.0 - elapsed) if step == 0 else 1.0
        need = forecast.level * profile[day.weekday()] * share
        if need >= left:
            days += share * (left / need) if need > 0 else 0.0
            return Runway(balance, as_of, round(since, 2), remaining, forecast.level, round(days, 1), day, source)
        left -= need
        days += share
        day += timedelta(days=1)
    return Runway(balance, as_of, round(since, 2), remaining, forecast.level, None, None, source)


def latest_balance(
    configured: tuple[float, datetime] | None, entered: Mapping[str, object] | None
) -> tuple[float, datetime, str] | None:
    """The newer of the configured balance and the one entered on the page (by its as-of date)."""
    candidates: list[tuple[float, datetime, str]] = []
    if configured is not None:
        candidates.append((configured[0], configured[1], "config"))
    if entered:
        who = entered.get("entered_by") or "someone"
        candidates.append(
            (float(entered["credits"]), pd.Timestamp(entered["as_of"]).to_pydatetime(), f"entered on the page by {who}")
        )
    return max(candidates, key=lambda c: c[1]) if candidates else None
