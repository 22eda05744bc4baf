"""AppTest for the Weekly review page: sections, a decision recorded and shown after a rerun, the downloads."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from analytics.__main__ import main
from tests.conftest import ROOT, SIM_NOW
from tests.test_pages_overview import assert_change_colours
from ui.settings import Settings

PAGE = str(ROOT / "pages" / "review.py")


@pytest.fixture
def app_env(collected, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    monkeypatch.setenv("RBV_DB", str(collected.db_path))
    monkeypatch.setenv("RBV_CONFIG", str(collected.config_path))
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    return collected


def _page(collected) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def test_page_shows_sections_in_meeting_order(app_env):
    at = _page(app_env)
    assert at.title[0].value == "Weekly review"
    assert at.selectbox(key="review_week").value == "2026-W46"
    heads = [s.value for s in at.subheader]
    assert heads[0] == "Keys needing a decision"
    order = ["Stale keys", "Governance findings opened this week", "Top movers by calls", "Reconciliation", "Export"]
    assert [heads.index(h) for h in order] == sorted(heads.index(h) for h in order)
    assert any(e.label.startswith("🆕 video-pipeline-staging") for e in at.expander)
    assert len(at.get("download_button")) == 3


def test_recording_a_decision_shows_it_after_a_rerun(app_env):
    at = _page(app_env)
    at.selectbox(key="decide_key").select("frontend-dev")
    at.text_input(key="decide_who").input("ana")
    at.selectbox(key="decide_choice").select("delete")
    at.text_area(key="decide_note").input("unused since October")
    form_button = next(b for b in at.button if "decide" in str(b.key))
    form_button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.run()  # a plain rerun (and a fresh AppTest: a restart) still shows it
    for app in (at, _page(app_env)):
        text = _text(app)
        assert "Last decision: **delete** by ana on 2026-11-20 (week 2026-W46): unused since October" in text
    frames = [d.value for d in at.dataframe]
    assert any("key_name" in f and "frontend-dev" in set(f["key_name"]) and "decided" in f for f in frames)


def test_empty_decision_author_is_refused(app_env):
    at = _page(app_env)
    at.selectbox(key="decide_key").select("frontend-dev")
    at.selectbox(key="decide_choice").select("keep")
    next(b for b in at.button if "decide" in str(b.key)).click().run()
    assert any("say who decided" in e.value for e in at.error)


def test_no_decision_is_preset(app_env):
    at = _page(app_env)
    assert at.selectbox(key="decide_choice").value is None
    at.selectbox(key="decide_key").select("frontend-dev")
    at.text_input(key="decide_who").input("ana")
    next(b for b in at.button if "decide" in str(b.key)).click().run()
    assert any("choose a decision" in e.value for e in at.error)


def test_week_over_week_is_like_for_like_and_a_rise_in_failures_is_never_green(app_env):
    at = _page(app_env)  # 2026-W46: complete, and the week before it was collected
    metrics = {m.label: m for m in at.metric}
    assert all(m.delta for m in metrics.values())
    assert_change_colours(at)
    oldest = at.selectbox(key="review_week").options[-1]  # the week before it predates the collected history
    at.selectbox(key="review_week").select(oldest).run()
    assert not at.exception
    assert all(not m.delta for m in at.metric)
    assert any("nothing was collected before" in c.value for c in at.caption)


def test_week_picker_and_json_download_match_the_cli(app_env, tmp_path):
    at = _page(app_env)
    at.selectbox(key="review_week").select("2026-W45").run()
    assert not at.exception
    out = tmp_path / "cli.json"
    args = ["review", "--db", str(app_env.db_path), "--config", str(app_env.config_path), "--week", "2026-W45"]
    assert main([*args, "--now", SIM_NOW.isoformat(), "--format", "json", "--out", str(out)]) == 0
    cli = json.loads(out.read_text(encoding="utf-8"))
    assert cli["week"]["week"] == "2026-W45"
    # The page renders the same review the CLI does (the buttons carry render(review, fmt) of it).
    from analytics.review_render import render
    from config import load_config
    from service.review import week_review
    from store.decisions import last_decisions
    from store.state_file import state_path

    config = load_config(app_env.config_path, secrets=False)
    done = week_review(
        app_env.db_path,
        "2026-W45",
        SIM_NOW.replace(tzinfo=None),
        config.rules,
        config.reconciliation,
        state_path(app_env.db_path),
    )
    page_json = json.loads(render(done.review, "json"))
    assert page_json == cli
    assert last_decisions(state_path(app_env.db_path)).empty
