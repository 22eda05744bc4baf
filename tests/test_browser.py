"""The running app in a real browser (Debian's Chromium via Playwright, 1,400 px wide) on the stand-in's world: every
page, charts, a filter, a download, and what the operator must be able to trust at a glance: no change where
nothing compares, no zero where nothing was collected, no expected range below zero, tables that show their
first five columns without scrolling, and no traceback anywhere."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import reads
from tests.chromium import CHROMIUM, chromium_context, screenshot_whole_page, wait_until_idle
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
        screenshot_whole_page(page, str(ARTIFACTS / f"{slug or 'overview'}.png"))
        assert page.locator("[data-testid='stException']").count() == 0, title
        main = page.locator("[data-testid='stMain']").inner_text()
        assert "Traceback" not in main and "has encountered an error" not in main, title
        assert page.locator("[data-testid='stMain'] h1").first.inner_text().strip(), title


# The widths Streamlit's data grid gave its columns, read from the grid component's own props (the grid draws on
# a canvas, so the DOM holds no header boxes), and the width of its visible area.
_GRID_COLUMNS = """(grid) => {
  const scroller = grid.querySelector('.dvn-scroller');
  const fiberKey = Object.keys(scroller).find(k => k.startsWith('__reactFiber'));
  for (let f = scroller[fiberKey]; f; f = f.return) {
    const p = f.memoizedProps;
    if (p && Array.isArray(p.columns) && p.columns.length && p.columns[0].width !== undefined) {
      return {visible: scroller.clientWidth, columns: p.columns.map(c => [c.title, c.width])};
    }
  }
  return null;
}"""


def test_no_main_table_scrolls_sideways_to_reach_its_first_five_columns(page, app_url):
    for slug, title in _pages():
        _open(page, app_url, slug)
        grid = page.locator(".st-key-main_table [data-testid='stDataFrame']")
        grid.wait_for(timeout=60_000)  # a page is done when its main table is drawn (the last big element)
        assert grid.count() == 1, f"{title}: its main table is marked main_table"
        grid.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        found = grid.element_handle().evaluate(_GRID_COLUMNS)
        assert found, title
        first_five = sum(width for _, width in found["columns"][:5])
        assert first_five <= found["visible"], (title, found)


def test_overview_at_90_days_shows_no_change(page, app_url):
    page.goto(app_url)
    wait_until_idle(page)
    assert page.locator("[data-testid='stMain'] [data-testid='stMetricDelta']").count() == 4  # 30 days: compared
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="Last 90 days").click()
    wait_until_idle(page)
    assert page.locator("[data-testid='stMain'] [data-testid='stMetric']").count() == 4
    assert page.locator("[data-testid='stMain'] [data-testid='stMetricDelta']").count() == 0
    assert "No change shown: nothing was collected before" in page.locator("[data-testid='stMain']").inner_text()
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name="Last 30 days").click()
    wait_until_idle(page)


# The leftmost vertex of an SVG path, in page coordinates (a stroke's caps reach past it; the data does not).
_LEFTMOST_VERTEX = """(path) => {
  const pairs = [...path.getAttribute('d').matchAll(/(-?[\\d.]+(?:e-?\\d+)?),(-?[\\d.]+(?:e-?\\d+)?)/g)];
  const ctm = path.getScreenCTM();
  return Math.min(...pairs.map(([, x, y]) => new DOMPoint(+x, +y).matrixTransform(ctm).x));
}"""


def _chart_with_axis(page, title: str):
    """The chart whose y axis is titled `title` (Vega describes every axis for screen readers)."""
    chart = page.locator("[data-testid='stVegaLiteChart']").filter(
        has=page.locator(f"g.role-axis[aria-label^=\"Y-axis titled '{title}'\"]")
    )
    chart.first.wait_for(timeout=60_000)  # a rerun may not have started when the click returns
    assert chart.count() == 1, title
    return chart


def test_an_hourly_chart_draws_no_zero_before_event_coverage(page, app_url):
    _open(page, app_url, "key_detail")
    page.locator("[data-testid='stRadio']").filter(has_text="Granularity").get_by_text("Hour", exact=True).click()
    wait_until_idle(page)
    chart = _chart_with_axis(page, "Calls per hour")
    chart.scroll_into_view_if_needed()
    gap = chart.locator("g.mark-rect path[aria-label*='before event polling began']")
    assert gap.count() == 1, "the hours before event polling are one grey gap"
    line = chart.locator("g.mark-line path").first
    gap_box = gap.bounding_box()
    plot_width = chart.locator("g.role-axis[aria-label^='X-axis'] g.role-axis-domain").bounding_box()["width"]
    # Polling began at the collection, near the end of the 30-day range: most of the chart is unknown...
    assert gap_box["width"] > 0.8 * plot_width
    # ...and the calls line starts where it ends: nothing is drawn there, not even a zero.
    first_x = line.evaluate(_LEFTMOST_VERTEX)
    assert first_x >= gap_box["x"] + gap_box["width"] - 0.5, (gap_box, first_x)
    page.mouse.move(gap_box["x"] + gap_box["width"] / 2, gap_box["y"] + gap_box["height"] / 2)
    tooltip = page.locator("#vg-tooltip-element")
    tooltip.wait_for(state="visible", timeout=5_000)
    assert "before event polling began" in tooltip.inner_text()
    page.screenshot(path=str(ARTIFACTS / "key_detail_hourly.png"))


def test_the_anomalies_band_never_goes_below_zero(page, app_url):
    _open(page, app_url, "anomalies")
    chart = page.locator("[data-testid='stVegaLiteChart']").filter(has_text="Expected range")
    chart.first.wait_for(timeout=60_000)  # the key's chart comes after the fleet's small charts: drawn last
    assert chart.count() == 1
    chart.scroll_into_view_if_needed()
    y_axis = chart.locator("g.role-axis[aria-label^='Y-axis']").get_attribute("aria-label")
    assert "values from 0 to" in y_axis, y_axis
    labels = chart.locator("g.role-axis[aria-label^='Y-axis'] g.role-axis-label text").evaluate_all(
        "texts => texts.map(t => t.textContent)"
    )
    assert labels and not any(t.startswith(("-", "\u2212")) for t in labels), labels
    band = chart.locator("g.mark-area path").first.bounding_box()
    floor = chart.locator("g.role-axis[aria-label^='X-axis'] g.role-axis-domain").bounding_box()
    assert band["y"] + band["height"] <= floor["y"] + 1.5, (band, floor)
    legend = chart.locator("g.role-legend").get_attribute("aria-label")
    assert all(name in legend for name in ("Observed", "Expected", "Expected range", "Flagged")), legend


def test_overview_draws_charts(page, app_url):
    page.goto(app_url)
    wait_until_idle(page)
    selector = "[data-testid='stVegaLiteChart'] svg.marks, [data-testid='stVegaLiteChart'] canvas"
    charts = page.locator(selector)
    charts.nth(1).wait_for(timeout=30_000)  # calls per key and credits by environment (Vega draws them one by one)
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
    assert {r["Key"] for r in rows} == {k.name for k in collected.config.keys}
    assert all(r["Masked key"].startswith("rbv_…") for r in rows)
    assert all(r["Last used"] == "" or r["Last used"].endswith(" UTC") for r in rows), "absolute times, not '1 h ago'"
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
