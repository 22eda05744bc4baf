"""AppTest for the dashboard entry, the Overview and the Collection health pages."""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pytest
from streamlit.proto.Metric_pb2 import Metric
from streamlit.testing.v1 import AppTest

import ui.tables
from store import reads
from tests.conftest import DASHBOARD, SIM_NOW, deferred_downloads


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
    assert all(m.startswith("rbv_…") for m in table["masked_key"])


def test_a_fleet_larger_than_a_table_shows_its_busiest_keys_says_how_many_and_the_csv_keeps_all(app_env, monkeypatch):
    """10,000 keys are not shipped to the browser as table rows: the key table shows the first SHOWN_ROWS (2 here)
    busiest keys with a caption saying how many of how many; the CSV (written when clicked) has every key."""
    monkeypatch.setattr(ui.tables, "SHOWN_ROWS", 2)
    written = deferred_downloads(monkeypatch)
    at = _run()
    total = len(app_env.config.keys)
    table = at.dataframe[0].value
    assert len(table) == 2 and table["calls"].is_monotonic_decreasing
    assert any(f"Showing 2 of {total:,} keys (most calls in range first)" in c.value for c in at.caption)
    assert max(table["calls"]) == max(_busiest(app_env).values())
    assert len(written[-1][1].decode().strip().splitlines()) == 1 + total


def _busiest(collected) -> dict[str, int]:
    end = SIM_NOW.date()
    with duckdb.connect(str(collected.db_path), read_only=True) as con:
        rows = con.execute(
            "SELECT key_name, sum(calls) FROM key_daily_usage WHERE day BETWEEN ? AND ? GROUP BY 1",
            [end - timedelta(days=29), end],
        ).fetchall()
    return dict(rows)


def test_the_calls_chart_sums_the_top_keys_and_the_rest_like_the_key_days_do(app_env):
    """The Overview's per-key chart is summed in DuckDB: its top keys' days and the "other keys" series equal the
    usage summary's key-days summed the long way."""
    end = SIM_NOW.date()
    start = end - timedelta(days=29)
    daily = reads.daily_usage(app_env.db_path, start, end, ["prod", "staging"])
    ours = reads.daily_top_keys(app_env.db_path, start, end, ["prod", "staging"], 3, "other keys")
    ranking = daily.groupby("key_name")["calls"].sum().sort_values(ascending=False)
    top = list(ranking.head(3).index)
    assert ours.drop_duplicates("series").sort_values("rank")["series"].tolist() == [*top, "other keys"]
    theirs = daily.assign(series=daily["key_name"].where(daily["key_name"].isin(top), "other keys"))
    theirs = theirs.groupby(["day", "series"], as_index=False)[["calls", "credits"]].sum()
    merged = ours.merge(theirs, on=["day", "series"], suffixes=("", "_long"), validate="one_to_one")
    assert len(merged) == len(theirs) == len(ours)
    assert (merged["calls"] == merged["calls_long"]).all()
    assert ((merged["credits"] - merged["credits_long"]).abs() < 1e-6).all()
    by_env = reads.daily_by_environment(app_env.db_path, start, end, ["prod", "staging"])
    assert set(by_env["environment"]) == {"prod", "staging"}
    assert by_env["calls"].sum() == daily["calls"].sum()


def assert_change_colours(at: AppTest) -> None:
    """One colour meaning: volume is grey; a rise in failures or credits is red, never green."""
    for metric in at.metric:
        if not metric.delta:
            continue
        rise = metric.proto.direction == Metric.UP
        if metric.label in ("Failed jobs", "Credits"):
            assert metric.proto.color == (Metric.RED if rise else Metric.GREEN), metric.label
        else:
            assert metric.proto.color == Metric.GRAY, metric.label


def _sum(db, field: str, start, end) -> float:
    with duckdb.connect(str(db), read_only=True) as con:
        sql = f"SELECT sum({field}) FROM key_daily_usage WHERE day BETWEEN ? AND ?"
        return con.execute(sql, [start, end]).fetchone()[0]


def test_changes_compare_complete_days_with_as_many_days_before(app_env):
    at = _run()
    today = SIM_NOW.date()  # in progress: read to 12:00, so left out of every change
    first, last = today - timedelta(days=29), today - timedelta(days=1)
    before = (first - timedelta(days=29), first - timedelta(days=1))
    calls = next(m for m in at.metric if m.label == "Calls")
    change = _sum(app_env.db_path, "calls", first, last) - _sum(app_env.db_path, "calls", *before)
    assert calls.delta == f"{change:+,.0f}"
    assert_change_colours(at)
    note = " ".join(c.value for c in at.caption)
    assert f"the 29 complete days {first} – {last} against the 29 days before ({before[0]} – {before[1]})" in note
    assert f"Totals include {today} so far" in note


def test_at_90_days_there_is_nothing_to_compare_with_so_no_change_is_shown(app_env):
    at = _run()
    at.selectbox(key="range_choice").set_value("Last 90 days").run()
    assert not at.exception
    assert all(not m.delta for m in at.metric), [m.delta for m in at.metric]
    assert any("No change shown: nothing was collected before" in c.value for c in at.caption)


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


def test_collection_health_names_the_key_disabled_upstream_apart_from_failures(app_env):
    at = _run("pages/collection.py")
    disabled = [k.name for k in app_env.world.keys() if k.managed and not k.enabled]
    assert disabled
    note = next(i.value for i in at.info if "Disabled in the vendor's inventory" in i.value)
    assert all(name in note for name in disabled)
    assert any("No failures recorded" in s.value for s in at.success)
    frames = [d.value for d in at.dataframe]
    assert not any("error_code" in f.columns for f in frames)


def test_missing_database_gives_an_empty_state_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_DB", str(tmp_path / "nothing.duckdb"))
    at = AppTest.from_file(DASHBOARD, default_timeout=30).run()
    assert not at.exception
    assert any("No collected data yet" in i.value for i in at.info)
