"""AppTest for the Keys, Key detail and Traffic explorer pages on the collected stand-in world."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

import ui.tables
from tests.conftest import ROOT, SIM_NOW
from ui.settings import Settings

PAGES = {name: str(ROOT / "pages" / f"{name}.py") for name in ("keys", "key_detail", "traffic")}


@pytest.fixture
def app_env(collected, monkeypatch):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    return collected


def _page(collected, name: str, **query: str) -> AppTest:
    at = AppTest.from_file(PAGES[name], default_timeout=60)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _sql(collected, sql: str, params: list | None = None):
    with duckdb.connect(str(collected.db_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def _badges(at: AppTest) -> dict[str, str]:
    """Badge text → its tooltip (findings are shown in words, their codes in the tooltip)."""
    return {m.value: m.proto.help for m in at.markdown if "-badge[" in m.value}


def test_keys_page_shows_every_key_with_numbers_and_findings_from_the_database(app_env):
    at = _page(app_env, "keys")
    ((count,),) = _sql(app_env, "SELECT count(*) FROM keys")
    assert _metric(at, "Keys shown") == f"{count:,}"
    truth = app_env.world.governance_truth(app_env.now)
    assert _metric(at, "Findings") == f"{len(truth):,}"

    table = at.dataframe[0].value
    assert len(table) == count
    row = table[table["key"].str.endswith("key=api-gateway-prod")].iloc[0]
    end = SIM_NOW.date()
    ((calls_30d,),) = _sql(
        app_env,
        "SELECT sum(calls) FROM key_daily_usage WHERE key_name = 'api-gateway-prod' AND day > ?",
        [end - timedelta(days=30)],
    )
    assert row["calls_30d"] == calls_30d
    assert len(row["daily_calls"]) == 30 and sum(row["daily_calls"]) == calls_30d

    # What matters first: which key, what is wrong with it and why, when it was last used, how busy it is.
    assert list(table.columns[:5]) == ["key", "findings", "why", "last_used", "calls_30d"]
    overdue = table[table["key"].str.endswith("key=prod-main")].iloc[0]
    assert "rotation overdue" in overdue["findings"] and "must rotate within 90 days" in overdue["why"]
    badge = next(text for text in _badges(at) if "rotation overdue" in text)
    assert badge.startswith(":red-badge[") and "rotation_overdue" in _badges(at)[badge]
    assert all(m.startswith("rbv_") for m in table["masked_key"])
    assert table["findings"].map(len).is_monotonic_decreasing, "keys with findings lead"


def test_keys_page_filters_by_finding_and_lists_deletion_candidates(app_env):
    at = _page(app_env, "keys")
    candidates = at.dataframe[1].value
    stale = {k for k, f in app_env.world.governance_truth(app_env.now) if f in ("never_used", "inactive")}
    assert set(candidates["key_name"]) == stale
    others = {k: f for k, f in app_env.world.governance_truth(app_env.now) if f == "generic_name"}
    assert any("generic name" in o for o in candidates[candidates["key_name"].isin(others)]["other_findings"])
    assert candidates["evidence"].str.len().gt(10).all()
    assert len(at.get("download_button")) >= 3

    at.multiselect(key="keys_finding").set_value(["never_used"]).run()
    assert not at.exception
    shown = {k.split("key=")[-1] for k in at.dataframe[0].value["key"]}
    assert shown == {k for k, f in app_env.world.governance_truth(app_env.now) if f == "never_used"}
    assert _metric(at, "Keys shown") == str(len(shown))


def test_a_long_key_list_shows_its_first_rows_says_how_many_and_a_name_filter_narrows(app_env, monkeypatch):
    """With more keys than a table ships (SHOWN_ROWS, 3 here) the table shows the first (most findings first),
    a caption says how many of how many and how to narrow, and "Key name contains" finds any key."""
    monkeypatch.setattr(ui.tables, "SHOWN_ROWS", 3)
    at = _page(app_env, "keys")
    ((count,),) = _sql(app_env, "SELECT count(*) FROM keys")
    assert len(at.dataframe[0].value) == 3 and _metric(at, "Keys shown") == f"{count:,}"
    assert any(f"Showing 3 of {count:,} keys (most findings first)" in c.value for c in at.caption)

    at.text_input(key="keys_search").set_value("GATEWAY").run()
    assert not at.exception
    shown = {k.split("key=")[-1] for k in at.dataframe[0].value["key"]}
    ((matching,),) = _sql(app_env, "SELECT count(*) FROM keys WHERE key_name ILIKE '%gateway%'")
    assert 0 < matching <= 3 and len(shown) == matching and all("gateway" in k.lower() for k in shown)
    assert not any("Showing 3 of" in c.value for c in at.caption if "keys (most findings first)" in c.value)


def test_deep_link_opens_the_right_key(app_env):
    at = _page(app_env, "key_detail", key="prod-main")
    assert at.selectbox(key="detail_key").value == "prod-main"
    assert "**prod**" in _markdown(at) and "**platform-team**" in _markdown(at)  # the owner in full
    assert any("rotation_overdue" in help for text, help in _badges(at).items() if "rotation overdue" in text)
    end = SIM_NOW.date()
    ((calls,),) = _sql(
        app_env,
        "SELECT sum(calls) FROM key_daily_usage WHERE key_name = 'prod-main' AND day BETWEEN ? AND ?",
        [end - timedelta(days=29), end],
    )
    assert any(f"{calls:,.0f} calls" in c.value for c in at.caption)
    assert at.dataframe[0].value["job_id"].notna().all()


def test_key_detail_hour_grain_jobs_search_and_history(app_env):
    at = _page(app_env, "key_detail", key="api-gateway-prod")
    at.radio(key="detail_grain").set_value("hour").run()
    assert not at.exception
    assert any("Grain: hourly" in c.value for c in at.caption)

    ((job_id, status),) = _sql(
        app_env, "SELECT job_id, status FROM jobs WHERE key_name = 'api-gateway-prod' ORDER BY created_at LIMIT 1"
    )
    at.text_input(key="detail_job_search").set_value(job_id[-10:]).run()
    assert not at.exception
    jobs = at.dataframe[0].value
    assert jobs["job_id"].tolist() == [job_id]
    history = at.dataframe[1].value
    assert status in set(history["status"])


def test_unknown_key_is_an_inline_error(app_env):
    at = _page(app_env, "key_detail", key="no-such-key")
    assert any("no-such-key" in e.value for e in at.error)
    assert at.selectbox(key="detail_key").value is None


def test_traffic_explorer_charts_keys_and_environments_and_ranks_movers(app_env):
    at = _page(app_env, "traffic")
    assert len(at.get("vega_lite_chart")) == 1
    movers = at.dataframe[0].value
    top = movers.iloc[0]
    name = top["key"].split("key=")[-1]
    end = SIM_NOW.date()
    ((current,),) = _sql(
        app_env,
        "SELECT coalesce(sum(calls), 0) FROM key_daily_usage WHERE key_name = ? AND day BETWEEN ? AND ?",
        [name, end - timedelta(days=29), end - timedelta(days=1)],  # complete days only: today is in progress
    )
    assert top["current"] == current
    ((before,),) = _sql(  # the previous period is read as each key's total, not its days
        app_env,
        "SELECT coalesce(sum(calls), 0) FROM key_daily_usage WHERE key_name = ? AND day BETWEEN ? AND ?",
        [name, end - timedelta(days=58), end - timedelta(days=30)],
    )
    assert top["previous"] == before and top["change"] == current - before
    assert any("against the 29 days before" in c.value for c in at.caption)

    at.radio(key="traffic_grain").set_value("hour").run()
    assert not at.exception and len(at.get("vega_lite_chart")) == 1
    at.radio(key="traffic_compare").set_value("environments").run()
    assert not at.exception and len(at.get("vega_lite_chart")) == 1
    at.selectbox(key="traffic_metric").set_value("credits").run()
    assert not at.exception
