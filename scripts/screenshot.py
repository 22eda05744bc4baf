"""Take full-page screenshots of dashboard URLs with Debian's Chromium (for eyeballing and artifacts)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chromium import chromium_context, screenshot_whole_page, wait_until_idle  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--out", default="test-artifacts/screens")
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p, chromium_context(p, viewport={"width": args.width, "height": 900}) as context:
        page = context.new_page()
        for i, url in enumerate(args.urls):
            page.goto(url)
            wait_until_idle(page, settle_ms=1000)
            target = out / f"{i:02d}_{url.rstrip('/').rsplit('/', 1)[-1].split('?')[0] or 'root'}.png"
            screenshot_whole_page(page, str(target))
            print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
