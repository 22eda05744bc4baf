"""Access control: with a password or an identity provider configured, no page shows data without sign-in."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

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
