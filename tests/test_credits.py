"""Unit tests for credit reconciliation (every category, tolerance edges) and ledger validation."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from analytics import credits, pricing
from analytics.ledger import (
    DEFAULT_MAX_BYTES,
    MAX_COLUMNS,
    MAX_REPORTED_ERRORS,
    MAX_ROWS,
    LedgerInvalid,
    load_ledger,
    parse_ledger,
)
from config import ConfigError, load_config, pricing_section, reconciliation_section

NOW = datetime(2025, 6, 2, 12, 0)
DAY = datetime(2025, 6, 1, 10, 0)
RATES = {"original": 60.0, "light": 45.0, "pro": 180.0, "human": 45.0}
SETTINGS = credits.ReconcileSettings()


def job(job_id: str, **overrides: object) -> dict[str, object]:
    """A settled, correctly charged 60-second `original` job (60 credits) unless overridden."""
    row: dict[str, object] = {
        "job_id": job_id,
        "key_name": "api-prod",
        "environment": "prod",
        "created_at": DAY,
        "status": "completed",
        "model": "original",
        "output_format": "mp4",
        "duration_seconds": 60.0,
        "credits_charged": 60.0,
        "billing_status": "charged",
        "output_url": f"https://cdn/out/{job_id}.mp4",
        "error": None,
        "charge_events": 1,
        "charge_credits": 60.0,
        "first_charge_credits": 60.0,
        "events_covered": True,
    }
    row.update(overrides)
    return row


def billing(
    jobs: list[dict[str, object]],
    orphans: list[dict[str, object]] | None = None,
    daily: list[dict[str, object]] | None = None,
    listed_at: dict[str, datetime] | None = None,
) -> credits.BillingData:
    return credits.BillingData(
        jobs=pd.DataFrame(jobs or [job("unused")]).iloc[: len(jobs)],
        orphan_events=pd.DataFrame(
            orphans or [], columns=["event_id", "key_name", "environment", "occurred_at", "job_id", "model", "credits"]
        ),
        daily=pd.DataFrame(
            daily or [], columns=["key_name", "environment", "day", "summary_credits", "fetched_at", "charges"]
        ),
        rates=dict(RATES),
        jobs_listed_at=listed_at if listed_at is not None else {"api-prod": NOW - timedelta(minutes=5)},
    )


def find(data: credits.BillingData, settings: credits.ReconcileSettings = SETTINGS, **kwargs: object) -> pd.DataFrame:
    return credits.find_discrepancies(data, settings, NOW, **kwargs)


def categories(found: pd.DataFrame) -> list[tuple[str, str | None]]:
    return sorted(zip(found["category"], found["job_id"], strict=True), key=str)


# --- expected credits and settings ------------------------------------------------------------------


def test_expected_credits_is_billed_minutes_times_model_rate() -> None:
    frame = pd.DataFrame(
        {
            "model": ["pro", "light", "human", "original", "mystery", "pro"],
            "duration_seconds": [90.0, 60.0, 30.0, 12.5, 60.0, None],
        }
    )
    expected = credits.expected_credits(frame, RATES, SETTINGS)
    assert expected.iloc[:4].tolist() == pytest.approx([270.0, 45.0, 22.5, 12.5])
    assert expected.iloc[4:].isna().all()


@pytest.mark.parametrize(
    ("rounding", "seconds", "minutes"),
    [
        ("exact", 61.5, 61.5 / 60),
        ("second", 61.2, 62 / 60),
        ("second", 61.0, 61 / 60),
        ("minute", 61.0, 2.0),
        ("minute", 120.0, 2.0),
        ("minute", 0.0, 0.0),
    ],
)
def test_rounding_policies(rounding: str, seconds: float, minutes: float) -> None:
    assert credits.billed_minutes(pd.Series([seconds]), rounding).iloc[0] == pytest.approx(minutes)


def test_settings_from_config_defaults_and_overrides() -> None:
    assert reconciliation_section(None) == credits.ReconcileSettings(rounding="exact", tolerance=0.01)
    custom = reconciliation_section({"rounding": "minute", "tolerance": 0.5, "ledger_max_mb": 5})
    assert (custom.rounding, custom.tolerance, custom.ledger_max_bytes) == ("minute", 0.5, 5 * 1_048_576)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"rounding": "hours"}, "rounding"),
        ({"tolerance": -1}, "tolerance"),
        ({"tolerance": "0.1"}, "tolerance"),
        ({"tolerence": 0.1}, "unknown setting"),
        ({"ledger_max_mb": 0}, "ledger_max_mb"),
    ],
)
def test_settings_from_config_rejects_bad_values(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        reconciliation_section(section)


def test_the_analysis_config_reads_reconciliation_without_the_secrets(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "config.toml"
    path.write_text(
        '[[keys]]\nname = "a-prod"\nsecret_env = "NOT_SET_ANYWHERE"\n\n'
        '[reconciliation]\nrounding = "second"\ntolerance = 0.05\n',
        encoding="utf-8",
    )
    loaded = load_config(path, secrets=False).reconciliation
    assert loaded == credits.ReconcileSettings(rounding="second", tolerance=0.05)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", secrets=False)


# --- per-job categories ----------------------------------------------------------------------------


def test_correct_jobs_produce_no_discrepancies() -> None:
    data = billing(
        [
            job("a"),
            job(
                "b",
                model="pro",
                duration_seconds=90.0,
                credits_charged=270.0,
                charge_credits=270.0,
                first_charge_credits=270.0,
            ),
        ]
    )
    assert find(data).empty


@pytest.mark.parametrize(
    ("charged", "flagged"),
    [
        (60.01, False),  # exactly the tolerance
        (60.02, True),
        (60.011, True),
        (59.99, False),
        (59.989, True),
    ],
)
def test_tolerance_edges_for_over_and_undercharge(charged: float, flagged: bool) -> None:
    found = find(billing([job("a", credits_charged=charged)]))
    assert (not found.empty) == flagged
    if flagged:
        assert found["category"].iloc[0] == ("overcharged" if charged > 60 else "undercharged")
        assert found["delta"].iloc[0] == pytest.approx(charged - 60.0, abs=1e-4)


def test_tolerance_is_not_defeated_by_float_noise() -> None:
    # 100.01 - 100.0 is 0.010000000000005 in binary floating point.
    found = find(billing([job("a", duration_seconds=100.0, credits_charged=100.01)]))
    assert found.empty


def test_tolerance_is_configurable() -> None:
    data = billing([job("a", credits_charged=60.4), job("b", credits_charged=61.0)])
    loose = credits.ReconcileSettings(tolerance=0.5)
    assert categories(find(data, loose)) == [("overcharged", "b")]
    strict = credits.ReconcileSettings(tolerance=0.0)
    assert categories(find(data, strict)) == [("overcharged", "a"), ("overcharged", "b")]


def test_rounding_policy_changes_the_expectation() -> None:
    data = billing([job("a", duration_seconds=61.0, credits_charged=120.0)])  # billed as two started minutes
    assert categories(find(data)) == [("overcharged", "a")]
    assert find(data, credits.ReconcileSettings(rounding="minute")).empty


def test_overcharged_row_shape() -> None:
    row = find(billing([job("a", credits_charged=75.0)])).iloc[0]
    assert (row["category"], row["key_name"], row["job_id"], row["day"]) == (
        "overcharged",
        "api-prod",
        "a",
        "2025-06-01",
    )
    assert (row["expected_credits"], row["charged_credits"], row["delta"], row["refund_due"]) == (
        60.0,
        75.0,
        15.0,
        15.0,
    )


def test_undercharge_is_not_a_refund() -> None:
    row = find(billing([job("a", credits_charged=40.0)])).iloc[0]
    assert row["category"] == "undercharged" and row["delta"] == -20.0 and row["refund_due"] == 0.0


def test_failed_but_charged() -> None:
    data = billing(
        [
            job("kept", status="failed", output_url=None, credits_charged=60.0),
            job(
                "refunded",
                status="failed",
                output_url=None,
                credits_charged=0.0,
                billing_status="refunded",
                charge_events=0,
                charge_credits=None,
            ),
            job("dust", status="failed", output_url=None, credits_charged=0.01),
        ]
    )
    found = find(data)
    assert categories(found) == [("failed_but_charged", "kept")]
    row = found.iloc[0]
    assert (row["expected_credits"], row["charged_credits"], row["refund_due"]) == (0.0, 60.0, 60.0)


def test_failed_job_is_never_also_over_or_undercharged() -> None:
    found = find(billing([job("a", status="failed", output_url=None, credits_charged=500.0)]))
    assert categories(found) == [("failed_but_charged", "a")]


def test_missing_output_only_for_completed_jobs() -> None:
    data = billing(
        [
            job("none", output_url=None),
            job("blank", output_url="  "),
            job("running", status="processing", output_url=None, credits_charged=0.0),
            job("failed", status="failed", output_url=None, credits_charged=0.0),
        ]
    )
    found = find(data)
    assert categories(found) == [("missing_output", "blank"), ("missing_output", "none")]
    assert set(found["refund_due"]) == {0.0}


def test_in_flight_jobs_are_not_judged_until_settled() -> None:
    # The provider reports 0 credits until a job settles; that is not an undercharge.
    data = billing(
        [
            job("p", status="pending", credits_charged=0.0, output_url=None, billing_status="pending"),
            job("q", status="processing", credits_charged=0.0, output_url=None),
        ]
    )
    assert find(data).empty


def test_unpriced_model_is_not_judged() -> None:
    assert find(billing([job("a", model="ultra", credits_charged=999.0)])).empty


def test_duplicate_charge() -> None:
    data = billing([job("dup", charge_events=2, charge_credits=120.0), job("once")])
    found = find(data)
    assert categories(found) == [("duplicate_charge", "dup")]
    row = found.iloc[0]
    assert (row["expected_credits"], row["charged_credits"], row["delta"], row["refund_due"]) == (
        60.0,
        120.0,
        60.0,
        60.0,
    )


def test_duplicate_charge_uses_first_event_when_the_job_shows_no_credits() -> None:
    data = billing(
        [
            job(
                "dup",
                status="processing",
                credits_charged=0.0,
                output_url=None,
                charge_events=3,
                charge_credits=90.0,
                first_charge_credits=30.0,
            )
        ]
    )
    row = find(data).iloc[0]
    assert (row["category"], row["expected_credits"], row["delta"]) == ("duplicate_charge", 30.0, 60.0)


def test_job_both_failed_and_duplicated_reports_both_and_refunds_every_charge() -> None:
    data = billing(
        [
            job(
                "fd",
                status="failed",
                output_url=None,
                credits_charged=222.3,
                charge_events=2,
                charge_credits=444.6,
                first_charge_credits=222.3,
            )
        ]
    )
    found = find(data)
    assert categories(found) == [("duplicate_charge", "fd"), ("failed_but_charged", "fd")]
    assert found["refund_due"].sum() == pytest.approx(444.6)
    summary = credits.summarize(data, found, SETTINGS, NOW)
    assert summary.charged == pytest.approx(444.6)
    assert summary.expected == 0.0
    assert summary.refunds_due == pytest.approx(444.6)


def test_orphan_charge_judged_only_before_the_last_jobs_listing() -> None:
    listed = NOW - timedelta(minutes=10)
    orphans = [
        {
            "event_id": "e1",
            "key_name": "api-prod",
            "environment": "prod",
            "occurred_at": listed - timedelta(hours=1),
            "job_id": "ghost",
            "model": "pro",
            "credits": 150.0,
        },
        {
            "event_id": "e2",
            "key_name": "api-prod",
            "environment": "prod",
            "occurred_at": listed + timedelta(minutes=1),
            "job_id": "too-new",
            "model": "pro",
            "credits": 10.0,
        },
        {
            "event_id": "e3",
            "key_name": "never-listed",
            "environment": "dev",
            "occurred_at": listed - timedelta(hours=1),
            "job_id": "unknowable",
            "model": "pro",
            "credits": 10.0,
        },
    ]
    found = find(billing([job("a")], orphans=orphans, listed_at={"api-prod": listed}))
    assert categories(found) == [("orphan_charge", "ghost")]
    row = found.iloc[0]
    assert (row["expected_credits"], row["charged_credits"], row["refund_due"], row["day"]) == (
        0.0,
        150.0,
        150.0,
        (listed - timedelta(hours=1)).strftime("%Y-%m-%d"),
    )


def summary_day(day: date, summary: float, charges: float, fetched: datetime | None = None) -> dict[str, object]:
    return {
        "key_name": "api-prod",
        "environment": "prod",
        "day": day,
        "summary_credits": summary,
        "fetched_at": fetched or NOW - timedelta(minutes=5),
        "charges": charges,
    }


def test_summary_mismatch_with_tolerance_and_settled_days_only() -> None:
    daily = [
        summary_day(date(2025, 5, 28), 100.0, 100.01),  # within tolerance
        summary_day(date(2025, 5, 29), 142.0, 100.0),  # mismatch
        summary_day(date(2025, 5, 30), 64.5, 100.0),  # mismatch the other way
        summary_day(date(2025, 5, 31), 500.0, 100.0, fetched=datetime(2025, 5, 31, 23, 0)),  # fetched mid-day
        summary_day(date(2025, 6, 2), 500.0, 100.0),  # today: still running
    ]
    found = find(billing([job("a")], daily=daily))
    assert found["category"].tolist() == ["summary_mismatch", "summary_mismatch"]
    assert found["day"].tolist() == ["2025-05-29", "2025-05-30"]
    assert found["job_id"].isna().all()
    assert found["delta"].tolist() == [42.0, -35.5]
    assert found["expected_credits"].tolist() == [100.0, 100.0]
    rows = credits.output_rows(found)
    assert rows["job_id"].tolist() == ["", ""]


def test_summary_day_needs_a_jobs_listing_after_it_ended() -> None:
    daily = [summary_day(date(2025, 5, 29), 142.0, 100.0)]
    assert find(billing([job("a")], daily=daily, listed_at={"api-prod": datetime(2025, 5, 29, 20, 0)})).empty
    assert find(billing([job("a")], daily=daily, listed_at={})).empty


def orphan(event_id: str, at: datetime, credits_: float) -> dict[str, object]:
    return {"event_id": event_id, "key_name": "api-prod", "environment": "prod", "occurred_at": at,
            "job_id": f"ghost-{event_id}", "model": "pro", "credits": credits_}  # fmt: skip


def test_a_summary_difference_the_listed_rows_explain_is_not_reported_again() -> None:
    jobs = [job("a"), job("d", charge_events=2, charge_credits=120.0, last_charge_at=DAY + timedelta(minutes=1))]
    orphans = [orphan("e1", DAY + timedelta(hours=2), 150.0)]
    charges = 60 + 60 + 60 + 150  # two jobs, the duplicate's extra charge, the orphan charge
    for summary, explained in ((charges, 0.0), (charges - 60, 60.0), (charges - 150, 150.0), (charges - 210, 210.0)):
        data = billing(jobs, orphans=orphans, daily=[summary_day(DAY.date(), summary, charges)])
        done = credits.reconcile(data, SETTINGS, NOW)
        assert categories(done.found) == [("duplicate_charge", "d"), ("orphan_charge", "ghost-e1")], summary
        [day] = done.summary_days.to_dict("records")
        assert day["explained_credits"] == explained and day["remainder"] == pytest.approx(0.0)
        assert day["status"] == ("matches" if not explained else "explained")
        if explained == 210.0:
            assert day["explained_by"] == ["duplicate_charge d", "orphan_charge ghost-e1"]


def test_only_the_unexplained_remainder_is_a_summary_mismatch() -> None:
    # May 30 teaches that this summary leaves orphan charges out; on May 31 it is also 42 too high.
    orphans = [orphan("e1", datetime(2025, 5, 30, 9), 100.0), orphan("e2", datetime(2025, 5, 31, 9), 50.0)]
    daily = [summary_day(date(2025, 5, 30), 0.0, 100.0), summary_day(date(2025, 5, 31), 42.0, 50.0)]
    done = credits.reconcile(billing([job("a")], orphans=orphans, daily=daily), SETTINGS, NOW)
    mismatch = done.found[done.found["category"] == "summary_mismatch"].to_dict("records")
    assert [(m["day"], m["expected_credits"], m["charged_credits"], m["delta"]) for m in mismatch] == [
        ("2025-05-31", 0.0, 42.0, 42.0)
    ]
    assert "50.00 credits of listed rows the summary leaves out are not counted again" in mismatch[0]["detail"]
    assert done.summary_days["status"].tolist() == ["explained", "unexplained"]
    # The orphan charges themselves are still reported, once each.
    assert categories(done.found).count(("orphan_charge", "ghost-e1")) == 1


def test_failed_but_charged_credits_left_out_of_the_summary_are_explained() -> None:
    data = billing(
        [job("a"), job("f", status="failed", output_url=None)],
        daily=[summary_day(DAY.date(), 60.0, 120.0)],
    )
    done = credits.reconcile(data, SETTINGS, NOW)
    assert categories(done.found) == [("failed_but_charged", "f")]
    assert done.summary_days["status"].tolist() == ["explained"]


def test_range_limits_job_and_summary_categories() -> None:
    data = billing(
        [job("old", created_at=datetime(2025, 5, 1, 9), credits_charged=80.0), job("new", credits_charged=80.0)],
        daily=[summary_day(date(2025, 5, 1), 1.0, 80.0)],
    )
    assert categories(find(data, start=datetime(2025, 5, 15))) == [("overcharged", "new")]
    assert categories(find(data, end=datetime(2025, 5, 2))) == [("overcharged", "old"), ("summary_mismatch", None)]


def test_output_rows_have_the_cli_columns_and_rounding() -> None:
    rows = credits.output_rows(find(billing([job("a", credits_charged=60.123456)])))
    assert list(rows.columns) == list(credits.OUTPUT_COLUMNS)
    assert rows.iloc[0]["charged_credits"] == 60.12 and rows.iloc[0]["delta"] == 0.12


def test_pricing_falls_back_to_config_then_published_rates_and_says_so() -> None:
    @dataclass
    class Collected:
        rates: pd.DataFrame
        read_at: datetime | None = None
        unreadable_since: datetime | None = None
        unreadable_reason: str | None = None

    @dataclass
    class Published:
        rates: dict[str, float]
        source: str = "the docs"
        as_of: str = "2026-11-30"

    published = Published(dict(RATES))
    api = pd.DataFrame({"model": ["Pro", "light"], "credits_per_minute": [200.0, 45.0]})
    none = pd.DataFrame({"model": [], "credits_per_minute": []})
    config = pricing_section({"rates": {"pro": 170, "human": 40}})

    full = pricing.resolve_pricing(Collected(api, read_at=NOW), config, published)
    assert full.rates == {"pro": 200.0, "light": 45.0, "human": 40.0, "original": 60.0}
    assert full.sources == {"pro": "api", "light": "api", "human": "config", "original": "published"}
    assert full.source == "api+config+published" and full.warning is None
    assert full.label == (
        "light, pro from the API (read 2025-06-02 12:00 UTC); human from config [pricing]; "
        "original the vendor's published rates (the docs, as of 2026-11-30)"
    )

    lost = pricing.resolve_pricing(
        Collected(none, None, NOW, "unreadable: all 4 record(s) quarantined"), config, published
    )
    assert lost.source == "config+published" and lost.rates["pro"] == 170.0
    assert lost.warning == (
        "the API's pricing has been unreadable since 2025-06-02 12:00 UTC (unreadable: all 4 record(s) "
        "quarantined); fallback rates are used"
    )
    stale = pricing.resolve_pricing(Collected(api, NOW - timedelta(days=2), NOW), pricing.PricingConfig(), published)
    assert stale.rates["pro"] == 200.0 and "the last rates read at 2025-05-31 12:00 UTC are used" in stale.warning

    preferred = pricing_section({"rates": {"pro": 170}, "prefer": "config"})
    assert pricing.resolve_pricing(Collected(api), preferred, published).sources["pro"] == "config"


@pytest.mark.parametrize(
    ("section", "message"),
    [({"rate": {}}, "unknown setting(s) rate"), ({"prefer": "ledger"}, "prefer: 'ledger' is not one of"),
     ({"rates": {"pro": -1}}, "rates.pro: expected credits per minute"), ({"rates": 3}, "expected a table"),
     ({"prefer": "config"}, "needs rates")],
)  # fmt: skip
def test_pricing_config_errors(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pricing_section(section)


def test_rows_say_which_pricing_judged_them() -> None:
    published = pricing.Pricing(dict(RATES), dict.fromkeys(RATES, "published"), "published", "published rates")
    data = billing([job("over", credits_charged=80.0)], orphans=[orphan("e1", DAY, 10.0)])
    data = credits.BillingData(**{**data.__dict__, "pricing": published})
    found = find(data)
    assert found["pricing_source"].tolist() == ["published", "published"]
    assert credits.output_rows(found).columns.tolist()[-1] == "pricing_source"


# --- ledger categories -----------------------------------------------------------------------------


def ledger_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    lines = ["job_id,credits,key_name,model,status,created_at"]
    for r in rows:
        lines.append(
            ",".join(str(r.get(c, "")) for c in ("job_id", "credits", "key_name", "model", "status", "created_at"))
        )
    return load_ledger("\n".join(lines).encode())


def test_ledger_categories() -> None:
    t = DAY.isoformat()
    data = billing(
        [
            job("same"),
            job("model", model="pro", duration_seconds=20.0),
            job("status"),
            job("credits"),
            job("unbooked"),
            job("running", status="processing", credits_charged=0.0, output_url=None),
            job("before", created_at=DAY - timedelta(days=10)),
        ]
    )
    ledger = ledger_frame(
        [
            {"job_id": "same", "credits": 60, "model": "original", "status": "completed", "created_at": t},
            {"job_id": "model", "credits": 60, "model": "original", "status": "completed", "created_at": t},
            {"job_id": "status", "credits": 60, "model": "original", "status": "failed", "created_at": t},
            {"job_id": "credits", "credits": 50, "model": "original", "status": "completed", "created_at": t},
            {"job_id": "running", "credits": 60, "model": "original", "status": "completed", "created_at": t},
            {"job_id": "phantom", "credits": 33, "key_name": "api-prod", "created_at": t},
            {"job_id": "no-date", "credits": 12},
        ]
    )
    found = find(data, ledger=ledger)
    assert categories(found) == [
        ("ledger_mismatch", "credits"),
        ("ledger_mismatch", "model"),
        ("ledger_mismatch", "status"),
        ("missing_in_ledger", "unbooked"),
        ("missing_in_provider", "no-date"),
        ("missing_in_provider", "phantom"),
    ]
    by_job = found.set_index("job_id")
    assert "model: ledger original, provider pro" in by_job.loc["model", "detail"]
    assert by_job.loc["credits", "delta"] == 10.0
    assert by_job.loc["phantom", "day"] == "2025-06-01"
    assert by_job.loc["no-date", "day"] is None


def test_ledger_period_defaults_to_its_earliest_row_and_since_overrides() -> None:
    data = billing([job("early", created_at=DAY - timedelta(days=3)), job("booked")])
    ledger = ledger_frame([{"job_id": "booked", "credits": 60, "created_at": DAY.isoformat()}])
    assert find(data, ledger=ledger).empty
    found = find(data, ledger=ledger, ledger_since=DAY - timedelta(days=5))
    assert categories(found) == [("missing_in_ledger", "early")]


def test_ledger_without_dates_needs_since() -> None:
    ledger = ledger_frame([{"job_id": "a", "credits": 60}])
    with pytest.raises(ValueError, match="--since"):
        find(billing([job("a")]), ledger=ledger)
    assert find(billing([job("a")]), ledger=ledger, ledger_since=DAY - timedelta(days=1)).empty


def test_ledger_rows_newer_than_the_last_listing_are_not_missing_yet() -> None:
    listed = NOW - timedelta(hours=1)
    ledger = ledger_frame(
        [
            {"job_id": "a", "credits": 60, "created_at": DAY.isoformat()},
            {"job_id": "fresh", "credits": 60, "created_at": (NOW - timedelta(minutes=5)).isoformat()},
        ]
    )
    assert find(billing([job("a")], listed_at={"api-prod": listed}), ledger=ledger).empty


def test_ledger_rows_outside_the_providers_listing_are_labelled_not_judged() -> None:
    listed = NOW - timedelta(hours=1)
    cut = DAY - timedelta(days=3)  # the key's first job backfill was capped: nothing older is held
    when = {"a": DAY, "lost": DAY - timedelta(days=1), "fresh": listed + timedelta(minutes=5),
            "old": cut - timedelta(days=1), "theirs": DAY}  # fmt: skip
    rows = [
        {"job_id": j, "credits": 60, "key_name": "other-team-key" if j == "theirs" else "api-prod",
         "created_at": at.isoformat()}
        for j, at in when.items()
    ]  # fmt: skip
    data = credits.BillingData(**{**billing([job("a")]).__dict__, "jobs_listed_at": {"api-prod": listed},
                                  "jobs_history_from": {"api-prod": cut}})  # fmt: skip
    done = credits.reconcile(data, SETTINGS, NOW, ledger=ledger_frame(rows))
    assert categories(done.found) == [("missing_in_provider", "lost")], "only the row the listing covers is judged"
    labels = dict(zip(done.ledger_unjudged["job_id"], done.ledger_unjudged["window"], strict=True))
    assert labels == {
        "fresh": "created after the key's last jobs listing (not collected yet)",
        "old": "older than the job history collected for its key",
        "theirs": "its key's jobs were never listed by the provider here",
    }
    later = credits.reconcile(data, SETTINGS, NOW, ledger=ledger_frame(rows), ledger_since=cut)
    assert later.ledger_unjudged.set_index("job_id").loc["old", "window"] == "before the ledger period"


# --- summaries -------------------------------------------------------------------------------------


def test_summary_numbers() -> None:
    data = billing(
        [
            job("ok"),
            job("over", credits_charged=75.0),
            job("failed", status="failed", output_url=None, credits_charged=60.0),
            job("noout", output_url=None),
            job("dup", charge_events=2, charge_credits=120.0),
            job("running", status="processing", credits_charged=0.0, output_url=None),
        ],
        orphans=[
            {
                "event_id": "e",
                "key_name": "api-prod",
                "environment": "prod",
                "occurred_at": DAY,
                "job_id": "ghost",
                "model": "pro",
                "credits": 30.0,
            }
        ],
        daily=[summary_day(date(2025, 6, 1), 410.0, 400.0)],
    )
    found = find(data)
    summary = credits.summarize(data, found, SETTINGS, NOW)
    # charged: 60 + 75 + 60 + 60 + 60 (+60 duplicate) + 30 orphan; expected: 60 + 60 + 0 + 60 + 60
    assert summary.charged == 405.0
    assert summary.expected == 240.0
    assert summary.net_difference == 165.0
    assert summary.refunds_due == 15.0 + 60.0 + 60.0 + 30.0
    assert (summary.settled_jobs, summary.in_flight_jobs, summary.successful_outputs) == (5, 1, 3)
    assert summary.cost_per_successful_output == 135.0
    assert summary.missing_output_credits == 60.0
    assert summary.summary_billed == 410.0


def test_credits_over_time_and_cost_per_output() -> None:
    jobs = pd.DataFrame(
        [
            job("a"),
            job("b", model="pro", duration_seconds=20.0, credits_charged=60.0, environment="dev", key_name="tool-dev"),
            job("c", created_at=DAY + timedelta(days=1), output_url=None),
            job("d", status="running", credits_charged=0.0),
        ]
    )
    data = credits.BillingData(jobs=jobs, orphan_events=pd.DataFrame(), daily=pd.DataFrame(), rates=RATES)
    usage = credits.usage_from_days(credits.credit_days(data, SETTINGS, NOW, None, NOW))
    assert usage["jobs"].sum() == 3 and usage["credits"].sum() == 180.0
    by_model = credits.credits_over_time(usage, "model")
    assert set(by_model["group"]) == {"original", "pro"}
    assert by_model.groupby("group")["credits"].sum().to_dict() == {"original": 120.0, "pro": 60.0}
    per_env = credits.cost_per_successful_output(usage, "environment").set_index("environment")
    assert per_env.loc["prod", "cost_per_output"] == 120.0 and per_env.loc["dev", "cost_per_output"] == 60.0
    overall = credits.cost_per_successful_output(usage)
    assert overall["cost_per_output"].iloc[0] == 90.0
    with pytest.raises(ValueError):
        credits.credits_over_time(usage, "owner")


def test_range_bounds_never_pass_now() -> None:
    start, end = credits.range_bounds(date(2025, 6, 1), date(2025, 6, 2), NOW)
    assert start == datetime(2025, 6, 1) and end == NOW
    _, end = credits.range_bounds(date(2025, 5, 1), date(2025, 5, 2), NOW)
    assert end.date() == date(2025, 5, 2) and end.hour == 23


# --- ledger validation -----------------------------------------------------------------------------

GOOD = (
    "job_id,credits,key_name,project_id,model,output_format,duration_seconds,status,created_at\n"
    "job_1,60.0,api-prod,proj_api,Pro,mp4,20.0,Succeeded,2025-06-01T10:00:00Z\n"
    "job_2,0,api-prod,,light,,,failed,2025-06-01\n"
)


def errors_of(data: bytes, **kwargs: object) -> list[str]:
    result = parse_ledger(data, **kwargs)  # type: ignore[arg-type]
    assert not result.ok and result.frame is None
    return result.error_lines()


def test_valid_ledger_is_typed_and_normalized() -> None:
    frame = load_ledger(GOOD.encode())
    assert frame["job_id"].tolist() == ["job_1", "job_2"]
    assert frame["credits"].tolist() == [60.0, 0.0]
    assert frame["model"].tolist() == ["pro", "light"]
    assert frame["status"].tolist() == ["completed", "failed"]
    assert frame["created_at"].tolist() == [pd.Timestamp("2025-06-01 10:00"), pd.Timestamp("2025-06-01")]
    assert frame["project_id"].tolist() == ["proj_api", None]
    assert frame["line"].tolist() == [2, 3]


def test_minimal_ledger_with_bom_semicolons_and_extra_columns() -> None:
    frame = load_ledger("\ufeffJob ID;Credits;team notes\nj1;12.5;x\n".replace("Job ID", "job_id").encode())
    assert frame[["job_id", "credits"]].values.tolist() == [["j1", 12.5]]
    assert frame["created_at"].isna().all()


def test_missing_columns_are_named() -> None:
    [line] = errors_of(b"reference,amount\nj1,3\n")
    assert "line 1" in line and "job_id, credits missing" in line and "found: reference, amount" in line
    result = parse_ledger(b"reference,amount,Created\nj1,3,2025-06-01\n")
    assert result.needs_mapping and result.columns == ["reference", "amount", "Created"]
    assert result.missing == ["job_id", "credits"] and result.recognized == {"created_at": "Created"}


def test_unknown_headers_are_mapped_by_the_user() -> None:
    data = b"reference;amount;when\nj1;1.234,5;2025-06-01\n"
    frame = load_ledger(data, mapping={"job_id": "reference", "credits": "amount", "created_at": "when"})
    assert frame[["job_id", "credits"]].values.tolist() == [["j1", 1234.5]]
    assert frame["created_at"].tolist() == [pd.Timestamp("2025-06-01")]


@pytest.mark.parametrize(
    "header",
    ["Job ID,Credits Charged,API Key,Created", "jobId,creditsUsed,key,createdAt", "id,credit,key_label,timestamp",
     "job-id,charged credits,api_key_name,date"],
)  # fmt: skip
def test_header_aliases(header: str) -> None:
    frame = load_ledger(f"{header}\nj1,12.5,api-prod,2025-06-01T10:00:00Z\n".encode())
    assert frame[["job_id", "credits", "key_name"]].values.tolist() == [["j1", 12.5, "api-prod"]]
    assert frame["created_at"].tolist() == [pd.Timestamp("2025-06-01 10:00")]


def test_the_canonical_name_wins_over_an_alias() -> None:
    frame = load_ledger(b"cost_credits,credits,id,job_id\n1,2,x,j1\n")
    assert frame[["job_id", "credits"]].values.tolist() == [["j1", 2.0]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("job_id;credits\nj1;1.234,5\nj2;12,5\nj3;7\n", [1234.5, 12.5, 7.0]),  # European spreadsheet
        ("job_id;credits\nj1;1 234,50\nj2;0,75\n", [1234.5, 0.75]),
        ("job_id;credits\nj1;12.5\nj2;1,234.5\n", [12.5, 1234.5]),  # `;` but dots: the values say so
        ('job_id,credits\nj1,"1,234.50"\nj2,3.5\n', [1234.5, 3.5]),  # quoted thousands separators
        ('job_id,credits\nj1,"1,234"\n', [1234.0]),  # ambiguous: a comma file writes decimal points
        ("job_id;credits\nj1;1,234\n", [1.234]),  # ambiguous: a `;` file writes decimal commas
        ("job_id\tcredits\nj1\t2'500.25\n", [2500.25]),
    ],
)
def test_thousands_separators_and_decimal_commas(text: str, expected: list[float]) -> None:
    assert load_ledger(text.encode())["credits"].tolist() == pytest.approx(expected)


def test_a_column_mixing_decimal_marks_is_an_error_not_a_guess() -> None:
    lines = errors_of(b"job_id;credits\nj1;1.234,5\nj2;12.5\n")
    assert lines == ["line 3, column 'credits': '12.5' is not a number (use a plain decimal such as 112.5)"]


def test_json_lines_ledger() -> None:
    data = (
        b'{"job_id": "j1", "credits": 12.5, "created_at": "2025-06-01T10:00:00Z", "status": "done"}\n'
        b"\n"
        b'{"id": "j2", "credits": "1,234.5", "created_at": 1748772000000, "model": "Pro"}\n'
        b'{"jobId": 3, "creditsCharged": 0}\n'
    )
    result = parse_ledger(data)
    assert result.ok and result.file_format == "jsonl"
    frame = result.frame
    assert frame["job_id"].tolist() == ["j1", "j2", "3"]
    assert frame["credits"].tolist() == [12.5, 1234.5, 0.0]
    assert frame["line"].tolist() == [1, 3, 4]
    assert frame["created_at"].tolist()[:2] == [pd.Timestamp("2025-06-01 10:00"), pd.Timestamp("2025-06-01 10:00")]
    assert frame["status"].tolist()[0] == "completed" and frame["model"].tolist()[1] == "pro"


def test_json_lines_problems_name_their_lines() -> None:
    lines = errors_of(b'{"job_id": "j1", "credits": 1}\n[1, 2]\n{"job_id": "j3", "credits": }\n{"job_id": "j4"}\n')
    assert lines[0] == "line 2: is a JSON list, not an object"
    assert lines[1].startswith("line 3: is not a JSON object (")
    assert lines[2] == "line 4, column 'credits': '(empty)' is not a number (use a plain decimal such as 112.5)"
    result = parse_ledger(b'{"ref": "j1", "amount": 1}\n')
    assert result.needs_mapping and result.file_format == "jsonl" and result.columns == ["ref", "amount"]


def test_a_million_column_header_is_refused_before_any_parsing() -> None:
    data = b",".join(b"c%d" % i for i in range(1_000_000)) + b"\njob_1,3\n"  # 7.9 MB, as in issue 14
    assert len(data) < DEFAULT_MAX_BYTES, "under the size limit: the other bounds must catch it"
    started = time.monotonic()
    [line] = errors_of(data)
    elapsed = time.monotonic() - started
    assert line.startswith(f"line 1: the line is {len(data) / 1_048_576:.1f} MB long; the limit is 64 KB")
    assert elapsed < 2.0, f"{elapsed:.2f} s"  # the quadratic header check took ~4 h here


def test_bounds_on_columns_rows_and_line_length() -> None:
    [line] = errors_of(("job_id,credits," + ",".join(f"c{i}" for i in range(600)) + "\nj1,1\n").encode())
    assert line == f"line 1: the header has 602 columns; the limit is {MAX_COLUMNS}"
    [line] = errors_of(b"job_id,credits,note\nj1,1,ok\nj2,2," + b"x" * 70_000 + b"\n")
    assert line.startswith("line 3: the line is 68.4 KB long; the limit is 64 KB")
    [line] = errors_of(b"job_id,credits\n" + b"j,1\n" * (MAX_ROWS + 1))
    assert line == f"the file has {MAX_ROWS + 2:,} lines; the limit is {MAX_ROWS:,} rows (split the ledger by period)"


def test_text_in_numbers_names_row_and_column() -> None:
    lines = errors_of(b"job_id,credits,duration_seconds\nj1,12,5\nj2,twelve,5\nj3,,5\nj4,1,long\nj5,-3,1\n")
    assert lines == [
        "line 3, column 'credits': 'twelve' is not a number (use a plain decimal such as 112.5)",
        "line 4, column 'credits': '(empty)' is not a number (use a plain decimal such as 112.5)",
        "line 5, column 'duration_seconds': 'long' is not a number of seconds",
        "line 6, column 'credits': '-3' is negative; credits must be 0 or more",
    ]


def test_nan_and_infinity_are_not_numbers() -> None:
    lines = errors_of(b"job_id,credits\nj1,nan\nj2,inf\n")
    assert len(lines) == 2 and all("is not a number" in line for line in lines)


def test_duplicate_job_ids_point_at_both_lines() -> None:
    lines = errors_of(b"job_id,credits\nj1,1\nj2,2\nj1,3\n")
    assert lines == ["line 4, column 'job_id': duplicate job id 'j1' (first on line 2)"]


def test_latin1_bytes_are_reported_as_not_utf8() -> None:
    data = "job_id,credits,key_name\nj1,1,caf\u00e9-prod\n".encode("latin-1")
    [line] = errors_of(data)
    assert line.startswith("line 2: the file is not UTF-8 text (byte 0xe9")
    assert "save or export it as UTF-8" in line


def test_fifty_megabyte_file_is_refused_quickly() -> None:
    data = b"job_id,credits\n" + b"j,1\n" * (50 * 1_048_576 // 4)
    started = time.monotonic()
    [line] = errors_of(data)
    assert time.monotonic() - started < 1.0
    assert "the file is 50 MB; the limit is 20 MB" in line
    assert DEFAULT_MAX_BYTES == 20 * 1_048_576


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        (b"job_id,credits\n", "has a header but no rows"),
        (b"job_id,credits\nj1,1,extra\n", "line 2: has 3 field(s) but the header has 2"),
        (b"job_id,credits,credits\nj1,1,1\n", "credits appear more than once"),
        (b"job_id,credits,created_at\nj1,1,yesterday\n", "line 2, column 'created_at': 'yesterday' is not an ISO"),
        (b"job_id,credits,status\nj1,1,exploded\n", "'exploded' is not a job status"),
        (b"job_id,credits\n,1\n", "line 2, column 'job_id': job id is empty"),
        (b"job_id,credits\nj1,1\x00\n", "NUL bytes"),
    ],
)
def test_other_ledger_problems(data: bytes, message: str) -> None:
    assert any(message in line for line in errors_of(data))


def test_error_list_is_capped_with_a_count() -> None:
    rows = "".join(f"j{i},x\n" for i in range(80))
    lines = errors_of(f"job_id,credits\n{rows}".encode())
    assert len(lines) == MAX_REPORTED_ERRORS + 1
    assert lines[-1] == f"… and {80 - MAX_REPORTED_ERRORS} more problem(s) not listed"


def test_load_ledger_raises_with_all_messages() -> None:
    with pytest.raises(LedgerInvalid) as info:
        load_ledger(b"job_id,credits\nj1,x\n")
    assert "line 2, column 'credits'" in str(info.value)


def test_custom_size_limit() -> None:
    [line] = errors_of(GOOD.encode(), max_bytes=10)
    assert f"the file is {len(GOOD)} bytes; the limit is 10 bytes" in line
    assert parse_ledger(GOOD.encode(), max_bytes=len(GOOD)).ok


def test_exported_discrepancies_cannot_run_as_spreadsheet_formulas() -> None:
    from analytics.export import csv_frame

    data = billing([job('=HYPERLINK("http://x")', key_name="+cmd|calc", credits_charged=40.0)])
    text = csv_frame(credits.output_rows(find(data))).decode()
    body = text.splitlines()[1]
    assert body.startswith("undercharged,'+cmd|calc,\"'=HYPERLINK(")
    assert body.endswith(",60.0,40.0,-20.0,api")
