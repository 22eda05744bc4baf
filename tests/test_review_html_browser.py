"""The HTML review opened from a file in headless Chromium with the network off: charts shown, no requests out."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.__main__ import main
from tests.chromium import CHROMIUM, chromium_context
from tests.conftest import ROOT, SIM_NOW

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "review"

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.mark.parametrize("week", ["2026-W46", "2020-W10"])
def test_html_report_shows_charts_offline(collected, tmp_path, monkeypatch, week):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    report = tmp_path / f"review_{week}.html"
    args = ["review", "--db", str(collected.db_path), "--config", str(collected.config_path), "--week", week]
    assert main([*args, "--now", SIM_NOW.isoformat(), "--format", "html", "--out", str(report)]) == 0
    text = report.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "@page { size: A4" in text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    external: list[str] = []

    def guard(route, request):
        requests.append(request.url)
        if request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            external.append(request.url)
            route.abort()

    with (
        sync_api.sync_playwright() as pw,
        chromium_context(pw, offline=True, viewport={"width": 1000, "height": 1400}) as context,
    ):
        context.route("**/*", guard)
        page = context.new_page()
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else external.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        widths = page.eval_on_selector_all(
            "img.chart", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])"
        )
        page.screenshot(path=str(ARTIFACTS / f"review_{week}.png"), full_page=True)
        page.emulate_media(media="print")
        assert page.locator("h1").inner_text().startswith("Weekly key review")

    assert len(widths) == 2
    assert all(done and w > 0 and h > 0 for done, w, h in widths), widths
    assert external == [], external
    assert any(u.startswith("file:") for u in requests)
    assert (ARTIFACTS / f"review_{week}.png").stat().st_size > 10_000
