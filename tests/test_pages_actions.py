"""AppTest for the page side of closing the loop: the Keys page's key actions (sign-in, guardrail, confirmation,
audit, rotation with its secret shown once) and Key detail's smoke checks (history, the run button, job labels)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from config import load_config
from simulator.server import start_server
from tests.conftest import ADMIN_TOKEN, ROOT, SIM_NOW, collect_once, make_world, write_sim_config
from ui.auth import hash_password
from ui.settings import Settings

BUSY = "api-gateway-prod"
QUIET = "reports-prod"
EXTRA = """
[actions]
enabled = true

[smoke]
poll_interval_s = 0.02
timeout_s = 30
clip_url = "https://cdn.example.com/clips/smoke-4s.mp4"

[collector]
backoff_scale = 0.001
"""


@pytest.fixture
def stand_in(tmp_path, admin_token_env, monkeypatch):
    world = make_world(n_keys=30, days=30)
    server = start_server(world, admin_token=ADMIN_TOKEN)
    config_path = write_sim_config(server, tmp_path / "keys.toml", EXTRA)
    db = tmp_path / "monitor.duckdb"
    collect_once(load_config(config_path), db, at=SIM_NOW)
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    yield world, Settings(db_path=db, config_path=config_path, demo=False)
    server.stop()


def _page(settings: Settings, name: str, signed_in: bool = True, **query: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=60)
    at.session_state["settings"] = settings
    if signed_in:  # the password gate, passed
        at.secrets["access"] = {"password_hash": hash_password("correct horse", iterations=1000)}
        at.session_state["access_granted"] = True
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _check(at: AppTest, key: str, action: str, **fields) -> AppTest:
    at.selectbox(key="keys_action_key").set_value(key)
    at.radio(key="keys_action_action").set_value(action)
    for name, value in fields.items():
        widget = at.checkbox(key=f"keys_action_{name}") if isinstance(value, bool) else None
        if widget is not None:
            widget.check() if value else widget.uncheck()
        else:
            at.text_input(key=f"keys_action_{name}").input(value)
    next(b for b in at.button if b.label == "Check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(e.value for kind in (at.error, at.success, at.warning, at.info) for e in kind)


def test_key_actions_need_a_signed_in_operator(stand_in):
    _, settings = stand_in
    at = _page(settings, "keys", signed_in=False)
    assert "key actions need a signed-in operator" in _texts(at)
    assert not [b for b in at.button if b.label == "Check"]


def test_a_busy_key_is_refused_then_disabled_when_forced_with_a_confirmation(stand_in):
    world, settings = stand_in
    at = _page(settings, "keys")
    at.text_input(key="keys_action_actor").input("ops-carol").run()
    _check(at, BUSY, "disable", reason="suspected leak")
    assert "Refused (recorded in the audit): refused: the key has traffic" in _texts(at)
    assert "Disable key api-gateway-prod" in "\n".join(m.value for m in at.markdown)
    assert world.is_enabled(world.key(BUSY))

    _check(at, BUSY, "disable", reason="suspected leak", force=True)
    assert "forced: the key has traffic" in _texts(at)
    go = at.button(key="keys_action_go")
    assert go.disabled  # until the key's name is typed
    at.text_input(key="keys_action_confirm_name").input(BUSY).run()
    at.button(key="keys_action_go").click().run()
    assert f"Done: {BUSY} is disabled" in _texts(at)
    assert not world.is_enabled(world.key(BUSY))
    audit = at.dataframe[-1].value
    assert list(audit["outcome"][:2]) == ["done", "refused"] and set(audit["actor"][:2]) == {"ops-carol"}
    assert bool(audit["forced"].iloc[0]) is True


def test_a_rotation_shows_its_secret_once_and_offers_to_disable_the_quiet_old_key(stand_in):
    world, settings = stand_in
    at = _page(settings, "keys")
    at.text_input(key="keys_action_actor").input("ops-carol").run()
    _check(at, QUIET, "rotate", new_name="reports-v2-prod")
    at.text_input(key="keys_action_confirm_name").input(QUIET).run()
    at.button(key="keys_action_go").click().run()
    assert not at.exception
    secret = world.key("reports-v2-prod").secret
    assert [c.value for c in at.code] == [secret]  # shown in this run
    assert "shown once" in _texts(at)

    at.run()  # the same session's next run: gone, and nothing kept it
    assert not at.code and secret not in str(at._tree) and "keys_action_preview" not in at.session_state
    again = _page(settings, "keys")  # another session
    assert not again.code and secret not in str(again._tree)
    rotations = next(d.value for d in again.dataframe if "replacement" in d.value.columns)
    assert list(rotations["old key"]) == [QUIET] and "quiet for 24 h" in rotations["status"].iloc[0]
    assert "say who is acting" in _texts(again)  # with the password gate, the operator names themselves
    again.text_input(key="keys_action_actor").input("ops-dan").run()
    retire = next(b for b in again.button if b.label == f"Disable {QUIET} (replaced by reports-v2-prod)")
    retire.click().run()
    assert again.selectbox(key="keys_action_key").value == QUIET
    assert again.text_input(key="keys_action_reason").value == "rotated to reports-v2-prod"


def test_key_detail_runs_a_smoke_check_and_keeps_its_history(stand_in):
    world, settings = stand_in
    at = _page(settings, "key_detail", key=BUSY)
    assert "No smoke check has run for this key yet." in _texts(at)
    at.button(key="detail_smoke_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.success if "path" in s.value] == ["success path: passed", "failure path: passed"]
    history = at.dataframe[-1].value
    assert sorted(history["path"]) == ["failure", "success"]
    assert set(history["trigger"]) == {"dashboard"} and set(history["ok"]) == {"✓ pass"}
    job_id = history[history["path"] == "success"]["job_id"].iloc[0]
    created = next(j for j in world.truth()["created_jobs"] if j["id"] == job_id)
    assert history[history["path"] == "success"]["credits_charged"].iloc[0] == created["credits"] == 3.0

    again = _page(settings, "key_detail", key=BUSY)
    jobs = next(d.value for d in again.dataframe if "smoke_check" in d.value.columns)
    labels = dict(zip(jobs["job_id"], jobs["smoke_check"], strict=True))
    assert labels[job_id] == "success path"
    assert sum(bool(v) for v in labels.values()) == 2  # only the two smoke jobs


def test_key_detail_says_why_a_check_cannot_run_here(stand_in, tmp_path):
    _, settings = stand_in
    without = Settings(db_path=settings.db_path, config_path=None, demo=False)
    at = _page(without, "key_detail", key=BUSY)
    assert at.button(key="detail_smoke_run").disabled
    assert "Running a check here needs the key's secret: no key config is loaded" in "\n".join(
        c.value for c in at.caption
    )


def test_the_weekly_review_acts_on_a_disable_decision(stand_in):
    world, settings = stand_in
    at = _page(settings, "review")
    assert any(QUIET in e.label for e in at.expander), [e.label for e in at.expander]
    at.selectbox(key="decide_key").set_value(QUIET)
    at.text_input(key="decide_who").input("weekly meeting")
    at.selectbox(key="decide_choice").set_value("disable")
    next(b for b in at.button if b.label == "Record decision").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="act_key").value == QUIET  # the keys decided on, to act on
    at.toggle(key="act_now").set_value(True).run()
    prefix = f"review_{QUIET}"
    at.text_input(key=f"{prefix}_actor").input("ops-erin").run()
    assert at.selectbox(key=f"{prefix}_key").options == [QUIET]
    assert at.radio(key=f"{prefix}_action").value == "disable"  # what the meeting decided
    at.text_input(key=f"{prefix}_reason").input("decided in the weekly review")
    next(b for b in at.button if b.label == "Check").click().run()
    at.text_input(key=f"{prefix}_confirm_name").input(QUIET).run()
    at.button(key=f"{prefix}_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"Done: {QUIET} is disabled" in _texts(at)
    assert not world.is_enabled(world.key(QUIET))
