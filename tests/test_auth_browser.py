"""Sign-in from the first request of a fresh dashboard process, whatever folder it was started from.

The probes: until `st.navigation` had run once in a process, `/keys` and friends ran their page files
without the sign-in check; started from another folder, the dashboard read neither its secrets (no
password) nor its config (no bound address); a WebSocket with a rebinding Host header was accepted.
Each test starts a copy of the dashboard (its own `.streamlit/secrets.toml` holds a password) in a new
process and asks first for a page deep inside it.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.chromium import CHROMIUM, chromium_context, wait_until_idle
from tests.conftest import ROOT, SIM_NOW
from tests.dashboard_process import dashboard_process
from ui.auth import hash_password

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (make test installs it)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")

PASSWORD = "correct horse battery"
_NOT_PART_OF_THE_APP = shutil.ignore_patterns(
    ".git", ".venv", "data", "tests", "test-artifacts", "__pycache__", ".pytest_cache", ".ruff_cache", "secrets.toml"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the dashboard whose own .streamlit/secrets.toml requires a password."""
    copy = tmp_path_factory.mktemp("dashboard") / "monitor"
    shutil.copytree(ROOT, copy, ignore=_NOT_PART_OF_THE_APP)
    secrets = f'[access]\npassword_hash = "{hash_password(PASSWORD, iterations=1000)}"\n'
    (copy / ".streamlit" / "secrets.toml").write_text(secrets, encoding="utf-8")
    return copy


@contextmanager
def dashboard(project: Path, cwd: Path, db: Path):
    """`streamlit run <project>/dashboard.py` in a fresh process, from `cwd`; yields its URL."""
    env = dict(os.environ, RBV_DB=str(db), RBV_NOW=SIM_NOW.isoformat(), RBV_STATE_DB=str(cwd / "state.duckdb"))
    with dashboard_process(project / "dashboard.py", cwd, env) as url:
        yield url


def _first_view(url: str) -> tuple[str, int]:
    """What the very first page view shows: the main area's text and how many data elements it has."""
    with sync_api.sync_playwright() as p, chromium_context(p) as context:
        page = context.new_page()
        page.goto(url)
        wait_until_idle(page)
        main = page.locator("[data-testid='stMain']")
        data = page.locator("[data-testid='stMetric'], [data-testid='stDataFrame'], [data-testid='stVegaLiteChart']")
        return main.inner_text(), data.count() + page.locator("[data-testid='stException']").count()


@pytest.mark.parametrize("path", ["keys", f"key_detail?key={quote('api-gateway-prod')}", "credits"])
def test_the_first_request_of_a_fresh_process_meets_the_sign_in(project, collected, path):
    with dashboard(project, project, collected.db_path) as url:
        text, shown = _first_view(f"{url}/{path}")
    assert "Password required" in text, text[:500]
    assert shown == 0, "data (or a page's error) was shown before sign-in"


def test_started_from_another_folder_it_serves_nothing(project, collected, tmp_path):
    with dashboard(project, tmp_path, collected.db_path) as url:
        text, shown = _first_view(f"{url}/keys")
    assert "Cannot start here" in text and str(project) in text, text[:500]
    assert shown == 0


def _websocket_status(port: int, host: str, origin: str) -> int:
    """The HTTP status a WebSocket upgrade to the app's stream gets (101 = accepted)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: streamlit\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(1024).split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1])


def test_a_websocket_with_a_rebinding_host_is_refused(project, collected):
    with dashboard(project, project, collected.db_path) as url:
        port = int(url.rsplit(":", 1)[1])
        assert _websocket_status(port, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}") == 101
        assert _websocket_status(port, f"localhost:{port}", f"http://localhost:{port}") == 101
        # DNS rebinding: attacker.example resolves to 127.0.0.1, so Host and Origin agree with each other.
        assert _websocket_status(port, f"attacker.example:{port}", f"http://attacker.example:{port}") != 101
