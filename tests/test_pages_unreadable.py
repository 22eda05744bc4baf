"""AppTest on a store whose pricing answers could not be read: every page's banner says so and since when,
and the Credits page and the weekly review say which rates judged the credits instead."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from store import reads
from tests.conftest import ROOT, SIM_NOW
from ui.settings import Settings

PAGES = ("overview", "keys", "key_detail", "traffic", "anomalies", "credits", "review", "collection")


@pytest.fixture
def broken(unreadable_pricing, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    return unreadable_pricing


def _page(collected, name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=180)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    if name == "key_detail":
        at.query_params["key"] = "api-gateway-prod"
    at.run()
    assert not at.exception, (name, [e.value for e in at.exception])
    return at


def test_the_collection_that_could_not_read_pricing_was_partial(unreadable_pricing):
    assert unreadable_pricing.first_run.status == "partial"
    assert "* pricing: unreadable" in unreadable_pricing.first_run.failures
    [item] = reads.freshness(unreadable_pricing.db_path).unreadable
    assert (item.endpoint, item.keys) == ("pricing", 1)


@pytest.mark.parametrize("name", PAGES)
def test_every_page_says_what_is_unreadable_and_since_when(broken, name):
    since = reads.freshness(broken.db_path).unreadable[0].since
    banners = [w.value for w in _page(broken, name).warning if w.value.startswith("Data as of")]
    assert len(banners) == 1, name
    assert f"**pricing unreadable** since {since:%Y-%m-%d %H:%M}" in banners[0]
    assert "its records were quarantined, so expected credits use fallback rates" in banners[0]


def test_credits_page_says_the_published_rates_judged_the_credits(broken):
    at = _page(broken, "credits")
    at.selectbox(key="range_choice").set_value("Last 90 days").run()
    assert not at.exception
    caption = next(c.value for c in at.caption if "expected = billed minutes × model rate" in c.value)
    assert "**pricing: the vendor's published rates (RemoveBGVideo's public API docs" in caption
    warning = next(w.value for w in at.warning if w.value.startswith("Pricing: "))
    assert "the API's pricing has been unreadable since" in warning and "fallback rates are used" in warning
    table = next(d.value for d in at.dataframe if "refund_due" in d.value.columns)
    assert set(table["pricing_source"]) == {"published"}
    assert {"overcharged", "undercharged"} <= set(table["category"]), "the published rates still judge"


def test_weekly_review_says_which_pricing_was_used(broken):
    at = _page(broken, "review")
    note = next(c.value for c in at.caption if "discrepancies," in c.value)
    assert "Pricing used: the vendor's published rates" in note and "Warning: the API's pricing" in note
