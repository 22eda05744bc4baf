"""Debian's Chromium for the browser tests and the screenshot scripts: how it is launched, and when a page is ready."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
# What this machine needs (no sandbox or GPU in the container; nothing that calls home).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium_context(playwright: Any, **options: Any) -> Iterator[Any]:
    """A headless Chromium context on a fresh profile, closed on exit; `options` go to Playwright."""
    with tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, **options
        )
        try:
            yield context
        finally:
            context.close()


def wait_until_idle(page: Any, timeout_ms: int = 60_000, settle_ms: int = 700) -> None:
    """Wait for the Streamlit script run to finish and for charts and tables to replace their placeholders."""
    page.wait_for_selector("[data-testid='stMain'] h1, [data-testid='stException']", timeout=timeout_ms)
    page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !/Running/.test(w.innerText); }",
        timeout=timeout_ms,
    )
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=timeout_ms)
    page.wait_for_timeout(settle_ms)


def screenshot_whole_page(page: Any, path: str, max_height: int = 12_000) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main section, not the document, so the
    viewport is made as tall as that section's content first (and restored after)."""
    size = page.viewport_size
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? Math.max(m.scrollHeight, document.body.scrollHeight) : document.body.scrollHeight; }"
    )
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), size["height"]), max_height)})
    page.wait_for_timeout(800)  # charts re-measure their width and height
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(size)
