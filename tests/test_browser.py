"""The running app in a real browser (Debian's Chromium via Playwright): every page, charts, a filter, a download."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import reads
from tests.chromium import CHROMIUM, chromium_context, wait_until_idle
from tests.conftest import ROOT, SIM_NOW
from tests.dashboard_process import dashboard_process

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"

if not Path(CHROMIUM).exists():  # `make test` installs it; a bare pytest run on a laptop may not have it
    pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def _serve(collected) -> Iterator[str]:
    """The dashboard over `collected`'s database in its own Streamlit server; yields its URL."""
    env = dict(
        os.environ, RBV_DB=str(collected.db_path), RBV_CONFIG=str(collected.config_path), RBV_NOW=SIM_NOW.isoformat()
    )
    with dashboard_process("dashboard.py", ROOT, env) as url:
        yield url


@pytest.fixture(scope="module")
def app_url(collected):
    yield from _serve(collected)


@pytest.fixture(scope="module")
def unreadable_url(unreadable_pricing):
    yield from _serve(unreadable_pricing)


@pytest.fixture(scope="module")
def page(app_url, unreadable_url):
    # Both dashboards (and the collections behind them, which run asyncio) start before Playwright's loop.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (
        sync_api.sync_playwright() as p,
        chromium_context(p, viewport={"width": 1400, "height": 1000}, accept_downloads=True) as context,
    ):
        yield context.new_page()


def _pages() -> list[tuple[str, str]]:
    source = (ROOT / "dashboard.py").read_text(encoding="utf-8")
    found = re.findall(r'st\.Page\("pages/([a-z_]+)\.py", title="([^"]+)"', source)
    return [("" if i == 0 else slug, title) for i, (slug, title) in enumerate(found)]


def _open(page, url: str, slug: str) -> None:
    page.goto(f"{url}/{slug}" + ("?key=api-gateway-prod" if slug == "key_detail" else ""))
    wait_until_idle(page)


def test_every_page_renders_without_an_exception(page, app_url):
    pages = _pages()
    assert len(pages) >= 5
    for slug, title in pages:
        _open(page, app_url, slug)
        page.screenshot(path=str(ARTIFACTS / f"{slug or 'overview'}.png"), full_page=True)
        assert page.locator("[data-testid='stException']").count() == 0, title
        assert page.locator("[data-testid='stMain'] h1").first.inner_text().strip(), title


def test_overview_draws_charts(page, app_url):
    page.goto(app_url)
    wait_until_idle(page)
    selector = "[data-testid='stVegaLiteChart'] svg.marks, [data-testid='stVegaLiteChart'] canvas"
    page.wait_for_selector(selector, timeout=30_000)
    charts = page.locator(selector)
    assert charts.count() >= 2
    box = charts.first.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100


def _metric(page, label: str) -> str:
    metric = page.locator("[data-testid='stMetric']", has_text=label).first
    return metric.locator("[data-testid='stMetricValue']").inner_text()


def test_environment_filter_changes_what_is_shown(page, app_url):
    page.goto(app_url)
    wait_until_idle(page)
    before = _metric(page, "Calls")
    # narrow the sidebar's time range from 30 to 7 days
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="Last 7 days").click()
    wait_until_idle(page)
    after = _metric(page, "Calls")
    page.screenshot(path=str(ARTIFACTS / "overview_filtered.png"), full_page=True)
    assert after != before
    assert int(after.replace(",", "")) < int(before.replace(",", ""))


def test_key_table_csv_download_arrives_and_parses(page, app_url, collected):
    page.goto(app_url)
    wait_until_idle(page)
    with page.expect_download() as info:
        page.get_by_role("button", name=re.compile("Download key table")).click()
    text = Path(info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["key"] for r in rows} == {k.name for k in collected.config.keys}
    assert all(r["masked key"].startswith("rbv_…") for r in rows)
    for key in collected.config.keys:
        assert key.secret not in text


def test_every_page_shows_the_quarantine_banner(page, unreadable_url, unreadable_pricing):
    since = reads.freshness(unreadable_pricing.db_path).unreadable[0].since
    for slug, title in _pages():
        _open(page, unreadable_url, slug)
        banner = page.locator("[data-testid='stAlert']", has_text="Data as of").first
        text = banner.inner_text()
        if slug == "credits":
            page.screenshot(path=str(ARTIFACTS / "credits_pricing_unreadable.png"), full_page=True)
        assert f"pricing unreadable since {since:%Y-%m-%d %H:%M}" in text, (title, text)
        assert "its records were quarantined" in text and "see Collection health" in text, (title, text)
