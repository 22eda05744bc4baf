"""Access control: with a password or an identity provider configured, no page shows data without sign-in."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import ui.auth
from tests.conftest import DASHBOARD, SIM_NOW
from ui.auth import hash_password, verify_password

PASSWORD = "correct horse battery"


def _pages() -> list[str]:
    import re
    from pathlib import Path

    source = Path(DASHBOARD).read_text(encoding="utf-8")
    return re.findall(r'st\.Page\("([^"]+)"', source)


@pytest.fixture
def gated(collected, monkeypatch):
    monkeypatch.setenv("RBV_DB", str(collected.db_path))
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    throttle = getattr(ui.auth, "THROTTLE", None)  # failed sign-ins are counted per process
    if throttle is not None:
        throttle.reset()

    def make(section: str, value: dict) -> AppTest:
        at = AppTest.from_file(DASHBOARD, default_timeout=60)
        at.secrets[section] = value
        return at

    return make


def _shows_data(at: AppTest) -> bool:
    return bool(at.metric) or bool(at.dataframe) or bool(at.get("vega_lite_chart"))


def test_hash_round_trip():
    stored = hash_password(PASSWORD, iterations=1000)
    assert verify_password(PASSWORD, stored)
    assert not verify_password("wrong", stored)
    assert not verify_password(PASSWORD, "garbage")


def test_every_page_refuses_without_the_password(gated):
    stored = hash_password(PASSWORD, iterations=1000)
    pages = _pages()
    assert len(pages) >= 2
    at = gated("access", {"password_hash": stored}).run()
    assert not at.exception
    assert not _shows_data(at)
    assert any("Password required" in t.value for t in at.title)
    for page in pages:
        # While locked, the sign-in page is the only one registered: no page can be reached.
        with pytest.raises(ValueError, match="Known pages: \\['Sign in'\\]"):
            at.switch_page(page)


def test_wrong_password_is_refused_and_right_one_unlocks(gated):
    at = gated("access", {"password_hash": hash_password(PASSWORD, iterations=1000)}).run()
    at.text_input(key="access_password").input("nope")  # form values travel with the submit
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error)
    assert not _shows_data(at)
    at.text_input(key="access_password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert _shows_data(at)
    assert any(t.value == "Overview" for t in at.title)


def test_identity_provider_requires_sign_in_on_every_page(gated):
    oidc = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "monitor",
        "client_secret": "s",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
    }
    at = gated("auth", oidc).run()
    assert not at.exception
    assert not _shows_data(at)
    assert any("Sign in required" in t.value for t in at.title)
    for page in _pages():
        with pytest.raises(ValueError, match="Known pages: \\['Sign in'\\]"):
            at.switch_page(page)


def _wrong_password(at: AppTest) -> AppTest:
    at.text_input(key="access_password").input("not the password")
    return at.button[0].click().run()


def test_failed_sign_ins_are_limited_per_client_not_per_session(gated, monkeypatch, caplog):
    """The probe: a per-session delay that a reload reset, no lockout, nothing logged."""
    monkeypatch.setattr("ui.auth.time.sleep", lambda seconds: None)
    caplog.set_level("INFO", logger="rbv.auth")
    stored = hash_password(PASSWORD, iterations=1000)
    at = gated("access", {"password_hash": stored}).run()
    for _ in range(4):
        _wrong_password(at)
        assert any("Wrong password" in e.value for e in at.error)
    _wrong_password(at)
    assert any("Too many failed sign-ins" in e.value for e in at.error)
    # A reload is a new session from the same address: still locked, and no password can even be tried.
    again = gated("access", {"password_hash": stored}).run()
    assert not again.exception
    assert any("Too many failed sign-ins" in e.value for e in again.error)
    assert not [t for t in again.text_input if t.key == "access_password"]
    assert not _shows_data(again)
    failures = [r.getMessage() for r in caplog.records if "failed dashboard sign-in" in r.getMessage()]
    assert len(failures) == 5 and all("from localhost" in m for m in failures)
    assert any("locked" in r.getMessage() for r in caplog.records)


def test_sign_in_lockout_ends_and_success_clears_it():
    clock = [0.0]
    throttle = ui.auth.SignInThrottle(max_failures=3, window_s=60, clock=lambda: clock[0])
    for _ in range(3):
        throttle.failed("10.0.0.7")
    assert throttle.locked_for("10.0.0.7") == 60 and throttle.locked_for("10.0.0.8") == 0
    clock[0] = 61
    assert throttle.locked_for("10.0.0.7") == 0
    throttle.failed("10.0.0.7")
    throttle.succeeded("10.0.0.7")
    assert throttle.failed("10.0.0.7") == 1


def test_the_dashboard_serves_nothing_when_started_outside_its_folder(gated, monkeypatch, tmp_path):
    """Streamlit reads .streamlit/ (address, allowed hosts, secrets) from the working directory only."""
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    assert not at.exception
    assert not _shows_data(at)
    assert any("Cannot start here" in t.value for t in at.title)
    assert any("make run" in e.value for e in at.error)
    for page in _pages():
        with pytest.raises(ValueError, match="Known pages: \\['Cannot start'\\]"):
            at.switch_page(page)


def test_the_streamlit_config_keeps_its_protections():
    import tomllib

    from tests.conftest import ROOT

    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))["server"]
    assert server["address"] == "127.0.0.1"
    assert server["enableXsrfProtection"] is True and server["enableCORS"] is True
    assert set(server["allowedHosts"]) == {"localhost", "127.0.0.1", "::1"}
