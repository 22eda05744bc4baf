"""Take full-page screenshots of dashboard URLs with Debian's Chromium (for eyeballing and artifacts)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_until_idle(page, timeout_ms: int = 60_000) -> None:
    """Streamlit shows a 'Running…' status widget while the script runs; wait for it to go."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_selector("[data-testid='stMain'] h1, [data-testid='stException']", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !/Running/.test(document.querySelector('[data-testid=\"stStatusWidget\"]').innerText)",
        timeout=timeout_ms,
    )
    # Charts and tables draw after the script finishes; wait for their placeholders to go.
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')", timeout=timeout_ms)
    page.wait_for_timeout(1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--out", default="test-artifacts/screens")
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": args.width, "height": 900},
        )
        page = browser.new_page()
        for i, url in enumerate(args.urls):
            page.goto(url)
            wait_until_idle(page)
            target = out / f"{i:02d}_{url.rstrip('/').rsplit('/', 1)[-1].split('?')[0] or 'root'}.png"
            page.screenshot(path=str(target), full_page=True)
            print(target)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
