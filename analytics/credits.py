"""Credit reconciliation: expected credits per job, discrepancies by fixed category, and spend summaries."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from analytics.ledger import DEFAULT_MAX_BYTES
from analytics.pricing import Pricing, PricingConfig, api_only

CATEGORIES = (
    "overcharged",
    "undercharged",
    "failed_but_charged",
    "missing_output",
    "duplicate_charge",
    "orphan_charge",
    "summary_mismatch",
    "missing_in_provider",
    "missing_in_ledger",
    "ledger_mismatch",
)
CATEGORY_HELP = {
    "overcharged": "charged more than billed minutes × model rate",
    "undercharged": "charged less than billed minutes × model rate",
    "failed_but_charged": "the job failed but credits were kept",
    "missing_output": "completed, but the provider lists no output URL",
    "duplicate_charge": "more than one charge event for one job",
    "orphan_charge": "a charge event for a job the provider never listed",
    "summary_mismatch": "a key's daily summary credits differ from the sum of its charges that day, "
    "by more than the listed duplicate, orphan and failed-but-charged rows of that day explain",
    "missing_in_provider": "in the team ledger, but the provider never listed the job",
    "missing_in_ledger": "the provider ran the job, but the team ledger does not have it",
    "ledger_mismatch": "model, status or credits differ between the ledger and the provider",
}
# Categories whose (positive) delta is money the provider owes back.
REFUNDABLE = frozenset({"overcharged", "failed_but_charged", "duplicate_charge", "orphan_charge"})
OUTPUT_COLUMNS = (
    "category",
    "key_name",
    "job_id",
    "day",
    "expected_credits",
    "charged_credits",
    "delta",
    "pricing_source",
)
DISCREPANCY_COLUMNS = (*OUTPUT_COLUMNS, "refund_due", "detail")
# Rows whose credits a provider's daily summary may leave out; a day's difference they add up to is explained.
EXPLAINING = ("duplicate_charge", "orphan_charge", "failed_but_charged")
# Beyond this many explaining rows on one key-day, only whole categories are tried (2^n subsets otherwise).
_MAX_SUBSET_ROWS = 12
ROUNDING_POLICIES = {
    "exact": "exact seconds (billed minutes = seconds / 60)",
    "second": "each started second (seconds rounded up)",
    "minute": "each started minute (minutes rounded up)",
}
TERMINAL_STATUSES = ("completed", "failed")
# Absorbs binary floating point noise so a delta of exactly the tolerance is never flagged.
_EPSILON = 1e-9


@dataclass(frozen=True)
class ReconcileSettings:
    rounding: str = "exact"
    tolerance: float = 0.01
    # A day's summary is compared only once this long has passed after the day ended (jobs settle late).
    summary_settle_minutes: float = 15.0
    ledger_max_bytes: int = DEFAULT_MAX_BYTES
    pricing: PricingConfig = PricingConfig()


def billed_minutes(duration_seconds: pd.Series, rounding: str = "exact") -> pd.Series:
    """Minutes the provider bills for each duration under the rounding policy (NaN stays NaN)."""
    seconds = pd.to_numeric(duration_seconds, errors="coerce").astype("float64")
    if rounding == "exact":
        return seconds / 60.0
    if rounding == "second":
        # Round before ceil so 12.000000001 (float noise) does not bill an extra second.
        return np.ceil(seconds.round(6)) / 60.0
    if rounding == "minute":
        return np.ceil((seconds / 60.0).round(9))
    raise ValueError(f"unknown rounding policy '{rounding}'")


def expected_credits(jobs: pd.DataFrame, rates: Mapping[str, float], settings: ReconcileSettings) -> pd.Series:
    """Billed minutes × the model's credits per minute; NaN when the model is unpriced or the duration unknown."""
    rate = jobs["model"].map(lambda m: rates.get(str(m).lower()) if isinstance(m, str) else None)
    return billed_minutes(jobs["duration_seconds"], settings.rounding) * pd.to_numeric(rate, errors="coerce")


@dataclass(frozen=True)
class BillingData:
    """What the store holds for reconciliation; see store.credit_reads for the exact columns."""

    # one row per job: job_id, key_name, environment, created_at, status, model, output_format,
    # duration_seconds, credits_charged, billing_status, output_url, charge_events, charge_credits,
    # first_charge_credits, events_covered
    jobs: pd.DataFrame
    # charge events whose job the jobs list never showed: event_id, key_name, environment, occurred_at,
    # job_id, model, credits
    orphan_events: pd.DataFrame
    # one row per key and day of the usage summary: key_name, environment, day, summary_credits,
    # fetched_at, charges (the key's charges that day from jobs and charge events)
    daily: pd.DataFrame
    rates: dict[str, float]
    # per key: when the last successful jobs listing started (charges before it must belong to a listed job)
    jobs_listed_at: dict[str, datetime] = field(default_factory=dict)
    # where `rates` came from (see analytics.pricing); None means they were all read from the API
    pricing: Pricing | None = None
    # per key whose job history was deliberately cut (max_job_pages_first_run): its oldest job held
    jobs_history_from: dict[str, datetime] = field(default_factory=dict)

    @property
    def pricing_used(self) -> Pricing:
        return self.pricing if self.pricing is not None else api_only(self.rates)


def _in_window(moments: pd.Series, start: datetime | None, end: datetime) -> pd.Series:
    times = pd.to_datetime(moments)
    mask = times <= pd.Timestamp(end)
    if start is not None:
        mask &= times >= pd.Timestamp(start)
    return mask.fillna(False).astype(bool)


def _day_text(moments: pd.Series) -> pd.Series:
    times = pd.to_datetime(moments)
    return times.dt.strftime("%Y-%m-%d").where(times.notna(), None)


def _rows(category: str, frame: pd.DataFrame, **columns: Any) -> pd.DataFrame:
    out = pd.DataFrame({"category": category}, index=frame.index)
    for name, value in columns.items():
        out[name] = value
    return out


_NUMERIC = ("expected_credits", "charged_credits", "delta", "refund_due")


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in _NUMERIC else "object") for c in DISCREPANCY_COLUMNS})


def prepare_jobs(jobs: pd.DataFrame, rates: Mapping[str, float], settings: ReconcileSettings) -> pd.DataFrame:
    """Jobs with `expected_full` (minutes × rate), `expected_due` (0 when failed) and `settled`."""
    out = jobs.copy()
    out["credits_charged"] = pd.to_numeric(out["credits_charged"], errors="coerce").astype("float64")
    for name in ("charge_credits", "first_charge_credits"):
        out[name] = pd.to_numeric(out.get(name, np.nan), errors="coerce").astype("float64")
    out["charge_events"] = pd.to_numeric(out.get("charge_events", 0), errors="coerce").fillna(0).astype("int64")
    out["expected_full"] = expected_credits(out, rates, settings)
    out["settled"] = out["status"].isin(TERMINAL_STATUSES)
    out["expected_due"] = out["expected_full"].where(out["status"] != "failed", 0.0)
    has_output = out["output_url"].astype("object").map(lambda u: isinstance(u, str) and bool(u.strip()))
    out["has_output"] = has_output.astype(bool)
    return out


def _job_discrepancies(jobs: pd.DataFrame, tolerance: float, pricing: Pricing) -> list[pd.DataFrame]:
    settled = jobs[jobs["settled"]]
    day = _day_text(settled["created_at"])
    limit = tolerance + _EPSILON
    found: list[pd.DataFrame] = []

    failed = settled[(settled["status"] == "failed") & (settled["credits_charged"] > limit)]
    found.append(
        _rows(
            "failed_but_charged",
            failed,
            key_name=failed["key_name"],
            job_id=failed["job_id"],
            day=day[failed.index],
            expected_credits=0.0,
            charged_credits=failed["credits_charged"],
            delta=failed["credits_charged"],
            refund_due=failed["credits_charged"],
            detail="status failed, billing " + failed["billing_status"].fillna("unknown").astype(str),
        )
    )

    completed = settled[settled["status"] == "completed"]
    priced = completed[completed["expected_full"].notna() & completed["credits_charged"].notna()]
    delta = priced["credits_charged"] - priced["expected_full"]
    for category, mask in (("overcharged", delta > limit), ("undercharged", delta < -limit)):
        hit = priced[mask]
        minutes = hit["duration_seconds"].astype("float64") / 60.0
        refund = delta[mask].clip(lower=0) if category == "overcharged" else 0.0
        found.append(
            _rows(
                category,
                hit,
                key_name=hit["key_name"],
                job_id=hit["job_id"],
                day=day[hit.index],
                expected_credits=hit["expected_full"],
                charged_credits=hit["credits_charged"],
                delta=delta[mask],
                refund_due=refund,
                detail=hit["model"].astype(str) + " · " + minutes.round(2).astype(str) + " min",
                pricing_source=hit["model"].map(pricing.source_of),
            )
        )

    no_output = completed[~completed["has_output"]]
    found.append(
        _rows(
            "missing_output",
            no_output,
            key_name=no_output["key_name"],
            job_id=no_output["job_id"],
            day=day[no_output.index],
            expected_credits=no_output["expected_full"],
            charged_credits=no_output["credits_charged"],
            delta=no_output["credits_charged"] - no_output["expected_full"],
            refund_due=0.0,
            detail="completed without an output URL",
            pricing_source=no_output["model"].map(pricing.source_of),
        )
    )

    # Seen charge events are proof whatever the coverage; missing coverage only hides duplicates.
    dup = jobs[jobs["charge_events"] > 1]
    single = dup["credits_charged"].where(dup["credits_charged"] > 0, dup["first_charge_credits"])
    extra = dup["charge_credits"] - single
    found.append(
        _rows(
            "duplicate_charge",
            dup,
            key_name=dup["key_name"],
            job_id=dup["job_id"],
            day=_day_text(dup["created_at"]),
            expected_credits=single,
            charged_credits=dup["charge_credits"],
            delta=extra,
            refund_due=extra.clip(lower=0),
            detail=dup["charge_events"].astype(str) + " charge events for one job",
            # The summary day that counted the extra charge is the day of the last one (store.credit_reads).
            charge_day=_day_text(dup["last_charge_at"] if "last_charge_at" in dup else dup["created_at"]),
        )
    )
    return found


def _orphan_discrepancies(orphans: pd.DataFrame, listed_at: Mapping[str, datetime]) -> pd.DataFrame:
    if orphans.empty:
        return _empty()
    cut = orphans["key_name"].map(lambda k: listed_at.get(k))
    # A charge newer than the key's last jobs listing may belong to a job we simply have not listed yet.
    judged = orphans[cut.notna() & (pd.to_datetime(orphans["occurred_at"]) < pd.to_datetime(cut))]
    if judged.empty:
        return _empty()
    grouped = judged.groupby(["key_name", "job_id"], as_index=False).agg(
        occurred_at=("occurred_at", "min"), credits=("credits", "sum"), events=("event_id", "count")
    )
    return _rows(
        "orphan_charge",
        grouped,
        key_name=grouped["key_name"],
        job_id=grouped["job_id"],
        day=_day_text(grouped["occurred_at"]),
        expected_credits=0.0,
        charged_credits=grouped["credits"],
        delta=grouped["credits"],
        refund_due=grouped["credits"],
        detail=grouped["events"].astype(str) + " charge event(s); the jobs list never showed this job",
    )


def judged_summary_days(
    daily: pd.DataFrame,
    listed_at: Mapping[str, datetime],
    now: datetime,
    settings: ReconcileSettings,
    history_from: Mapping[str, datetime] | None = None,
) -> pd.Series:
    """Which summary days can be compared: over, settled, both summary and jobs fetched after that, and after
    the day of the oldest job held where a key's first job backfill was capped (`history_from`): before it
    the key's charges are not all held, so a summary day there would differ by what was never fetched."""
    if daily.empty:
        return pd.Series(dtype=bool)
    settle = pd.Timedelta(days=1) + pd.Timedelta(minutes=settings.summary_settle_minutes)
    day = pd.to_datetime(daily["day"])
    day_end = day + settle
    listed = pd.to_datetime(daily["key_name"].map(lambda k: listed_at.get(k)))
    fetched = pd.to_datetime(daily["fetched_at"])
    ok = (day_end <= pd.Timestamp(now)) & (day_end <= fetched) & (day_end <= listed)
    if history_from:
        held_from = pd.to_datetime(daily["key_name"].map(lambda k: history_from.get(k)))
        ok &= held_from.isna() | (day > held_from.dt.normalize())
    return ok.fillna(False).astype(bool)


def _explaining_items(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The credits each listed duplicate, orphan or failed-but-charged row adds to its key-day's charges."""
    columns = ["key_name", "day", "category", "job_id", "credits"]
    rows = [p for p in parts if not p.empty and p["category"].iloc[0] in EXPLAINING]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(rows, ignore_index=True)
    day = frame["charge_day"].where(frame["category"] == "duplicate_charge") if "charge_day" in frame else None
    out = pd.DataFrame(
        {
            "key_name": frame["key_name"],
            "day": frame["day"] if day is None else day.fillna(frame["day"]),
            "category": frame["category"],
            "job_id": frame["job_id"],
            # duplicate: the extra charge(s); orphan: the charge; failed: what the failed job was charged
            "credits": frame["delta"].where(frame["category"] == "duplicate_charge", frame["charged_credits"]),
        }
    )
    return out[out["credits"].fillna(0.0) > 0].reset_index(drop=True)


def _explanations(delta: float, items: pd.DataFrame, limit: float) -> list[frozenset[int]]:
    """Sets of item positions whose credits, if the summary left them out, account for `delta` (summary −
    charges) within `limit`; whole categories first, then any subset of a small day's rows."""
    credits_of = items["credits"].astype("float64").tolist()
    by_category: dict[str, list[int]] = {}
    for position, category in enumerate(items["category"]):
        by_category.setdefault(category, []).append(position)
    fits: list[frozenset[int]] = []
    names = sorted(by_category)
    for size in range(len(names) + 1):
        for chosen in itertools.combinations(names, size):
            left_out = frozenset(p for c in chosen for p in by_category[c])
            if abs(delta + sum(credits_of[p] for p in left_out)) <= limit:
                fits.append(left_out)
    if not fits and len(credits_of) <= _MAX_SUBSET_ROWS:
        for size in range(1, len(credits_of) + 1):
            for chosen in itertools.combinations(range(len(credits_of)), size):
                if abs(delta + sum(credits_of[p] for p in chosen)) <= limit:
                    return [frozenset(chosen)]
    return fits


@dataclass(frozen=True)
class SummaryFits:
    """A range's judged summary key-days before the convention is chosen: each day's difference and, for the
    days with listed rows, every way of leaving some out that explains it; `votes` is what the days that only
    one way explains teach (category -> [left out, counted]), summed over key groups by summary_convention."""

    days: pd.DataFrame
    with_items: list[tuple[int, pd.DataFrame]]
    fits: list[list[frozenset[int]]]
    votes: dict[str, list[int]]


_SUMMARY_DAY_COLUMNS = ["key_name", "day", "summary_credits", "charges", "delta", "explained_credits", "explained_by",
                        "remainder", "status"]  # fmt: skip


def _summary_fits(
    daily: pd.DataFrame,
    listed_at: Mapping[str, datetime],
    now: datetime,
    start: datetime | None,
    end: datetime,
    settings: ReconcileSettings,
    items: pd.DataFrame,
    history_from: Mapping[str, datetime] | None = None,
) -> SummaryFits:
    """Every judged key-day of the usage summary against the key's charges, and how the listed duplicate,
    orphan and failed-but-charged rows of that day could explain the difference (see `_summary_days`)."""
    votes: dict[str, list[int]] = {c: [0, 0] for c in EXPLAINING}  # category -> [left out, counted]
    nothing = SummaryFits(pd.DataFrame(columns=_SUMMARY_DAY_COLUMNS), [], [], votes)
    if daily.empty:
        return nothing
    frame = daily[judged_summary_days(daily, listed_at, now, settings, history_from)]
    days = pd.to_datetime(frame["day"])
    keep = days <= pd.Timestamp(end.date())
    if start is not None:
        keep &= days >= pd.Timestamp(start.date())
    frame = frame[keep]
    if frame.empty:
        return nothing
    limit = settings.tolerance + _EPSILON
    out = pd.DataFrame(
        {
            "key_name": frame["key_name"].to_numpy(),
            "day": _day_text(frame["day"]).to_numpy(),
            "summary_credits": frame["summary_credits"].astype("float64").to_numpy(),
            "charges": frame["charges"].astype("float64").fillna(0.0).to_numpy(),
        }
    )
    out["delta"] = out["summary_credits"] - out["charges"]
    # Only the key-days with listed rows need a closer look; the rest match or not by their delta alone.
    grouped = {k: g for k, g in items.groupby(["key_name", "day"])} if not items.empty else {}
    with_items = [
        (i, grouped[(k, d)])
        for i, (k, d) in enumerate(zip(out["key_name"], out["day"], strict=True))
        if (k, d) in grouped
    ]
    fits_of = [_explanations(float(out["delta"].iat[i]), day_items, limit) for i, day_items in with_items]
    for (_, day_items), fits in zip(with_items, fits_of, strict=True):
        if len(fits) == 1:  # only days with one explanation teach the convention
            for position, category in enumerate(day_items["category"]):
                votes[category][0 if position in fits[0] else 1] += 1
    return SummaryFits(out, with_items, fits_of, votes)


def summary_convention(votes: Iterable[Mapping[str, Sequence[int]]]) -> frozenset[str]:
    """The categories the vendor's daily summary leaves out: those more days left out than counted (the votes
    of every key group's SummaryFits, so a fleet learns one convention, as one file would)."""
    total = {c: [0, 0] for c in EXPLAINING}
    for group in votes:
        for category, (dropped, counted) in group.items():
            total[category][0] += dropped
            total[category][1] += counted
    return frozenset(c for c, (dropped, counted) in total.items() if dropped > counted)


def _settle_summary_days(fits: SummaryFits, left_out: frozenset[str], settings: ReconcileSettings) -> pd.DataFrame:
    """Each key-day's explanation under the convention `left_out`, its remainder and status."""
    out = fits.days.copy()
    if out.empty:
        return out[_SUMMARY_DAY_COLUMNS]
    out["explained_credits"] = 0.0
    out["explained_by"] = [[] for _ in range(len(out))]
    for (i, day_items), day_fits in zip(fits.with_items, fits.fits, strict=True):
        categories = day_items["category"].tolist()
        if day_fits:  # of the explanations, the one that agrees best with the convention
            chosen = min(day_fits, key=lambda f: sum((c in left_out) != (p in f) for p, c in enumerate(categories)))
        else:
            chosen = frozenset(p for p, c in enumerate(categories) if c in left_out)
        positions = sorted(chosen)
        out.iat[i, out.columns.get_loc("explained_credits")] = float(day_items["credits"].iloc[positions].sum())
        out.iat[i, out.columns.get_loc("explained_by")] = [
            f"{categories[p]} {day_items['job_id'].iloc[p]}" for p in positions
        ]
    out["remainder"] = out["delta"] + out["explained_credits"]
    unexplained = out["remainder"].abs() > settings.tolerance + _EPSILON
    out["status"] = np.where(unexplained, "unexplained", np.where(out["explained_credits"] > 0, "explained", "matches"))
    return out[_SUMMARY_DAY_COLUMNS]


def _summary_days(
    daily: pd.DataFrame,
    listed_at: Mapping[str, datetime],
    now: datetime,
    start: datetime | None,
    end: datetime,
    settings: ReconcileSettings,
    items: pd.DataFrame,
) -> pd.DataFrame:
    """Every judged key-day of the usage summary against the key's charges, and how far the listed
    duplicate, orphan and failed-but-charged rows of that day explain the difference.

    The vendor does not say whether its daily summary counts a duplicate charge, a charge for an unlisted
    job or a failed job's charge. A day whose difference those rows account for is `explained`; which
    categories the summary leaves out is learnt from the days that only one choice explains, and the
    rest of a day's difference under that choice is its `remainder` (`unexplained` when beyond tolerance).
    """
    fits = _summary_fits(daily, listed_at, now, start, end, settings, items)
    return _settle_summary_days(fits, summary_convention([fits.votes]), settings)


def _summary_discrepancies(days: pd.DataFrame) -> pd.DataFrame:
    """One summary_mismatch per key-day whose difference the listed rows do not explain: the remainder only."""
    hit = days[days["status"] == "unexplained"]
    if hit.empty:
        return _empty()
    left_out = hit["explained_credits"].astype("float64")
    detail = "daily summary vs the sum of the key's job and charge-event credits"
    details = [
        detail + (f"; {out:,.2f} credits of listed rows the summary leaves out are not counted again" if out else "")
        for out in left_out
    ]
    return _rows(
        "summary_mismatch",
        hit,
        key_name=hit["key_name"],
        job_id=None,
        day=hit["day"],
        expected_credits=hit["charges"].astype("float64") - left_out,
        charged_credits=hit["summary_credits"],
        delta=hit["remainder"],
        refund_due=0.0,
        detail=details,
    )


@dataclass(frozen=True)
class LedgerPeriod:
    start: datetime
    end: datetime
    source: str  # how the start was chosen, for the report


def ledger_period(ledger: pd.DataFrame, now: datetime, since: datetime | None = None) -> LedgerPeriod:
    """The provider jobs a ledger should hold: created from `since` (default its earliest row) up to now."""
    if since is not None:
        return LedgerPeriod(since, now, "--since")
    created = pd.to_datetime(ledger["created_at"]).dropna()
    if created.empty:
        raise ValueError("the ledger has no created_at values, so its period is unknown: give a start (--since)")
    return LedgerPeriod(created.min().to_pydatetime(), now, "the ledger's earliest created_at")


def ledger_windows(
    ledger: pd.DataFrame,
    period: LedgerPeriod,
    listed_at: Mapping[str, datetime],
    history_from: Mapping[str, datetime],
) -> pd.Series:
    """Why each ledger row cannot be judged against the provider ("" when it can): a job the provider never
    listed is only missing if the provider's listing covers the row's key and time."""
    created = pd.to_datetime(ledger["created_at"])
    keys = ledger["key_name"] if "key_name" in ledger else pd.Series(None, index=ledger.index, dtype=object)
    known = keys.notna() & keys.isin(list(listed_at))
    listed = pd.to_datetime(keys.map(lambda k: listed_at.get(k)))
    cut = pd.to_datetime(keys.map(lambda k: history_from.get(k)))
    newest = max(listed_at.values()) if listed_at else None
    # A row naming no key is judged against the latest listing and the latest history cut of any key.
    listed = listed.where(known, pd.Timestamp(newest) if newest is not None else pd.NaT)
    cut = cut.where(known, pd.Timestamp(max(history_from.values())) if history_from else pd.NaT)
    labels = pd.Series("", index=ledger.index, dtype=object)
    rules = (
        (created > pd.Timestamp(period.end), "created after the reconciliation time"),
        (created < pd.Timestamp(period.start), "before the ledger period"),
        (keys.notna() & ~known, "its key's jobs were never listed by the provider here"),
        (created >= listed, "created after the key's last jobs listing (not collected yet)"),
        (created < cut, "older than the job history collected for its key"),
    )
    for mask, label in reversed(rules):  # the first rule that applies names the row
        labels = labels.mask(mask.fillna(False).astype(bool), label)
    return labels


def ledger_outside_window(
    ledger: pd.DataFrame, provider_ids: pd.Series, period: LedgerPeriod, data: BillingData
) -> pd.DataFrame:
    """Ledger rows the provider never listed that fall outside what its listing covers: labelled, not judged."""
    unknown = ledger[~ledger["job_id"].isin(set(provider_ids))]
    labels = ledger_windows(unknown, period, data.jobs_listed_at, data.jobs_history_from)
    return unknown[labels != ""].assign(window=labels[labels != ""])


def _ledger_discrepancies(
    jobs: pd.DataFrame,
    ledger: pd.DataFrame,
    period: LedgerPeriod,
    listed_at: Mapping[str, datetime],
    history_from: Mapping[str, datetime],
    tolerance: float,
) -> list[pd.DataFrame]:
    found: list[pd.DataFrame] = []
    provider_ids = set(jobs["job_id"])
    ledger_ids = set(ledger["job_id"])
    in_period = jobs[_in_window(jobs["created_at"], period.start, period.end)]

    missing = in_period[~in_period["job_id"].isin(ledger_ids)]
    found.append(
        _rows(
            "missing_in_ledger",
            missing,
            key_name=missing["key_name"],
            job_id=missing["job_id"],
            day=_day_text(missing["created_at"]),
            expected_credits=np.nan,
            charged_credits=missing["credits_charged"],
            delta=missing["credits_charged"],
            refund_due=0.0,
            detail="status " + missing["status"].astype(str),
        )
    )

    ledger_created = pd.to_datetime(ledger["created_at"])
    unknown = ledger[~ledger["job_id"].isin(provider_ids)]
    unknown = unknown[ledger_windows(unknown, period, listed_at, history_from) == ""]
    found.append(
        _rows(
            "missing_in_provider",
            unknown,
            key_name=unknown["key_name"],
            job_id=unknown["job_id"],
            day=_day_text(ledger_created[unknown.index]),
            expected_credits=unknown["credits"],
            charged_credits=0.0,
            delta=-unknown["credits"],
            refund_due=0.0,
            detail="ledger line " + unknown["line"].astype(str),
        )
    )

    both = ledger.merge(in_period, on="job_id", how="inner", suffixes=("_ledger", ""))
    # An unsettled job has no final status or charge yet; comparing now would only report noise.
    both = both[both["settled"]]
    if not both.empty:
        model_diff = both["model_ledger"].notna() & (both["model_ledger"] != both["model"].astype(str).str.lower())
        status_diff = both["status_ledger"].notna() & (both["status_ledger"] != both["status"])
        credit_diff = (both["credits"] - both["credits_charged"].fillna(0.0)).abs() > tolerance + _EPSILON
        hit = both[model_diff | status_diff | credit_diff].copy()
        details = []
        for index, row in hit.iterrows():
            parts = []
            if model_diff[index]:
                parts.append(f"model: ledger {row['model_ledger']}, provider {row['model']}")
            if status_diff[index]:
                parts.append(f"status: ledger {row['status_ledger']}, provider {row['status']}")
            if credit_diff[index]:
                parts.append(f"credits: ledger {row['credits']:g}, provider {row['credits_charged']:g}")
            details.append("; ".join(parts))
        found.append(
            _rows(
                "ledger_mismatch",
                hit,
                key_name=hit["key_name"],
                job_id=hit["job_id"],
                day=_day_text(hit["created_at"]),
                expected_credits=hit["credits"],
                charged_credits=hit["credits_charged"],
                delta=hit["credits_charged"] - hit["credits"],
                refund_due=0.0,
                detail=details,
            )
        )
    return found


@dataclass(frozen=True)
class Reconciliation:
    """Every discrepancy of a range, and every judged summary day with how the listed rows explain it."""

    found: pd.DataFrame
    summary_days: pd.DataFrame
    # ledger rows the provider never listed that fall outside its listing: labelled (`window`), not judged
    ledger_unjudged: pd.DataFrame | None = None


@dataclass(frozen=True)
class GroupReconciliation:
    """One key group's reconciliation before the summary convention, which every group's days teach together
    (summary_convention over each group's `fits.votes`); finish_reconcile completes it."""

    parts: list[pd.DataFrame]  # job and orphan discrepancies (and the ledger's)
    fits: SummaryFits
    pricing: Pricing
    settings: ReconcileSettings
    ledger_unjudged: pd.DataFrame | None


def reconcile_group(
    data: BillingData,
    settings: ReconcileSettings,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    ledger: pd.DataFrame | None = None,
    ledger_since: datetime | None = None,
    ledger_jobs: pd.DataFrame | None = None,
) -> GroupReconciliation:
    """`reconcile` up to the summary convention (same arguments), over the keys in `data`."""
    end = min(end, now) if end is not None else now
    pricing = data.pricing_used
    jobs = prepare_jobs(data.jobs, data.rates, settings)
    jobs = jobs[_in_window(jobs["created_at"], None, now)]
    ranged = jobs[_in_window(jobs["created_at"], start, end)]
    orphans = data.orphan_events
    if not orphans.empty:
        orphans = orphans[_in_window(orphans["occurred_at"], start, end)]
    parts = [
        *_job_discrepancies(ranged, settings.tolerance, pricing),
        _orphan_discrepancies(orphans, data.jobs_listed_at),
    ]
    fits = _summary_fits(
        data.daily, data.jobs_listed_at, now, start, end, settings, _explaining_items(parts), data.jobs_history_from
    )
    unjudged = None
    if ledger is not None:
        period = ledger_period(ledger, now, ledger_since)
        provider = jobs if ledger_jobs is None else prepare_jobs(ledger_jobs, data.rates, settings)
        provider = provider[_in_window(provider["created_at"], None, now)]
        unjudged = ledger_outside_window(ledger, provider["job_id"], period, data)
        parts.extend(
            _ledger_discrepancies(
                provider, ledger, period, data.jobs_listed_at, data.jobs_history_from, settings.tolerance
            )
        )
    return GroupReconciliation(parts, fits, pricing, settings, unjudged)


def finish_reconcile(group: GroupReconciliation, left_out: frozenset[str]) -> Reconciliation:
    """The group's discrepancies and summary days once the convention (`left_out`) is known."""
    days = _settle_summary_days(group.fits, left_out, group.settings)
    parts = [p for p in [*group.parts, _summary_discrepancies(days)] if not p.empty]
    if not parts:
        found = _empty()
    else:
        found = pd.concat(parts, ignore_index=True)
    for name in DISCREPANCY_COLUMNS:
        if name not in found:
            found[name] = None
    found = found[list(DISCREPANCY_COLUMNS)]
    sources = found["pricing_source"].astype("object")
    found["pricing_source"] = sources.where(sources.notna(), group.pricing.source)
    for name in _NUMERIC:
        # Adding 0.0 turns the -0.0 that rounding leaves into 0.0, which reads better in exports.
        found[name] = pd.to_numeric(found[name], errors="coerce").astype("float64").round(4) + 0.0
    for name in ("key_name", "job_id", "day", "detail"):
        found[name] = found[name].astype("object").where(found[name].notna(), None)
    return Reconciliation(sort_discrepancies(found), days, group.ledger_unjudged)


def join_reconciliations(finished: Sequence[Reconciliation]) -> Reconciliation:
    """Disjoint key groups' reconciliations, finished with one convention, as `reconcile` over all their keys
    gives it: discrepancies in report order, summary days in the summary's order (day, then key)."""
    found = [f.found for f in finished if not f.found.empty]
    days = [f.summary_days for f in finished if not f.summary_days.empty]
    unjudged = [f.ledger_unjudged for f in finished if f.ledger_unjudged is not None]
    return Reconciliation(
        sort_discrepancies(pd.concat(found, ignore_index=True)) if found else finished[0].found,
        pd.concat(days, ignore_index=True).sort_values(["day", "key_name"], kind="stable").reset_index(drop=True)
        if days
        else finished[0].summary_days,
        pd.concat(unjudged, ignore_index=True) if unjudged else None,
    )


def sort_discrepancies(found: pd.DataFrame) -> pd.DataFrame:
    """Discrepancies in report order: by day, category (CATEGORIES order), key, job."""
    order = {c: i for i, c in enumerate(CATEGORIES)}
    found = found.assign(_order=found["category"].map(order))
    found = found.sort_values(["day", "_order", "key_name", "job_id"], na_position="first", kind="stable")
    return found.drop(columns="_order").reset_index(drop=True)


def reconcile(
    data: BillingData,
    settings: ReconcileSettings,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    ledger: pd.DataFrame | None = None,
    ledger_since: datetime | None = None,
    ledger_jobs: pd.DataFrame | None = None,
) -> Reconciliation:
    """Every discrepancy in [start, end] (default: all history up to now), sorted by day, category, key, job.

    Each credit of difference is reported once: a summary day's difference that its listed duplicate,
    orphan and failed-but-charged rows explain is not reported again (see `_summary_days`).
    With a ledger, the ledger categories cover its own period: from `ledger_since` (default its earliest
    created_at) up to now, whatever the range. `ledger_jobs` (default `data.jobs`) are the provider jobs
    to match it against: all of them, even when the rest of the view is narrowed to some environments,
    or a row of another environment would look missing. Every row says which pricing it was judged with.
    One key group of every key: `reconcile_group`, then `finish_reconcile` with its own convention.
    """
    group = reconcile_group(data, settings, now, start, end, ledger, ledger_since, ledger_jobs)
    return finish_reconcile(group, summary_convention([group.fits.votes]))


def find_discrepancies(
    data: BillingData,
    settings: ReconcileSettings,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    ledger: pd.DataFrame | None = None,
    ledger_since: datetime | None = None,
    ledger_jobs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The discrepancies of `reconcile` (same arguments)."""
    return reconcile(data, settings, now, start, end, ledger, ledger_since, ledger_jobs).found


def output_rows(discrepancies: pd.DataFrame) -> pd.DataFrame:
    """The CLI/export shape: category, key_name, job_id, day, expected/charged credits (2 dp), delta and
    the pricing the row was judged with (api, config, published, or a + of them)."""
    out = discrepancies[list(OUTPUT_COLUMNS)].copy()
    for name in ("expected_credits", "charged_credits", "delta"):
        out[name] = out[name].round(2) + 0.0
    for name in ("key_name", "job_id", "day", "pricing_source"):
        out[name] = out[name].astype("object").where(out[name].notna(), "")
    return out


@dataclass(frozen=True)
class CreditSummary:
    charged: float  # jobs' charges plus extra charge events (duplicates, orphans)
    expected: float  # billed minutes × rate for settled jobs (0 for failed); unpriced jobs count as charged
    net_difference: float  # charged − expected
    refunds_due: float
    summary_billed: float  # what the provider's daily summaries say for the same days
    jobs: int
    settled_jobs: int
    in_flight_jobs: int
    unpriced_jobs: int
    successful_outputs: int
    cost_per_successful_output: float | None
    missing_output_credits: float
    events_covered_jobs: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


CREDIT_DAY_COLUMNS = [
    "day", "key_name", "environment", "model", "jobs_listed", "jobs", "in_flight_jobs", "unpriced_jobs",
    "successful_outputs", "credits", "expected", "duplicate_extra", "missing_output_credits",
    "events_covered_jobs", "orphan_credits", "summary_credits",
]  # fmt: skip
CREDIT_DAY_ORDER = ("day", "key_name", "model")  # credit_days' row order (a key-day's row without a model first)
USAGE_COLUMNS = ["day", "key_name", "environment", "model", "credits", "expected", "jobs", "successful_outputs"]


def _environment(frame: pd.DataFrame) -> pd.Series:
    if "environment" not in frame:
        return pd.Series("unconfigured", index=frame.index, dtype=object)
    return frame["environment"].fillna("unconfigured").astype(str)


def summarize(
    data: BillingData,
    discrepancies: pd.DataFrame,
    settings: ReconcileSettings,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> CreditSummary:
    """Charged vs expected, net difference, refunds due and cost per successful output for [start, end]."""
    return summary_from_days(credit_days(data, settings, now, start, end if end is not None else now), discrepancies)


def credit_days(
    data: BillingData, settings: ReconcileSettings, now: datetime, start: datetime | None, end: datetime
) -> pd.DataFrame:
    """The credit totals of [start, end] by day, key, environment and model, so that any run of days sums up.

    Per model: jobs listed (`jobs_listed`), settled (`jobs`), in flight, unpriced, successful outputs, the
    settled jobs' credits and expected credits, duplicate charges' extra, credits of outputs never delivered,
    jobs covered by events. Per key-day (model empty): charges for jobs never listed and the summary's credits.
    """
    end = min(end, now)
    jobs = prepare_jobs(data.jobs, data.rates, settings)
    jobs = jobs[_in_window(jobs["created_at"], start, end)]
    settled = jobs["settled"]
    charged = jobs["credits_charged"].fillna(0.0).where(settled, 0.0)
    expected = jobs["expected_due"].where(jobs["expected_full"].notna(), jobs["credits_charged"].fillna(0.0))
    completed = settled & (jobs["status"] == "completed")
    covered = jobs["events_covered"] if "events_covered" in jobs else pd.Series(False, index=jobs.index)
    per_job = pd.DataFrame(
        {
            "day": pd.to_datetime(jobs["created_at"]).dt.normalize(),
            "key_name": jobs["key_name"].astype(str),
            "environment": _environment(jobs),
            "model": jobs["model"].fillna("unknown").astype(str),
            "jobs_listed": 1,
            "jobs": settled.astype("int64"),
            "in_flight_jobs": (~settled).astype("int64"),
            "unpriced_jobs": (settled & jobs["expected_full"].isna()).astype("int64"),
            "successful_outputs": (completed & jobs["has_output"]).astype("int64"),
            "credits": charged,
            "expected": expected.where(settled, 0.0).fillna(0.0),
            "duplicate_extra": (jobs["charge_credits"] - jobs["credits_charged"])
            .where(settled & (jobs["charge_events"] > 1))
            .clip(lower=0)
            .fillna(0.0),
            "missing_output_credits": jobs["credits_charged"].fillna(0.0).where(completed & ~jobs["has_output"], 0.0),
            "events_covered_jobs": covered.fillna(False).astype(bool).astype("int64"),
        }
    )
    keys = ["day", "key_name", "environment", "model"]
    parts = [per_job.groupby(keys, as_index=False).sum(numeric_only=True)] if not per_job.empty else []
    orphans = data.orphan_events
    if not orphans.empty:
        orphans = orphans[_in_window(orphans["occurred_at"], start, end)]
        parts.append(
            pd.DataFrame(
                {
                    "day": pd.to_datetime(orphans["occurred_at"]).dt.normalize(),
                    "key_name": orphans["key_name"].astype(str),
                    "environment": _environment(orphans),
                    "orphan_credits": orphans["credits"].astype("float64"),
                }
            )
            .groupby(["day", "key_name", "environment"], as_index=False)
            .sum()
        )
    daily = data.daily
    if not daily.empty:
        days = pd.to_datetime(daily["day"])
        mask = days <= pd.Timestamp(end.date())
        if start is not None:
            mask &= days >= pd.Timestamp(start.date())
        daily = daily[mask]
        parts.append(
            pd.DataFrame(
                {
                    "day": pd.to_datetime(daily["day"]),
                    "key_name": daily["key_name"].astype(str),
                    "environment": _environment(daily),
                    "summary_credits": daily["summary_credits"].astype("float64"),
                }
            )
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in CREDIT_DAY_COLUMNS})
    out = pd.concat(parts, ignore_index=True)
    for name in CREDIT_DAY_COLUMNS[4:]:
        out[name] = out[name].fillna(0) if name in out else 0
    model = out["model"].astype("object") if "model" in out else pd.Series(None, index=out.index, dtype=object)
    out["model"] = model.where(model.notna(), None)
    return out[CREDIT_DAY_COLUMNS].sort_values(list(CREDIT_DAY_ORDER), na_position="first").reset_index(drop=True)


def summary_from_days(days: pd.DataFrame, discrepancies: pd.DataFrame) -> CreditSummary:
    """The headline numbers of a run of days: `credit_days` rows (any days, keys, environments) summed."""
    total = days[CREDIT_DAY_COLUMNS[4:]].sum() if not days.empty else pd.Series(0.0, index=CREDIT_DAY_COLUMNS[4:])
    charged = float(total["credits"]) + float(total["duplicate_extra"]) + float(total["orphan_credits"])
    expected = float(total["expected"])
    successful = int(total["successful_outputs"])
    refunds = (
        float(discrepancies.loc[discrepancies["category"].isin(REFUNDABLE), "refund_due"].sum())
        if not discrepancies.empty
        else 0.0
    )
    return CreditSummary(
        charged=round(charged, 2),
        expected=round(expected, 2),
        net_difference=round(charged - expected, 2),
        refunds_due=round(refunds, 2),
        summary_billed=round(float(total["summary_credits"]), 2),
        jobs=int(total["jobs_listed"]),
        settled_jobs=int(total["jobs"]),
        in_flight_jobs=int(total["in_flight_jobs"]),
        unpriced_jobs=int(total["unpriced_jobs"]),
        successful_outputs=successful,
        cost_per_successful_output=round(charged / successful, 4) if successful else None,
        missing_output_credits=round(float(total["missing_output_credits"]), 2),
        events_covered_jobs=int(total["events_covered_jobs"]),
    )


def usage_from_days(days: pd.DataFrame) -> pd.DataFrame:
    """The settled jobs' part of `credit_days` rows: what the spend charts and cost per output group."""
    if days.empty:
        return pd.DataFrame(columns=USAGE_COLUMNS)
    usage = days[days["model"].notna() & (days["jobs"] > 0)]
    return usage[USAGE_COLUMNS].astype({"jobs": "int64", "successful_outputs": "int64"}).reset_index(drop=True)


@dataclass(frozen=True)
class Judgement:
    """What the Credits page shows for a range: discrepancies, the headline summary and settled usage per day."""

    found: pd.DataFrame
    summary: CreditSummary
    usage: pd.DataFrame
    summary_days: pd.DataFrame  # the judged summary days that differ from the charges: explained or not
    pricing: Pricing
    ledger_unjudged: pd.DataFrame | None = None
    days: pd.DataFrame | None = None  # the `credit_days` rows the summary and usage were summed from


def judge_range(
    data: BillingData,
    settings: ReconcileSettings,
    now: datetime,
    start: datetime,
    end: datetime,
    ledger: pd.DataFrame | None = None,
    ledger_since: datetime | None = None,
    ledger_jobs: pd.DataFrame | None = None,
    environments: Sequence[str] | None = None,
) -> Judgement:
    """Discrepancies, summary and daily usage of [start, end]; with a ledger matched against `ledger_jobs`
    (every environment's jobs), ledger findings of keys outside `environments` are dropped afterwards."""
    done = reconcile(
        data, settings, now, start=start, end=end, ledger=ledger, ledger_since=ledger_since, ledger_jobs=ledger_jobs
    )
    found, unjudged = done.found, done.ledger_unjudged
    if ledger_jobs is not None and environments is not None:
        environment_of = dict(zip(ledger_jobs["key_name"], ledger_jobs["environment"], strict=True))

        shown = (None, *environments)

        def inside(frame: pd.DataFrame) -> pd.DataFrame:
            outside = frame["key_name"].map(lambda k: environment_of.get(k) not in shown if k else False)
            return frame[~outside.astype(bool)].reset_index(drop=True)

        found = inside(found) if not found.empty else found
        unjudged = inside(unjudged) if unjudged is not None and not unjudged.empty else unjudged
    days = credit_days(data, settings, now, start, end)
    # The page keeps the summary days that differ (explained or not): matching days are most of them at scale.
    differing = done.summary_days[done.summary_days["status"] != "matches"].reset_index(drop=True)
    return Judgement(
        found, summary_from_days(days, found), usage_from_days(days), differing, data.pricing_used, unjudged, days
    )


def credits_over_time(usage: pd.DataFrame, by: str, top: int = 8) -> pd.DataFrame:
    """Credits per day and `by` (model, key_name or environment), the smaller groups folded into "other"."""
    if by not in ("model", "key_name", "environment"):
        raise ValueError(f"cannot group credits by {by!r}")
    if usage.empty:
        return pd.DataFrame(columns=["day", "group", "credits", "expected", "jobs"])
    frame = usage.assign(group=usage[by].fillna("unknown").astype(str))
    ranking = frame.groupby("group")["credits"].sum().sort_values(ascending=False)
    keep = set(ranking.head(top).index)
    frame["group"] = frame["group"].where(frame["group"].isin(keep), "other")
    out = frame.groupby(["day", "group"], as_index=False)[["credits", "expected", "jobs"]].sum()
    out["day"] = pd.to_datetime(out["day"])
    return out.sort_values(["day", "group"]).reset_index(drop=True)


def cost_per_successful_output(usage: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Credits divided by completed jobs with an output URL, overall or per `by`."""
    keys = [by] if by else []
    if usage.empty:
        return pd.DataFrame(columns=[*keys, "credits", "successful_outputs", "cost_per_output"])
    grouped = usage.groupby(keys, as_index=False) if keys else usage.assign(_all=1).groupby("_all", as_index=False)
    out = grouped[["credits", "successful_outputs"]].sum()
    out["cost_per_output"] = (out["credits"] / out["successful_outputs"].where(out["successful_outputs"] > 0)).round(4)
    return out.drop(columns=["_all"], errors="ignore").sort_values("credits", ascending=False).reset_index(drop=True)


def range_bounds(start_day: date, end_day: date, now: datetime) -> tuple[datetime, datetime]:
    """A page's inclusive UTC day range as [start, end] instants, never past now."""
    start = datetime(start_day.year, start_day.month, start_day.day)
    end = datetime(end_day.year, end_day.month, end_day.day) + timedelta(days=1) - timedelta(microseconds=1)
    return start, min(end, now)
