"""AppTest for the dashboard entry, the Overview and the Collection health pages."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import DASHBOARD, SIM_NOW


@pytest.fixture
def app_env(collected, monkeypatch):
    monkeypatch.setenv("RBV_DB", str(collected.db_path))
    monkeypatch.setenv("RBV_CONFIG", str(collected.config_path))
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    monkeypatch.delenv("RBV_DEMO", raising=False)
    return collected


def _run(page: str | None = None) -> AppTest:
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_overview_numbers_equal_the_database(app_env):
    at = _run()
    end = SIM_NOW.date()
    start = end - timedelta(days=29)
    with duckdb.connect(str(app_env.db_path), read_only=True) as con:
        calls, credits = con.execute(
            "SELECT sum(calls), sum(credits) FROM key_daily_usage WHERE day BETWEEN ? AND ?", [start, end]
        ).fetchone()
    assert _metric(at, "Calls") == f"{calls:,.0f}"
    assert _metric(at, "Credits") == f"{credits:,.2f}"
    assert len(at.get("vega_lite_chart")) >= 2
    table = at.dataframe[0].value
    assert set(table["environment"]) <= {"prod", "staging", "dev"}
    assert len(table) == len(app_env.config.keys)
    assert all(m.startswith("rbv_…") for m in table["masked key"])


def test_environment_filter_changes_the_numbers(app_env):
    at = _run()
    all_calls = _metric(at, "Calls")
    at.multiselect(key="env_filter").set_value(["dev"]).run()
    assert not at.exception
    end = SIM_NOW.date()
    with duckdb.connect(str(app_env.db_path), read_only=True) as con:
        dev_calls = con.execute(
            "SELECT sum(u.calls) FROM key_daily_usage u JOIN keys k USING (key_name) "
            "WHERE k.environment = 'dev' AND day BETWEEN ? AND ?",
            [end - timedelta(days=29), end],
        ).fetchone()[0]
    assert _metric(at, "Calls") == f"{dev_calls:,.0f}" != all_calls
    assert set(at.dataframe[0].value["environment"]) == {"dev"}


def test_data_as_of_is_shown(app_env):
    at = _run()
    texts = " ".join(c.value for c in at.caption) + " ".join(w.value for w in at.warning)
    assert "Data as of" in texts


def test_collection_health_page_lists_the_rejected_key(app_env):
    at = _run("pages/collection.py")
    frames = [d.value for d in at.dataframe]
    failed = next(f for f in frames if "error_code" in f.columns)
    assert "invalid_api_key" in set(failed["error_code"])


def test_missing_database_gives_an_empty_state_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_DB", str(tmp_path / "nothing.duckdb"))
    at = AppTest.from_file(DASHBOARD, default_timeout=30).run()
    assert not at.exception
    assert any("No collected data yet" in i.value for i in at.info)
