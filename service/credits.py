"""Credit reconciliation: read the billing data, judge a range, or read the days the last refresh judged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from analytics import credits
from analytics.pricing import Pricing, PricingConfig, resolve_pricing
from collectors.contract import PUBLISHED_PRICING
from service.results import Provenance, provenance, usable
from store import Source, credit_reads, result_tables

# The refresh judges this many days back from its as-of day: the Credits page's ranges up to a month
# (and the weekly review's week) read them; longer ranges are judged when asked for.
STORED_DAYS = 31


def pricing_for(source: Source, configured: PricingConfig) -> Pricing:
    """The API's rates where readable, else `[pricing]`, else the published ones; the result says which."""
    return resolve_pricing(credit_reads.pricing_state(source), configured, PUBLISHED_PRICING)


def billing_data(
    source: Source,
    since: datetime | None,
    until: datetime,
    envs: list[str] | None,
    configured: PricingConfig,
    orphans_since: datetime | None = None,
    keys: list[str] | None = None,
) -> credits.BillingData:
    """What reconciliation needs for jobs created in [since, until] (charges for unlisted jobs from `orphans_since`);
    with `keys`, the rows of that key group only."""
    pricing = pricing_for(source, configured)
    return credits.BillingData(
        jobs=credit_reads.jobs_with_charges(source, since, until, envs, keys),
        orphan_events=credit_reads.orphan_charge_events(source, orphans_since or since, until, envs, keys),
        daily=credit_reads.daily_charges(source, since.date() if since else None, until.date(), envs, keys),
        rates=pricing.rates,
        jobs_listed_at=credit_reads.jobs_listed_at(source, keys),
        pricing=pricing,
        jobs_history_from=credit_reads.jobs_history_from(source, keys),
    )


def day_end(day: date) -> datetime:
    return datetime(day.year, day.month, day.day) + timedelta(days=1)


@dataclass(frozen=True)
class Judged:
    nothing: bool  # no jobs or usage collected in the range
    judgement: credits.Judgement
    provenance: Provenance


def _stored_pricing(detail: dict[str, Any]) -> Pricing:
    p = detail["pricing"]
    return Pricing(dict(p["rates"]), dict(p["sources"]), p["source"], p["label"], p.get("warning"))


def judge(
    db_path: Source, settings: credits.ReconcileSettings, now: datetime, start: datetime, end: datetime, envs: list[str]
) -> Judged:
    """Discrepancies, headline numbers and daily spend of [start, end] in `envs`, without a ledger.

    Read from the stored days when the last refresh judged them with these settings, else judged now.
    """
    meta = usable(db_path, "credits", now, settings=settings)
    if meta is not None and meta.window_start is not None and meta.window_start <= start:
        first, last = start.date(), min(end, meta.as_of).date()
        found = result_tables.discrepancies(db_path, first, last, envs)
        found = found[list(credits.DISCREPANCY_COLUMNS)].reset_index(drop=True)
        for name in ("category", "key_name", "job_id", "day", "pricing_source", "detail"):
            found[name] = found[name].astype("object").where(found[name].notna(), None)  # as judged: None
        # The page needs the range's totals (summed here, in stored order, as the refresh summed them) and its
        # settled usage, not every key-day row with its names (a month of 10,000 keys is ~700,000 of them).
        totals = result_tables.credit_day_values(db_path, first, last, envs, credits.CREDIT_DAY_COLUMNS[4:])
        settled = result_tables.settled_credit_days(db_path, first, last, envs, credits.USAGE_COLUMNS)
        summary_days = result_tables.summary_days(db_path, first, last, envs).drop(columns="environment")
        summary_days["explained_by"] = summary_days["explained_by"].map(lambda v: list(v) if v is not None else [])
        judgement = credits.Judgement(
            found,
            credits.summary_from_days(totals, found),
            credits.usage_from_days(settled),
            summary_days,
            _stored_pricing(meta.detail),
        )
        nothing = totals.empty
    else:
        data = billing_data(db_path, start, day_end(end.date()), envs, settings.pricing)
        judgement = credits.judge_range(data, settings, now, start, end)
        nothing = data.jobs.empty and data.daily.empty
    return Judged(nothing, judgement, provenance(db_path, now, meta))


def stored_start(now: datetime) -> datetime:
    """Where the range a refresh stores begins: STORED_DAYS days back from `now`'s day."""
    return datetime.combine(now.date() - timedelta(days=STORED_DAYS - 1), datetime.min.time())


@dataclass(frozen=True)
class StoredGroup:
    """One key group's part of what a refresh stores, before the summary convention all groups teach together."""

    reconciliation: credits.GroupReconciliation
    environment: dict[str, Any]  # key -> environment


def stored_group(
    source: Source, settings: credits.ReconcileSettings, now: datetime, keys: list[str] | None = None
) -> tuple[StoredGroup, pd.DataFrame]:
    """The last STORED_DAYS days of the key group `keys` (None: every key) judged as credits.judge_range judges
    them, up to the summary convention (see stored_frames); and their credit days (credits.credit_days rows,
    final per key: a refresh stores them as they come, in credits.CREDIT_DAY_ORDER)."""
    start = stored_start(now)
    data = billing_data(source, start, day_end(now.date()), None, settings.pricing, keys=keys)
    environment = dict(zip(data.daily["key_name"], data.daily["environment"], strict=True))
    environment.update(zip(data.jobs["key_name"], data.jobs["environment"], strict=True))
    group = StoredGroup(credits.reconcile_group(data, settings, now, start=start, end=now), environment)
    return group, credits.credit_days(data, settings, now, start, now)


@dataclass(frozen=True)
class StoredCredits:
    """What a refresh stores of the credits but the credit days: the range's discrepancies and the summary days
    that differ (each with its key's environment), and the pricing they were judged with."""

    found: pd.DataFrame
    summary_days: pd.DataFrame
    pricing: Pricing
    start: datetime


def stored_frames(groups: list[StoredGroup], now: datetime) -> StoredCredits:
    """Disjoint key groups' parts (stored_group) as one range over all their keys, exactly as judging every key
    at once: one summary convention learnt from every group's days, then each group's days settled by it."""
    left_out = credits.summary_convention(g.reconciliation.fits.votes for g in groups)
    finished = []
    for group in groups:  # each group's matching days dropped as it is settled (most days, at scale)
        done = credits.finish_reconcile(group.reconciliation, left_out)
        differing = done.summary_days[done.summary_days["status"] != "matches"]
        finished.append(credits.Reconciliation(done.found, differing))
    done = credits.join_reconciliations(finished)
    environment = {k: v for g in groups for k, v in g.environment.items()}
    found = done.found.assign(environment=done.found["key_name"].map(environment), ordinal=range(len(done.found)))
    # The days that differ from the charges, explained or not (as judge_range keeps them).
    differing = done.summary_days.reset_index(drop=True)
    return StoredCredits(
        found,
        differing.assign(environment=differing["key_name"].map(environment)),
        groups[0].reconciliation.pricing,
        stored_start(now),
    )
