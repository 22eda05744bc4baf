"""The weekly review: JSON sections against the database, an empty week, the CLI and the decisions store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import duckdb
import pytest

from analytics.__main__ import main
from analytics.credits import ReconcileSettings
from analytics.keys import Rules
from analytics.review import SECTIONS, default_week, parse_week, week_bounds
from analytics.review_render import charts, to_html, to_markdown
from config import load_config
from service.keys import evaluate_findings
from service.review import compute_review
from store.decisions import Decision, all_decisions, last_decisions, record
from store.state_file import state_path

NOW = datetime(2026, 11, 20, 12, 0, 0)
WEEK = "2026-W46"
REQUIRED = (
    "week",
    "stale_keys",
    "governance",
    "anomalies",
    "reconciliation",
    "top_movers",
    "collector_health",
    "decisions",
)


def _sql(db, sql: str, params: list | None = None):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _cli(collected, tmp_path, fmt: str, *extra: str) -> str:
    out = tmp_path / f"review.{fmt}"
    args = ["review", "--db", str(collected.db_path), "--config", str(collected.config_path)]
    args += ["--now", "2026-11-20T12:00:00Z", "--format", fmt, "--out", str(out), *extra]
    assert main(args) == 0
    return out.read_text(encoding="utf-8")


@pytest.fixture
def state(tmp_path, monkeypatch):
    path = tmp_path / "state.duckdb"
    monkeypatch.setenv("RBV_STATE_DB", str(path))
    return path


def test_week_helpers():
    assert default_week(NOW) == WEEK  # Friday of W47: the last full week is W46
    assert default_week(datetime(2026, 11, 23, 0, 0)) == "2026-W47"
    assert week_bounds(WEEK) == (datetime(2026, 11, 9), datetime(2026, 11, 16))
    for bad in ("2026-46", "2026-W60", "W46", ""):
        with pytest.raises(ValueError):
            parse_week(bad)


def test_json_sections_match_the_database(collected, tmp_path, state):
    report = json.loads(_cli(collected, tmp_path, "json"))
    assert set(REQUIRED) <= set(report)
    assert list(report) == list(SECTIONS)
    assert report["week"]["week"] == WEEK
    start, end = week_bounds(WEEK)
    prev = start - timedelta(days=7)

    ((calls, credits),) = _sql(
        collected.db_path,
        "SELECT sum(calls), sum(credits) FROM key_daily_usage WHERE day >= ? AND day < ?",
        [start, end],
    )
    assert report["week"]["activity"]["calls"]["current"] == calls
    assert report["week"]["activity"]["credits"]["current"] == pytest.approx(credits, abs=0.01)
    ((prev_calls,),) = _sql(
        collected.db_path, "SELECT sum(calls) FROM key_daily_usage WHERE day >= ? AND day < ?", [prev, start]
    )
    assert report["week"]["activity"]["calls"]["previous"] == prev_calls

    env = dict(
        _sql(
            collected.db_path,
            "SELECT k.environment, sum(u.credits) FROM key_daily_usage u JOIN keys k USING (key_name) "
            "WHERE u.day >= ? AND u.day < ? GROUP BY 1",
            [start, end],
        )
    )
    got = {r["environment"]: r["current"] for r in report["credits_by_environment"]}
    assert got == pytest.approx({k: round(v, 2) for k, v in env.items()}, abs=0.01)

    per_key = dict(
        _sql(
            collected.db_path,
            "SELECT key_name, sum(calls) FROM key_daily_usage WHERE day >= ? AND day < ? GROUP BY 1",
            [start, end],
        )
    )
    for mover in report["top_movers"]["calls"]:
        assert mover["current"] == per_key.get(mover["key_name"], 0)
    movers = report["top_movers"]["calls"]
    assert [abs(m["change"]) for m in movers] == sorted((abs(m["change"]) for m in movers), reverse=True)

    rules = load_config(collected.config_path, secrets=False).rules
    truth = evaluate_findings(collected.db_path, end - timedelta(microseconds=1), rules)
    stale_truth = sorted((r.key_name, r.finding) for r in truth.itertuples() if r.finding in ("never_used", "inactive"))
    assert sorted((r["key_name"], r["finding"]) for r in report["stale_keys"]) == stale_truth
    assert report["governance"]["open"] == len(truth)
    flagged = [d["key_name"] for d in report["decisions_needed"]]
    assert sorted(flagged) == sorted(truth["key_name"].unique())
    news = [d["new"] for d in report["decisions_needed"]]
    assert news == sorted(news, reverse=True)  # new findings first

    ((runs,),) = _sql(
        collected.db_path, "SELECT count(*) FROM collector_runs WHERE started_at >= ? AND started_at < ?", [start, end]
    )
    assert report["collector_health"]["runs"] == runs
    recon = report["reconciliation"]
    assert recon["total"] == sum(c["count"] for c in recon["by_category"])
    anomalies = report["anomalies"]
    assert anomalies["incidents"] == [] or anomalies["available"]
    for incident in anomalies["incidents"]:  # the week's incidents only (when the detector is installed)
        assert incident["start"] < end.isoformat() and incident["end"] >= start.isoformat()
    assert report["decisions"] == []


def test_week_with_the_collection_has_runs_and_failures(collected, tmp_path, state):
    report = json.loads(_cli(collected, tmp_path, "json", "--week", "2026-W47"))
    ((failed,),) = _sql(
        collected.db_path, "SELECT count(*) FROM collector_run_items WHERE status NOT IN ('ok', 'disabled')"
    )
    assert report["collector_health"]["runs"] >= 1
    assert len(report["collector_health"]["failed_items"]) == failed
    assert report["week"]["complete"] is False


def test_empty_week_is_a_clear_valid_report(collected, tmp_path, state):
    report = json.loads(_cli(collected, tmp_path, "json", "--week", "2020-W10"))
    assert set(REQUIRED) <= set(report)
    assert report["week"]["has_activity"] is False
    assert report["week"]["activity"]["calls"]["current"] == 0
    assert report["top_movers"] == {"calls": [], "credits": []}
    assert report["credits_by_environment"] == [] and report["new_keys"] == []
    assert report["collector_health"]["runs"] == 0
    assert report["reconciliation"]["total"] == 0
    md = _cli(collected, tmp_path, "md", "--week", "2020-W10")
    assert "No calls or jobs were recorded in this week." in md
    html = _cli(collected, tmp_path, "html", "--week", "2020-W10")
    assert html.count("data:image/png;base64,") == 2


def test_the_exports_compare_week_over_week_only_like_for_like(collected, state):
    compared = compute_review(collected.db_path, WEEK, NOW, Rules(), ReconcileSettings())
    assert compared["week"]["compared"] is True
    pct = compared["week"]["activity"]["calls"]["change_pct"]
    assert pct is not None and "compared with 2026-W45" in to_markdown(compared)
    (first_day,) = _sql(collected.db_path, "SELECT min(day) FROM key_daily_usage")[0]
    # The week whose week before predates the first collected day, and the week still running: totals only.
    oldest = default_week(datetime.combine(first_day, datetime.min.time()) + timedelta(days=7))
    for week, because in ((oldest, f"nothing was collected before {first_day:%Y-%m-%d}"), ("2026-W47", "not over")):
        review = compute_review(collected.db_path, week, NOW, Rules(), ReconcileSettings())
        assert review["week"]["compared"] is False and because in review["week"]["not_compared_because"]
        md = to_markdown(review)
        headline = md.split("## ")[0]
        assert "not compared with" in headline and because in headline and "%" not in headline, headline
        # Nor do the sections and the chart: this week's figures only.
        assert "| Previous week |" not in md and "Change %" not in md
        assert "Not compared with the week before" in md
        assert [title for title, _ in charts(review)][1] == "Credits by environment"
    assert "| Previous week |" in to_markdown(compared)
    assert [title for title, _ in charts(compared)][1] == "Credits by environment, week over week"


def test_future_week_renders_without_governance(collected, state):
    week = "2027-W02"
    review = compute_review(collected.db_path, week, NOW, Rules(), ReconcileSettings())
    assert review["governance"]["available"] is False
    assert "Not computable" in to_markdown(review)
    assert "<html" in to_html(review)


@pytest.mark.parametrize(
    "args",
    [
        ["--week", "2026-W99"],
        ["--week", "last"],
        ["--now", "yesterday"],
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(collected, tmp_path, capsys, args):
    code = main(["review", "--db", str(collected.db_path), "--format", "json", "--out", str(tmp_path / "x"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


def test_cli_missing_db_exits_2(tmp_path, capsys):
    assert main(["review", "--db", str(tmp_path / "none.duckdb"), "--format", "md", "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_decisions_survive_restarts_and_export(collected, tmp_path, state):
    assert state_path(collected.db_path) == state
    record(state, Decision("frontend-dev", "delete", "ana", "nobody uses it", WEEK), now=NOW)
    record(state, Decision("frontend-dev", "investigate", "bo", "", WEEK), now=NOW + timedelta(hours=1))
    record(state, Decision("dev-carol", "rotate", "ana", "owner left", WEEK), now=NOW)
    with pytest.raises(ValueError):
        record(state, Decision("dev-carol", "ignore", "ana", "", WEEK))
    with pytest.raises(ValueError):
        record(state, Decision("dev-carol", "keep", "  ", "", WEEK))
    assert len(all_decisions(state)) == 3  # a fresh connection each time: nothing held in memory
    last = last_decisions(state).set_index("key_name")
    assert last.loc["frontend-dev", "decision"] == "investigate"
    tables = {r[0] for r in _sql(state, "SELECT table_name FROM duckdb_tables()")}
    assert tables == {"review_decisions"}
    assert not {r[0] for r in _sql(collected.db_path, "SELECT table_name FROM duckdb_tables()")} & tables

    report = json.loads(_cli(collected, tmp_path, "json", "--week", "2026-W47"))
    by_key = {d["key_name"]: d for d in report["decisions"]}
    assert by_key["frontend-dev"]["decision"] == "investigate" and by_key["dev-carol"]["note"] == "owner left"
    flagged = {d["key_name"]: d for d in report["decisions_needed"]}
    assert flagged["frontend-dev"]["last_decision"]["decided_by"] == "bo"
    assert "investigate by bo on 2026-11-20" in _cli(collected, tmp_path, "md", "--week", "2026-W47")


def test_state_path_defaults_beside_the_collector_db(tmp_path, monkeypatch):
    monkeypatch.delenv("RBV_STATE_DB", raising=False)
    assert state_path(tmp_path / "monitor.duckdb") == tmp_path / "monitor.duckdb.dashboard.duckdb"
    assert last_decisions(tmp_path / "missing.duckdb").empty
