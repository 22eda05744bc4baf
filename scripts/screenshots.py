"""`make screenshots`: the demo world (stand-in API, the real collector, the dashboard) shown page by page in
Debian's Chromium at 1,400 px, each page as a whole-page PNG in docs/screenshots/.

The stand-in's clock is frozen (`--now`, the test suite's instant by default) and the dashboard pinned to it
(RBV_NOW), so the same command draws the same pages: the screenshots change when the pages do, and otherwise
only in the times the collector stamps with the wall clock (when its runs and the smoke check finished).
The demo's config gets monthly budgets and a prepaid balance (SCREENSHOT_BUDGETS), so the Credits page shows its
Budgets section filled in, as a team that set them sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402  (Streamlit's own dependency)
from playwright.sync_api import sync_playwright  # noqa: E402

from config import load_config  # noqa: E402
from private_files import make_private_dir  # noqa: E402
from service.collection import collect_and_refresh  # noqa: E402
from service.refresh import refresh_results  # noqa: E402
from service.smoke import run_smoke_checks_now  # noqa: E402
from simulator.clock import parse_instant  # noqa: E402
from simulator.config_writer import write_config  # noqa: E402
from simulator.server import DEFAULT_ADMIN_TOKEN, start_server  # noqa: E402
from simulator.world import World  # noqa: E402
from tests.chromium import chromium_context, screenshot_whole_page, wait_until_idle  # noqa: E402
from tests.dashboard_process import dashboard_process  # noqa: E402

SMOKE_KEY = "api-gateway-prod"  # the key `make run` smoke-checks at start (scripts/run.sh)
# Views beyond a page's first screen, after that page: (file name, page path, (radio group, option to click, what
# is drawn once the rerun the click starts has finished: the click returns before that rerun begins)).
HOURLY_AXIS = "g.role-axis[aria-label^=\"Y-axis titled 'Calls per hour'\"]"
EXTRA_VIEWS = {
    "key-detail": [("key-detail-hourly", "key_detail?key=api-gateway-prod", ("Granularity", "Hour", HOURLY_AXIS))]
}


def pages() -> list[tuple[str, str]]:
    """(file name, path) of every page, in the order the navigation lists them."""
    source = (ROOT / "dashboard.py").read_text(encoding="utf-8")
    found = re.findall(r'st\.Page\("pages/([a-z_]+)\.py", title="([^"]+)"', source)
    out = []
    for index, (slug, _title) in enumerate(found):
        path = "" if index == 0 else slug + ("?key=api-gateway-prod" if slug == "key_detail" else "")
        out.append((slug.replace("_", "-"), path))
    return out


# About the demo world's monthly spend (~1 M credits), so the month's forecast crosses some of them.
SCREENSHOT_BUDGETS = """
[budgets]
account = 1200000
environments = { prod = 900000, staging = 150000, dev = 60000 }
prepaid_balance = 2500000
prepaid_as_of = "2026-11-01"
"""


def collect_demo(folder: Path, now: str, keys: int) -> tuple[Path, Path, object]:
    """Serve the demo world frozen at `now`, collect it once (then the results refresh) and smoke-check one key, as
    `make run` does, then refresh the results as its collector service soon does."""
    instant = parse_instant(now)
    world = World(seed=7, n_keys=keys, days=90, now=instant)
    os.environ.setdefault("RBV_ADMIN_TOKEN", DEFAULT_ADMIN_TOKEN)
    server = start_server(world, admin_token=os.environ["RBV_ADMIN_TOKEN"])
    config_path = write_config(world, folder / "keys.toml", server.base_url)
    with config_path.open("a", encoding="utf-8") as config_file:
        config_file.write(SCREENSHOT_BUDGETS)
    db = folder / "demo.duckdb"
    config = load_config(config_path)
    done = asyncio.run(collect_and_refresh(config, db, now=lambda: instant.replace(tzinfo=None)))
    print(done.run.line(), file=sys.stderr)
    checked = [k for k in config.keys if k.name == SMOKE_KEY]
    smoke = run_smoke_checks_now(config, db, checked, trigger="cli")
    print(f"smoke check of {SMOKE_KEY}: {'pass' if all(v.ok for v in smoke.verdicts) else 'fail'}", file=sys.stderr)
    # The smoke check's jobs collection is newer data: the demo's collector service refreshes the stored results
    # after it within its `results` interval, and so does this (else every page would say they are stale).
    refresh_results(db, config.rules, config.reconciliation, as_of=instant.replace(tzinfo=None))
    return db, config_path, server


def shrink(path: Path) -> None:
    """A palette PNG: the pages are flat colours, so 128 of them keep them sharp at a third of the size."""
    Image.open(path).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--now", default="2026-11-20T12:00:00Z", help="the demo world's frozen clock")
    parser.add_argument("--keys", type=int, default=30)
    parser.add_argument("--width", type=int, default=1400)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folder = ROOT / "data" / "screenshots"  # git-ignored; the sidebar names the database, so a readable path
    shutil.rmtree(folder, ignore_errors=True)
    make_private_dir(folder)
    db, config_path, server = collect_demo(folder, args.now, args.keys)
    db, config_path = db.relative_to(ROOT), config_path.relative_to(ROOT)
    env = dict(os.environ, RBV_DB=str(db), RBV_CONFIG=str(config_path), RBV_NOW=args.now, RBV_DEMO="1")
    try:
        with (
            dashboard_process("dashboard.py", ROOT, env) as url,
            sync_playwright() as p,
            chromium_context(p, viewport={"width": args.width, "height": 900}) as context,
        ):
            page = context.new_page()
            shots = [shot for name, path in pages() for shot in [(name, path, None), *EXTRA_VIEWS.get(name, [])]]
            for number, (name, path, click) in enumerate(shots, start=1):
                page.goto(f"{url}/{path}")
                wait_until_idle(page, settle_ms=1500)
                if click:
                    group, option, drawn = click
                    radio = page.locator("[data-testid='stRadio']").filter(has_text=group)
                    radio.get_by_text(option, exact=True).click()
                    page.locator(drawn).first.wait_for(timeout=60_000)
                    wait_until_idle(page, settle_ms=1500)
                if page.locator("[data-testid='stException']").count():
                    print(f"error: {name} shows an exception", file=sys.stderr)
                    return 1
                target = args.out / f"{number:02d}-{name}.png"
                screenshot_whole_page(page, str(target))
                shrink(target)
                print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
