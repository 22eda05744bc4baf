"""Unit tests for the key rules (staleness, governance, inventory), traffic helpers and the keys CLI's input checks."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import __main__ as analytics_main
from analytics.keys import (
    FINDING_COLUMNS,
    KeyFacts,
    Rules,
    deletion_candidates,
    evaluate,
    inventory_findings,
    is_generic_name,
    is_well_formed_name,
    naming_findings,
    ownership_findings,
    rotation_finding,
    sandbox_findings,
    shape_drift_findings,
    staleness_finding,
)
from analytics.traffic import profile_distance, rollup, top_movers, week_profile
from config import ConfigError, rules_section

NOW = datetime(2025, 6, 2, 12, 0, 0)  # a Monday
RULES = Rules()


def ids(rows: list[dict] | dict | None) -> set[str]:
    if rows is None:
        return set()
    if isinstance(rows, dict):
        return {rows["finding"]}
    return {r["finding"] for r in rows}


# ------------------------------------------------------------------------------------------------ rules


def test_rules_defaults_follow_the_design() -> None:
    assert dict(RULES.inactive_days) == {"prod": 7, "staging": 14, "dev": 30}
    assert dict(RULES.rotation_due_days) == {"prod": 30, "staging": 14}
    assert dict(RULES.rotation_overdue_days) == {"prod": 90}
    assert RULES.sandbox_share == 0.5 and RULES.sandbox_window_days == 7


def test_rules_from_toml_section_overrides_and_normalizes_environments() -> None:
    rules = rules_section(
        {
            "inactive_days": {"production": 3},
            "release_cycle_days": 21,
            "generic_words": ["Scratchpad"],
            "spikes": {"threshold": 0.7},
        }
    )
    assert rules.inactive_days == {"prod": 3, "staging": 14, "dev": 30}
    assert rules.rotation_due_days["staging"] == 21 and rules.rotation_due_days["prod"] == 30
    assert rules.generic_words == ("scratchpad",)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"inactve_days": 3}, "unknown setting"),
        ({"inactive_days": {"qa": 3}}, "not prod, staging or dev"),
        ({"inactive_days": {"prod": -1}}, "positive number"),
        ({"sandbox_share": 1.5}, "between 0 and 1"),
        ({"shape_block_hours": 5}, "must divide 24"),
        ({"sandbox_window_days": 2.5}, "whole number"),
        ({"inactive_days": 7}, "expected a table"),
    ],
)
def test_rules_reject_bad_settings_with_one_clear_line(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rules_section(section)


# -------------------------------------------------------------------------------------------- staleness


def test_key_created_yesterday_and_unused_is_not_yet_never_used() -> None:
    assert staleness_finding("svc-prod", "prod", NOW - timedelta(days=1), NOW, RULES) is None


def test_never_used_once_the_grace_period_is_over_exactly_at_the_threshold() -> None:
    created = NOW - timedelta(days=RULES.never_used_grace_days)
    finding = staleness_finding("svc-prod", "prod", created, NOW, RULES)
    assert finding is not None and finding["finding"] == "never_used" and finding["since"] == created
    just_before = created + timedelta(seconds=1)
    assert staleness_finding("svc-prod", "prod", just_before, NOW, RULES) is None


def test_never_used_without_a_creation_date() -> None:
    finding = staleness_finding("svc-dev", "dev", None, NOW, RULES)
    assert finding is not None and finding["finding"] == "never_used" and finding["since"] is None


@pytest.mark.parametrize("env, days", [("prod", 7), ("staging", 14), ("dev", 30)])
def test_inactive_exactly_at_the_environment_threshold(env: str, days: int) -> None:
    last = NOW - timedelta(days=days)
    finding = staleness_finding(f"svc-{env}", env, NOW - timedelta(days=400), NOW, RULES, last_used_at=last)
    assert finding is not None and finding["finding"] == "inactive" and finding["since"] == last
    assert f"after {days} days" in finding["detail"]
    fresher = last + timedelta(seconds=1)
    assert staleness_finding(f"svc-{env}", env, NOW - timedelta(days=400), NOW, RULES, last_used_at=fresher) is None


def test_a_key_created_yesterday_and_used_is_not_stale() -> None:
    assert (
        staleness_finding(
            "svc-prod", "prod", NOW - timedelta(days=1), NOW, RULES, last_used_at=NOW - timedelta(hours=20)
        )
        is None
    )


def test_day_grain_last_use_counts_until_the_end_of_that_day() -> None:
    created = NOW - timedelta(days=100)
    # last call on the day 7 days ago: it may have been at 23:59, so the key is idle for 6.5 days at most
    assert (
        staleness_finding("svc-prod", "prod", created, NOW, RULES, last_call_day=NOW.date() - timedelta(days=7)) is None
    )
    finding = staleness_finding("svc-prod", "prod", created, NOW, RULES, last_call_day=NOW.date() - timedelta(days=8))
    assert finding is not None and finding["finding"] == "inactive" and "daily data" in finding["detail"]


def test_the_newest_evidence_wins_across_sources() -> None:
    created = NOW - timedelta(days=100)
    old_event = NOW - timedelta(days=20)
    recent_job = NOW - timedelta(days=2)
    assert (
        staleness_finding("svc-prod", "prod", created, NOW, RULES, last_used_at=old_event, last_job_at=recent_job)
        is None
    )


# ------------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "name", ["test1", "key-new", "new-key", "temp", "tmp", "default", "mykey", "key", "test", "dev-test", "my-key-2"]
)
def test_generic_names(name: str) -> None:
    assert is_generic_name(name, RULES)
    assert ids(naming_findings(name, "dev", None, RULES)) == {"generic_name"}


@pytest.mark.parametrize(
    "name",
    [
        "api-gateway-prod",
        "prod-main",
        "staging-main",
        "dev-local",
        "dev-alice",
        "auth-eu-2-staging",
        "media-encoder-production",
    ],
)
def test_well_formed_names_pass(name: str) -> None:
    assert is_well_formed_name(name) and not is_generic_name(name, RULES)
    env = {"prod": "prod", "main": "prod", "local": "dev", "alice": "dev", "staging": "staging", "production": "prod"}[
        name.split("-")[-1]
    ]
    if name.startswith("staging"):
        env = "staging"
    assert naming_findings(name, env, None, RULES) == []


@pytest.mark.parametrize(
    "name", ["legacykey", "BillingWorker_Prod", "Api-Gateway-Prod", "api_gateway_prod", "gateway-api", "api-prod-eu"]
)
def test_bad_names(name: str) -> None:
    found = naming_findings(name, "prod", None, RULES)
    assert "bad_name" in ids(found) and "generic_name" not in ids(found)


def test_env_mismatch_when_the_name_claims_another_environment() -> None:
    found = naming_findings("search-staging", "prod", None, RULES)
    assert ids(found) == {"env_mismatch"}
    assert "says staging" in found[0]["detail"] and "configured as prod" in found[0]["detail"]
    assert naming_findings("BillingWorker_Prod", "prod", None, RULES)[0]["finding"] == "bad_name"
    assert "env_mismatch" not in ids(naming_findings("BillingWorker_Prod", "prod", None, RULES))
    assert "env_mismatch" not in ids(naming_findings("legacykey", "prod", None, RULES))


# ------------------------------------------------------------------------------------------- ownership


@pytest.mark.parametrize("owner", [None, "", "   ", float("nan")])
def test_missing_owner(owner: object) -> None:
    assert ids(ownership_findings("svc-prod", "prod", owner, None, None, RULES)) == {"missing_owner"}


def test_offboarded_owner_of_a_dev_key() -> None:
    found = ownership_findings("dev-carol", "dev", "carol", "offboarded", None, RULES)
    assert ids(found) == {"owner_offboarded"} and "rotate or delete" in found[0]["detail"]
    assert ownership_findings("dev-bob", "dev", "bob", "active", None, RULES) == []


# -------------------------------------------------------------------------------------------- rotation


def test_prod_rotation_due_exactly_at_30_days() -> None:
    rotated = NOW - timedelta(days=30)
    finding = rotation_finding("svc-prod", "prod", rotated, NOW - timedelta(days=400), NOW, RULES)
    assert finding is not None and finding["finding"] == "rotation_due"
    assert finding["since"] == rotated + timedelta(days=30)
    assert rotation_finding("svc-prod", "prod", rotated + timedelta(seconds=1), None, NOW, RULES) is None


def test_prod_rotation_overdue_exactly_at_90_days_replaces_due() -> None:
    finding = rotation_finding("svc-prod", "prod", NOW - timedelta(days=90), None, NOW, RULES)
    assert finding is not None and finding["finding"] == "rotation_overdue"
    almost = rotation_finding("svc-prod", "prod", NOW - timedelta(days=90) + timedelta(seconds=1), None, NOW, RULES)
    assert almost is not None and almost["finding"] == "rotation_due"


def test_never_rotated_key_ages_from_its_creation() -> None:
    finding = rotation_finding("svc-prod", "prod", None, NOW - timedelta(days=200), NOW, RULES)
    assert finding is not None and finding["finding"] == "rotation_overdue" and "never rotated" in finding["detail"]
    assert rotation_finding("svc-prod", "prod", None, NOW - timedelta(days=1), NOW, RULES) is None


def test_no_rotation_or_creation_date_is_flagged_as_due() -> None:
    finding = rotation_finding("svc-prod", "prod", None, None, NOW, RULES)
    assert finding is not None and finding["finding"] == "rotation_due" and finding["since"] is None


def test_staging_rotates_each_release_cycle_and_dev_has_no_age_rule() -> None:
    assert (
        rotation_finding("svc-staging", "staging", NOW - timedelta(days=14), None, NOW, RULES)["finding"]
        == "rotation_due"
    )
    assert rotation_finding("svc-staging", "staging", NOW - timedelta(days=13), None, NOW, RULES) is None
    assert (
        rotation_finding("svc-staging", "staging", NOW - timedelta(days=400), None, NOW, RULES)["finding"]
        == "rotation_due"
    )
    assert rotation_finding("svc-dev", "dev", None, NOW - timedelta(days=900), NOW, RULES) is None
    custom = rules_section({"release_cycle_days": 30})
    assert rotation_finding("svc-staging", "staging", NOW - timedelta(days=20), None, NOW, custom) is None


# --------------------------------------------------------------------------------------------- sandbox


def _keys(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["key_name", "environment", "owner"])


def _daily(per_key: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for key, calls in per_key.items():
        for i, value in enumerate(reversed(calls)):
            rows.append({"key_name": key, "day": NOW.date() - timedelta(days=i), "calls": value})
    return pd.DataFrame(rows)


def test_sandbox_in_prod_at_exactly_half_the_busiest_prod_key() -> None:
    keys = _keys(
        [
            ("big-prod", "prod", "a"),
            ("small-prod", "prod", "a"),
            ("dev-alice", "dev", "alice"),
            ("dev-bob", "dev", "bob"),
        ]
    )
    daily = _daily({"big-prod": [100] * 7, "small-prod": [10] * 7, "dev-alice": [50] * 7, "dev-bob": [49] * 7})
    found = sandbox_findings(keys, daily, NOW, RULES)
    assert [(f["key_name"], f["finding"]) for f in found] == [("dev-alice", "sandbox_in_prod")]
    assert "big-prod" in found[0]["detail"] and "50%" in found[0]["detail"]


def test_sandbox_window_is_the_last_seven_days_only() -> None:
    keys = _keys([("big-prod", "prod", "a"), ("dev-alice", "dev", "alice")])
    daily = _daily({"big-prod": [100] * 8, "dev-alice": [10_000] + [0] * 7})  # the burst was 8 days ago
    assert sandbox_findings(keys, daily, NOW, RULES) == []


def test_sandbox_needs_some_prod_traffic_to_compare_with() -> None:
    keys = _keys([("big-prod", "prod", "a"), ("dev-alice", "dev", "alice")])
    assert sandbox_findings(keys, _daily({"big-prod": [0] * 7, "dev-alice": [5] * 7}), NOW, RULES) == []


# ----------------------------------------------------------------------------------------------- shape


def _hourly(
    key: str, peak_hour: float, per_day: float, weekend: float, days: int = 28, width: float = 3.5, column: str = "jobs"
) -> pd.DataFrame:
    end = NOW.replace(minute=0)
    hours = pd.date_range(end - timedelta(days=days), end, freq="h", inclusive="left")
    hod = hours.hour.to_numpy()
    dist = np.minimum(np.abs(hod - peak_hour), 24 - np.abs(hod - peak_hour))
    shape = 0.1 + np.exp(-0.5 * (dist / width) ** 2)
    shape = shape * np.where(hours.day_of_week >= 5, weekend, 1.0)
    counts = np.round(shape / shape.sum() * per_day * days)
    frame = pd.DataFrame({"key_name": key, "hour": hours, "calls": 0.0, "jobs": 0.0})
    frame[column] = counts
    return frame


def _shape_facts(
    staging: pd.DataFrame, owner_prod_peak: float = 13.5, coverage: pd.DataFrame | None = None, column: str = "jobs"
) -> KeyFacts:
    keys = pd.DataFrame(
        {
            "key_name": ["billing-prod", "other-prod", "billing-staging"],
            "environment": ["prod", "prod", "staging"],
            "owner": ["billing", "elsewhere", "billing"],
        }
    )
    hourly = pd.concat(
        [
            _hourly("billing-prod", owner_prod_peak, 200, 0.3, column=column),
            _hourly("other-prod", 2.0, 200, 1.0, column=column),
            staging,
        ]
    )
    daily = (
        hourly.assign(day=hourly["hour"].dt.normalize())
        .groupby(["key_name", "day"], as_index=False)[["calls", "jobs"]]
        .sum()
    )
    daily["calls"] = daily["calls"] + daily["jobs"]
    kwargs = {"event_coverage": coverage} if coverage is not None else {}
    return KeyFacts(keys=keys, daily=daily[["key_name", "day", "calls"]], hourly=hourly, **kwargs)


def test_staging_shaped_like_its_owners_prod_is_fine() -> None:
    facts = _shape_facts(_hourly("billing-staging", 13.5, 20, 0.3))
    assert shape_drift_findings(facts, NOW, RULES) == []


def test_staging_running_at_night_drifts_from_its_owners_prod() -> None:
    facts = _shape_facts(_hourly("billing-staging", 2.0, 20, 1.0, width=1.6))
    found = shape_drift_findings(facts, NOW, RULES)
    assert ids(found) == {"staging_shape_drift"}
    # compared with the owner's prod key, not the other team's (which happens to run at night too)
    assert "billing's prod keys" in found[0]["detail"] and "other-prod" not in found[0]["detail"]
    assert "job submissions" in found[0]["detail"]


def test_shape_drift_needs_enough_observations() -> None:
    facts = _shape_facts(_hourly("billing-staging", 2.0, 1, 1.0, width=1.6))  # 28 jobs in 28 days
    assert shape_drift_findings(facts, NOW, RULES) == []


def test_shape_drift_uses_event_calls_when_the_feed_covers_the_window() -> None:
    coverage = pd.DataFrame(
        {
            "key_name": ["billing-prod", "other-prod", "billing-staging"],
            "first_event_at": [NOW - timedelta(days=60)] * 3,
            "gaps": [0, 0, 0],
        }
    )
    facts = _shape_facts(
        _hourly("billing-staging", 2.0, 20, 1.0, width=1.6, column="calls"), coverage=coverage, column="calls"
    )
    found = shape_drift_findings(facts, NOW, RULES)
    assert ids(found) == {"staging_shape_drift"} and "hourly calls" in found[0]["detail"]


def test_staging_key_without_enough_active_days_is_not_judged() -> None:
    staging = _hourly("billing-staging", 2.0, 200, 1.0, width=1.6)
    staging = staging[staging["hour"] >= NOW - timedelta(days=10)]
    assert shape_drift_findings(_shape_facts(staging), NOW, RULES) == []


# ------------------------------------------------------------------------------------------- inventory


def _admin(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["key_fingerprint", "client_id", "name", "enabled", "created_at", "last_used_at", "fetched_at"]
    )


def test_inventory_flags_unmanaged_and_disabled_keys() -> None:
    keys = pd.DataFrame({"key_name": ["a-prod", "b-prod"], "fingerprint": ["fa", "fb"]})
    admin = _admin(
        [
            ("fa", "cli_a", "a-prod", True, NOW - timedelta(days=90), NOW, NOW),
            ("fb", "cli_b", "b-prod", False, NOW - timedelta(days=90), NOW - timedelta(days=2), NOW),
            ("fc", "cli_c", "partner-sync-prod", True, NOW - timedelta(days=50), NOW, NOW),
        ]
    )
    found = {(f["key_name"], f["finding"]) for f in inventory_findings(keys, admin)}
    assert found == {("b-prod", "disabled_upstream"), ("partner-sync-prod", "unmanaged_key")}


def test_inventory_rules_stay_quiet_without_an_admin_token() -> None:
    keys = pd.DataFrame({"key_name": ["a-prod"], "fingerprint": ["fa"]})
    assert inventory_findings(keys, _admin([])) == []


def test_upstream_key_with_a_configured_name_but_another_secret_is_explained() -> None:
    keys = pd.DataFrame({"key_name": ["a-prod"], "fingerprint": ["old"]})
    found = inventory_findings(keys, _admin([("new", "cli_a", "a-prod", True, None, None, NOW)]))
    assert ids(found) == {"unmanaged_key"} and "different secret" in found[0]["detail"]


# -------------------------------------------------------------------------------------------- evaluate


def test_evaluate_returns_every_finding_once_in_a_stable_order() -> None:
    keys = pd.DataFrame(
        [
            {
                "key_name": "temp",
                "environment": "dev",
                "owner": None,
                "owner_status": None,
                "fingerprint": "f1",
                "created_at": NOW - timedelta(days=40),
                "rotated_at": None,
                "last_used_at": None,
                "last_job_at": None,
                "last_call_day": None,
                "admin_created_at": None,
            },
            {
                "key_name": "api-prod",
                "environment": "prod",
                "owner": "team",
                "owner_status": None,
                "fingerprint": "f2",
                "created_at": None,
                "rotated_at": None,
                "last_used_at": NOW - timedelta(hours=1),
                "last_job_at": None,
                "last_call_day": NOW.date(),
                "admin_created_at": NOW - timedelta(days=45),
            },
        ]
    )
    findings = evaluate(KeyFacts(keys=keys), NOW)
    assert list(findings.columns) == FINDING_COLUMNS
    assert list(zip(findings["key_name"], findings["finding"], strict=True)) == [
        ("api-prod", "rotation_due"),  # created date taken from the vendor inventory
        ("temp", "never_used"),
        ("temp", "missing_owner"),
        ("temp", "generic_name"),
    ]
    candidates = deletion_candidates(keys, findings)
    assert candidates["key_name"].tolist() == ["temp"]
    assert candidates.loc[0, "other_findings"] == "missing_owner, generic_name"


def test_evaluate_accepts_an_aware_now() -> None:
    keys = pd.DataFrame(
        [
            {
                "key_name": "svc-prod",
                "environment": "prod",
                "owner": "t",
                "owner_status": None,
                "fingerprint": "f",
                "created_at": NOW - timedelta(days=10),
                "rotated_at": None,
                "last_used_at": NOW - timedelta(days=8),
                "last_job_at": None,
                "last_call_day": None,
                "admin_created_at": None,
            }
        ]
    )
    aware = pd.Timestamp(NOW, tz="UTC").to_pydatetime()
    assert evaluate(KeyFacts(keys=keys), aware)["finding"].tolist() == ["inactive"]


# --------------------------------------------------------------------------------------------- traffic


def test_top_movers_rank_by_absolute_change_and_count_missing_keys_as_zero() -> None:
    current = pd.DataFrame({"key_name": ["a", "b", "c"], "calls": [100, 10, 50]})
    previous = pd.DataFrame({"key_name": ["a", "b", "d"], "calls": [100, 40, 70]})
    movers = top_movers(current, previous)
    assert movers["key_name"].tolist() == ["d", "c", "b"]
    assert movers.set_index("key_name").loc["b", "change_pct"] == pytest.approx(-0.75)
    assert np.isnan(movers.set_index("key_name").loc["c", "change_pct"])


def test_rollup_zero_fills_hours_and_sums_days() -> None:
    frame = pd.DataFrame(
        {
            "key_name": ["a", "a", "b"],
            "hour": [datetime(2025, 6, 1, 1), datetime(2025, 6, 1, 3), datetime(2025, 6, 2, 0)],
            "calls": [2, 3, 4],
        }
    )
    hourly = rollup(
        frame, "hour", ["calls"], "hour", by="key_name", start=datetime(2025, 6, 1), end=datetime(2025, 6, 2, 1)
    )
    assert len(hourly) == 2 * 25 and hourly["calls"].sum() == 9
    daily = rollup(frame, "hour", ["calls"], "day", start=datetime(2025, 6, 1), end=datetime(2025, 6, 3))
    assert daily["calls"].tolist() == [5, 4]
    with pytest.raises(ValueError):
        rollup(frame, "hour", ["calls"], "week")


def test_week_profile_and_distance() -> None:
    hours = pd.Series(pd.to_datetime([datetime(2025, 6, 2, 13), datetime(2025, 6, 7, 2)]))  # Monday, Saturday
    p = week_profile(hours, pd.Series([3.0, 1.0]), 3)
    assert p.sum() == pytest.approx(1) and p[4] == pytest.approx(0.75) and p[8] == pytest.approx(0.25)
    assert profile_distance(p, p) == 0 and profile_distance(p, np.roll(p, 1)) == pytest.approx(1)


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, capsys) -> None:
    assert analytics_main.main(["keys", "--db", str(tmp_path / "missing.duckdb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not exist" in err

    assert analytics_main.main(["keys", "--db", "x", "--now", "yesterday"]) == 2
    assert "ISO-8601" in capsys.readouterr().err

    config = tmp_path / "keys.toml"
    config.write_text("[rules]\ninactive_days = { prod = 'soon' }\n", encoding="utf-8")
    assert analytics_main.main(["keys", "--db", "x", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "positive number" in err and "Traceback" not in err

    config.write_text("[rules\n", encoding="utf-8")
    assert analytics_main.main(["keys", "--db", "x", "--config", str(config)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_day_helpers_accept_dates() -> None:
    assert staleness_finding("svc-dev", "dev", date(2025, 1, 1), NOW, RULES, last_call_day=date(2025, 6, 1)) is None
