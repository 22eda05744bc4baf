"""Text from data in a real browser: Markdown and HTML in every data field show as text, and nothing is fetched.

Every key is renamed to Markdown and HTML that would load an image from a local receiver (key names, an
owner), decisions carry hostile notes and "who", an alert a hostile acknowledger, and the dashboard's
config a hostile [rules] field (its error message reaches the pages). The receiver must see no request,
the browser must request nothing outside the app, and the pages must show the values literally.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest

from analytics.review import default_week
from config import load_config
from simulator.server import start_server
from store.alert_store import acknowledge, upsert_incidents
from store.decisions import Decision, record
from tests.chromium import CHROMIUM, chromium_context, wait_until_idle
from tests.conftest import ROOT, SIM_NOW, collect_once, make_world, write_sim_config
from tests.dashboard_process import dashboard_process
from tests.untrusted_text import WORD_JOINER, hostile_values, write_hostile_config

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "untrusted"

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def receiver():
    """A local web server standing in for an attacker's: it records every request that reaches it."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            hits.append(f"{self.command} {self.path}")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_HEAD = _record  # noqa: N815 (http.server naming)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, receiver, admin_token_env):
    folder = tmp_path_factory.mktemp("untrusted")
    url = receiver[0]
    values = hostile_values(url)
    world = make_world(n_keys=8, days=21)
    server = start_server(world, admin_token=admin_token_env)
    config = write_sim_config(server, folder / "keys.toml")
    renamed = write_hostile_config(config, url)
    db = folder / "monitor.duckdb"
    summary = collect_once(load_config(config), db)
    assert summary.keys_ok == len(renamed)
    names = sorted(renamed)
    now = SIM_NOW.replace(tzinfo=None)
    state = folder / "state.duckdb"
    for name in names:
        record(state, Decision(name, "investigate", values["who"], values["note"], default_week(now)), now=now)
    incident = {
        "key_name": names[0], "metric": "calls", "direction": "up", "start": pd.Timestamp(now - timedelta(hours=5)),
        "end": pd.Timestamp(now - timedelta(hours=3)), "peak_score": 0.9, "expected": 1.0, "observed": 9.0,
        "grain": "hour",
    }  # fmt: skip
    alert = upsert_incidents(state, pd.DataFrame([incident]), now)[0]
    acknowledge(state, alert["alert_id"], values["who"], now)
    dashboard_config = folder / "dashboard.toml"  # its [rules] error message reaches the Keys and Review pages
    dashboard_config.write_text(
        config.read_text(encoding="utf-8") + f'\n[rules]\n"{values["rules_field"]}" = 1\n', encoding="utf-8"
    )
    yield {"db": db, "config": dashboard_config, "state": state, "names": names, "values": values}
    server.stop()


@pytest.fixture(scope="module")
def app(hostile):
    env = dict(
        os.environ,
        RBV_DB=str(hostile["db"]),
        RBV_CONFIG=str(hostile["config"]),
        RBV_STATE_DB=str(hostile["state"]),
        RBV_NOW=SIM_NOW.isoformat(),
    )
    with dashboard_process("dashboard.py", ROOT, env) as url:
        yield url


def _expand_visible(page) -> None:
    for summary in page.locator("[data-testid='stExpander'] summary").all():
        if summary.is_visible() and summary.locator("xpath=..").get_attribute("open") is None:
            summary.click()
            page.wait_for_timeout(200)


def _shown_text(page) -> str:
    """The main area's visible text with every tab and expander opened in turn (joiners are invisible)."""
    main = page.locator("[data-testid='stMain']")
    _expand_visible(page)
    texts = [main.inner_text()]
    for tab in page.get_by_role("tab").all():
        tab.click()
        page.wait_for_timeout(300)
        _expand_visible(page)
        texts.append(main.inner_text())
    page.wait_for_timeout(800)
    return "\n".join(texts).replace(WORD_JOINER, "")


def test_text_from_data_renders_as_text_and_nothing_is_fetched(app, hostile, receiver):
    url, hits = receiver
    names, values = hostile["names"], hostile["values"]
    expectations = {  # page → texts that must appear literally (a data value, shown as itself)
        "": [],
        "keys": [names[0], values["rules_field"]],
        f"key_detail?key={quote(names[0], safe='')}": [names[0], values["owner"]],
        "traffic": [],
        "anomalies": [],
        "review": [names[0], values["who"], values["note"], values["rules_field"]],
        "collection": [],
        "credits": [],
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    outside: list[str] = []
    problems: list[str] = []
    with (
        sync_api.sync_playwright() as p,
        chromium_context(p, viewport={"width": 1400, "height": 1000}) as context,
    ):
        context.on("request", lambda r: None if r.url.startswith((app, "data:", "blob:")) else outside.append(r.url))
        page = context.new_page()
        for path, wanted in expectations.items():
            page.goto(f"{app}/{path}")
            wait_until_idle(page)
            page.wait_for_function("() => !document.querySelector('[data-testid=\"stSpinner\"]')", timeout=120_000)
            wait_until_idle(page)
            text = _shown_text(page)
            slug = path.split("?")[0] or "overview"
            (ARTIFACTS / f"{slug}.txt").write_text(text, encoding="utf-8")  # what was shown, for a failure
            page.screenshot(path=str(ARTIFACTS / f"{slug}.png"), full_page=True)
            main = page.locator("[data-testid='stMain']")
            if page.locator("[data-testid='stException']").count():
                problems.append(f"{slug}: an exception is shown")
            images = main.locator("img").evaluate_all("els => els.map(e => e.getAttribute('src'))")
            links = page.locator("a[href]").evaluate_all("els => els.map(e => e.getAttribute('href'))")
            foreign_images = [s for s in images if s and not s.startswith(("data:", "/", app))]
            foreign_links = [h for h in links if not h.startswith(("#", "/", app, "./"))]
            problems += [f"{slug}: image {s}" for s in foreign_images]
            problems += [f"{slug}: link {h}" for h in foreign_links]
            problems += [f"{slug}: not shown literally: {w}" for w in wanted if w not in text]
            if hits:
                problems.append(f"{slug}: the receiver was asked for {hits}")
                hits.clear()
    assert not problems, "\n".join(problems)
    assert outside == [], outside
