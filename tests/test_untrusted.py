"""Hardening: what a tampered file, a hostile value or a careless operator could do, repeated as tests.

Each probe of issue 14 (except the backup ones, in test_lifecycle.py, and the browser ones, in
test_untrusted_browser.py and test_auth.py): text from data is escaped in exports, URLs are checked when
the config loads, a webhook that cannot be posted to is an error that is recorded, retried and never
printed, `--out` never replaces an input, files are owner-only, key names are bounded and logs one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.__main__ import main as analytics_main
from collectors.__main__ import main as collectors_main
from collectors.http_client import RetryPolicy, post_json
from config import ConfigError, config_from_dict, load_config
from service.scheduler import alert_check_job
from store.alert_store import list_alerts
from store.decisions import Decision, record
from tests.conftest import ROOT, SIM_NOW, collect_once, make_world, write_sim_config
from tests.notify_receivers import http_receiver
from tests.untrusted_text import WORD_JOINER, hostile_values, shown_text, write_hostile_config

NOW_ARG = SIM_NOW.isoformat()
KEY = '[[keys]]\nname = "a-prod"\nsecret = "rbv_hostile_0123456789"\n'
# Port 9 on loopback refuses at once: should a check regress, the collector fails fast and reaches nothing.
API = '[api]\nbase_url = "http://127.0.0.1:9"\n'
FAST = "[collector]\nmax_attempts = 1\n"
SECRET_PART = "T000B000XXXXsup3rs3cr3t"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _run(main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _one_line_error(code, err: str, expected: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected.lower() in lines[0].lower(), lines[0]
    return lines[0]


# --- the one escaping rule ---------------------------------------------------------------------------------

# What can open a construct once escapes are resolved; the word joiner breaks the text-level ones.
_UNESCAPED = re.compile(r"(?<!\\)[`*_\[\]<>!|~$#&]")
_TEXT_TRIGGERS = re.compile(r"(?i)https?://|www\.|\w@|:[a-z/+-]")


def _markdown_text(value, **kwargs):
    from untrusted import markdown_text

    return markdown_text(value, **kwargs)


HOSTILE_TEXT = [
    "![px](http://127.0.0.1:9/x.png)",
    '<img src="http://127.0.0.1:9/x.png">',
    "[click](javascript:alert(1))",
    "see http://127.0.0.1:9/auto.png and www.example.com and ops@example.com",
    ":material/warning: :red[red] :+1: $x^2$ **b** _i_ ~~s~~ `c` &lt;b&gt;",
    "1. ordered",
    "- bullet",
    "# heading",
    "> quote",
    "a | b",
    "line\nbreak\x1b[31m\u202e",
]


@pytest.mark.parametrize("value", HOSTILE_TEXT)
def test_markdown_text_shows_exactly_the_text(value):
    from untrusted import one_line

    source = _markdown_text(value)
    assert shown_text(source) == one_line(value)
    stripped = re.sub(r"\\.", "", source)  # what is left once every escape is taken out
    assert not _UNESCAPED.search(stripped), source
    assert not _TEXT_TRIGGERS.search(source.replace("\\", "")), source
    assert "\n" not in source


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_markdown_text_property(value):
    from untrusted import one_line

    source = _markdown_text(value)
    assert shown_text(source) == one_line(value)
    assert not _UNESCAPED.search(re.sub(r"\\.", "", source))
    assert not _TEXT_TRIGGERS.search(source.replace("\\", ""))


def test_log_text_keeps_one_line():
    from untrusted import log_text

    assert log_text("name\n2026-01-01 WARNING forged\x1b[2J\u2028") == "name\\n2026-01-01 WARNING forged\\x1b[2J\\u2028"
    assert log_text("plain text") == "plain text"


# --- URLs are checked when the config loads --------------------------------------------------------------

BAD_BASE_URLS = {
    "link-local metadata": ("http://169.254.169.254/latest/meta-data/", "link-local"),
    "metadata as a number": ("http://2852039166/", "link-local"),
    "metadata as mapped IPv6": ("http://[::ffff:169.254.169.254]/", "link-local"),
    "metadata by name": ("http://metadata.google.internal/", "link-local"),
    "credentials": (f"https://user:{SECRET_PART}@api.example.test", "user name or password"),
    "spaces": ("https://api.example.test/v1 extra", "spaces"),
    "ftp": ("ftp://api.example.test/", "http(s)"),
    "file": ("file:///etc/passwd", "http(s)"),
    "no host": ("https:///path", "no host"),
}


@pytest.mark.parametrize("case", sorted(BAD_BASE_URLS))
def test_bad_base_urls_are_config_errors(tmp_path, case):
    url, expected = BAD_BASE_URLS[case]
    config = _write(tmp_path, "c.toml", f"[api]\nbase_url = {json.dumps(url)}\n" + KEY)
    with pytest.raises(ConfigError, match=re.escape(expected)) as info:  # loaded only: nothing is called
        load_config(config)
    assert SECRET_PART not in str(info.value), "credentials from the URL were echoed"
    assert "\n" not in str(info.value)


def test_a_bad_base_url_is_one_line_and_exit_2_from_the_cli(tmp_path):
    config = _write(tmp_path, "c.toml", f'[api]\nbase_url = "http://user:{SECRET_PART}@127.0.0.1:9"\n' + KEY + FAST)
    code, out, err = _run(collectors_main, ["once", "--config", str(config), "--db", str(tmp_path / "m.duckdb")])
    line = _one_line_error(code, err, "user name or password")
    assert SECRET_PART not in line
    assert not (tmp_path / "m.duckdb").exists()


def test_only_http_urls_from_data_become_links():
    """Job output URLs come from the upstream: the Key detail page links only http(s) ones."""
    from untrusted import http_link

    assert http_link("https://cdn.example.test/out.mp4") == "https://cdn.example.test/out.mp4"
    for bad in ("javascript:alert(1)", "data:text/html,<script>", "file:///etc/passwd", None, float("nan")):
        assert http_link(bad) is None


def test_link_local_base_url_is_allowed_only_when_asked_and_loopback_always(tmp_path):
    metadata = "http://169.254.169.254/"
    config = _write(tmp_path, "c.toml", f'[api]\nbase_url = "{metadata}"\nallow_link_local = true\n' + KEY)
    assert load_config(config).base_url == metadata.rstrip("/")
    loopback = _write(tmp_path, "l.toml", '[api]\nbase_url = "http://127.0.0.1:8765"\n' + KEY)
    assert load_config(loopback).base_url == "http://127.0.0.1:8765"
    with pytest.raises(ConfigError, match="true or false"):
        load_config(_write(tmp_path, "x.toml", '[api]\nallow_link_local = "yes"\n' + KEY))


BAD_WEBHOOKS = {
    "no scheme": f"hooks.example.test/services/{SECRET_PART}",
    "file": f"file:///tmp/{SECRET_PART}",
    "data": f"data:,{SECRET_PART}",
    "ftp": f"ftp://127.0.0.1:21/{SECRET_PART}",
    "credentials": f"https://user:{SECRET_PART}@hooks.example.test/x",
    "metadata": f"http://169.254.169.254/{SECRET_PART}",
    "spaces": f"https://hooks.example.test/ {SECRET_PART}",
}


@pytest.mark.parametrize("case", sorted(BAD_WEBHOOKS))
def test_bad_webhook_urls_are_config_errors_that_never_show_the_url(tmp_path, monkeypatch, case):
    monkeypatch.setenv("RBV_TEST_WEBHOOK", BAD_WEBHOOKS[case])
    config = _write(tmp_path, "c.toml", API + KEY + FAST + '[alerts]\nwebhook_url_env = "RBV_TEST_WEBHOOK"\n')
    code, out, err = _run(collectors_main, ["once", "--config", str(config), "--db", str(tmp_path / "m.duckdb")])
    line = _one_line_error(code, err, "$RBV_TEST_WEBHOOK")
    assert SECRET_PART not in line and "hooks.example" not in line


def test_a_url_pasted_into_webhook_url_env_is_refused_unechoed(tmp_path):
    config = _write(
        tmp_path, "c.toml", KEY + f'[alerts]\nwebhook_url_env = "https://hooks.example.test/{SECRET_PART}"\n'
    )
    with pytest.raises(ConfigError, match="name of an environment variable") as info:
        load_config(config)
    assert SECRET_PART not in str(info.value)


# --- secrets only through *_env names; no field silently dropped; bounded key names --------------------------


def test_the_admin_token_may_not_be_written_in_the_config(tmp_path):
    config = _write(tmp_path, "c.toml", API + f'admin_token = "{SECRET_PART}"\n' + KEY + FAST)
    code, out, err = _run(collectors_main, ["once", "--config", str(config), "--db", str(tmp_path / "m.duckdb")])
    line = _one_line_error(code, err, "admin_token_env")
    assert SECRET_PART not in line


def test_a_key_note_is_refused_not_dropped(tmp_path):
    config = _write(tmp_path, "c.toml", KEY + 'note = "owned by the payments team"\n')
    with pytest.raises(ConfigError, match="'note' is not stored"):
        load_config(config)


BAD_NAMES = {
    "newline": "a-prod\n2026-11-20 12:00:00 WARNING collectors.sync: all keys healthy",
    "huge html": "<img src=x onerror=alert(1)>" * 180,
    "escape sequence": "a-prod\x1b[2J",
    "bidi override": "a-\u202edorp",
    "tab": "a\tprod",
}


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_bad_key_names_are_one_line_config_errors(tmp_path, case):
    config = _write(tmp_path, "c.toml", API + KEY.replace('"a-prod"', json.dumps(BAD_NAMES[case])) + FAST)
    code, out, err = _run(collectors_main, ["once", "--config", str(config), "--db", str(tmp_path / "m.duckdb")])
    line = _one_line_error(code, err, "printable characters on one line")
    assert len(line) < 400 and "WARNING collectors.sync" not in line


def test_owners_are_bounded_and_on_one_line(tmp_path):
    config = _write(tmp_path, "c.toml", KEY + 'owner = "ops\\nFORGED"\n')
    with pytest.raises(ConfigError, match="owner: must be at most 200 printable characters"):
        load_config(config)
    ok = load_config(_write(tmp_path, "ok.toml", KEY + 'owner = "  platform-team  "\n'))
    assert ok.keys[0].owner == "platform-team"


def _error_server(message: str):
    """An upstream that answers every request 401 with `message` (the collector logs it)."""
    body = json.dumps({"error": {"code": "invalid_api_key", "message": message, "request_id": "req_1"}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def test_log_lines_cannot_be_forged_by_upstream_text(tmp_path):
    forged = "2026-11-20 12:00:00,000 WARNING collectors.sync: FORGED all keys healthy"
    server = _error_server(f"key rejected\n{forged}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        config = _write(tmp_path, "c.toml", f'[api]\nbase_url = "http://127.0.0.1:{server.server_address[1]}"\n' + KEY)
        done = subprocess.run(
            [sys.executable, "-m", "collectors", "once", "--config", str(config), "--db", str(tmp_path / "m.duckdb"),
             "--endpoints", "summary"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert "key rejected" in done.stderr, done.stderr  # the upstream text is logged...
    assert not any(line.startswith("2026-11-20 12:00:00,000 WARNING") for line in done.stderr.splitlines())
    assert "key rejected\\n2026-11-20" in done.stderr  # ...with its line break written as an escape


# --- webhook delivery: only http(s), never a redirect, a failure recorded and retried, the URL never printed ------


@contextlib.contextmanager
def _tcp_listener():
    """A bare TCP port that counts the connections made to it (for ftp: and redirects)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.1)
    accepted: list[int] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(timeout=2)
        sock.close()


def deliver(url: str, payload: dict, attempts: int = 3, timeout_s: float = 5.0) -> tuple[bool, int, str | None]:
    """Post through the one outbound HTTP path (collectors.http_client), backoff scaled down for tests."""
    outcome = post_json(url, payload, RetryPolicy(max_attempts=attempts, scale=0.001), timeout_s=timeout_s)
    return outcome.ok, outcome.attempts, outcome.error


def _stored_incident(monkeypatch) -> None:
    """Detection is not under test: the alert check sees one fresh incident."""
    import service.alerts
    from service.anomalies import Incidents
    from service.results import Provenance

    monkeypatch.setattr(
        service.alerts, "incidents", lambda db, now, since: Incidents(_incident(now), [], Provenance(now, None))
    )


@pytest.mark.parametrize("scheme", ["data", "file", "ftp", "no scheme"])
def test_deliver_refuses_urls_it_cannot_post_to(tmp_path, scheme):
    existing = _write(tmp_path, "target.txt", "a file the old code opened and called delivered")
    with _tcp_listener() as (port, accepted):
        url = {
            "data": f"data:,{SECRET_PART}",
            "file": existing.as_uri(),
            "ftp": f"ftp://127.0.0.1:{port}/{SECRET_PART}",
            "no scheme": f"hooks.example.test/services/{SECRET_PART}",
        }[scheme]
        ok, attempts, error = deliver(url, {"text": "x"}, attempts=2, timeout_s=1)
    assert (ok, attempts) == (False, 0), (ok, attempts, error)
    assert "http(s)" in error and SECRET_PART not in error and str(tmp_path) not in error
    assert accepted == [], "a connection was opened for a URL that is not http(s)"


def test_deliver_does_not_follow_redirects():
    with _tcp_listener() as (port, accepted):

        class Redirect(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            ok, attempts, error = deliver(f"http://127.0.0.1:{server.server_address[1]}/hook", {"text": "x"})
        finally:
            server.shutdown()
            server.server_close()
    assert not ok and attempts == 1 and "302" in error
    assert accepted == [], "the redirect was followed"


def test_slack_payload_cannot_mention_or_link():
    from analytics.alerts import slack_payload

    text = slack_payload({"key_name": "<!channel> <http://evil.example|x> & co", "metric": "calls"})["text"]
    assert "<" not in text.replace(":rotating_light:", "") and ">" not in text
    assert "&lt;!channel&gt; &lt;http://evil.example|x&gt; &amp; co" in text


def _incident(now: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "key_name": "api-gateway-prod", "metric": "calls", "direction": "up",
                "start": pd.Timestamp(now - timedelta(hours=3)), "end": pd.Timestamp(now - timedelta(hours=1)),
                "peak_score": 0.9, "expected": 1.0, "observed": 9.0, "grain": "hour",
                "alert_worthy": True, "event": "api-gateway-prod@1",
            }
        ]
    )  # fmt: skip


def _database(collected, tmp_path) -> Path:
    """A copy of the collected database: the checks read its keys and collection runs (and never write it)."""
    copy = tmp_path / "monitor.duckdb"
    shutil.copy(collected.db_path, copy)
    return copy


def test_serve_records_retries_and_never_prints_an_undeliverable_webhook(collected, tmp_path, monkeypatch, capsys):
    """The probe: a URL without a scheme printed `[alerts] check failed: unknown url type: '<the URL>'`."""
    state = tmp_path / "state.duckdb"
    monkeypatch.setenv("RBV_STATE_DB", str(state))
    monkeypatch.delenv("RBV_TEST_SERVE_HOOK", raising=False)
    alerts = '[alerts]\nwebhook_url_env = "RBV_TEST_SERVE_HOOK"\nhealth_stale_minutes = 0\n'
    config = load_config(_write(tmp_path, "c.toml", KEY + alerts))
    database = _database(collected, tmp_path)
    # The variable changes after the config was checked (it is read at each check): the check must cope.
    bad = f"hooks.example.test/services/{SECRET_PART}"
    monkeypatch.setenv("RBV_TEST_SERVE_HOOK", bad)
    _stored_incident(monkeypatch)
    job = alert_check_job(config, database)
    asyncio.run(job())
    printed = capsys.readouterr()
    assert SECRET_PART not in printed.out + printed.err, "the webhook URL was printed"
    assert "http(s)" in printed.err  # the failure is visible in the service log...
    alerts = list_alerts(state)
    assert len(alerts) == 1 and pd.isna(alerts.loc[0, "delivered_at"])
    assert "http(s)" in alerts.loc[0, "last_error"] and SECRET_PART not in alerts.loc[0, "last_error"]  # ...and page
    with http_receiver("slack") as (url, received):
        monkeypatch.setenv("RBV_TEST_SERVE_HOOK", url)
        asyncio.run(job())  # the next check retries it
    alerts = list_alerts(state)
    assert len(received.bodies) == 1 and alerts.loc[0, "delivered_at"] is not None
    assert pd.notna(alerts.loc[0, "delivered_at"]) and alerts.loc[0, "last_error"] is None


def test_a_failed_delivery_is_retried_at_the_next_check(collected, tmp_path, monkeypatch):
    from service.alerts import check_alerts

    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    _stored_incident(monkeypatch)
    config = config_from_dict({"alerts": {"webhook_url_env": "RBV_TEST_RETRY_HOOK"}}, secrets=False)
    database = _database(collected, tmp_path)
    now = SIM_NOW.replace(tzinfo=None)
    with http_receiver("slack", statuses=[503, 503, 503, 200]) as (url, received):
        monkeypatch.setenv("RBV_TEST_RETRY_HOOK", url)
        first = check_alerts(database, config, now)
        second = check_alerts(database, config, now + timedelta(minutes=10))
    assert (first.opened, first.delivered, first.failed) == (1, 0, 1)
    assert (second.opened, second.delivered, second.failed) == (0, 1, 0)
    assert received.refused == ["HTTP 503"] * 3 and len(received.requests) == 1
    row = list_alerts(tmp_path / "state.duckdb").iloc[0]
    assert row["delivery_attempts"] == 4 and row["last_error"] is None


# --- --out never replaces an input, and refuses an existing file without --force ----------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db_copy(collected, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    copy = tmp_path / "monitor.duckdb"
    shutil.copy(collected.db_path, copy)
    return copy


def test_review_out_onto_its_own_database_is_refused_even_with_force(db_copy):
    """The probe: `analytics review --db X --out X` replaced an 8.6 MB database with 3.7 KB of Markdown."""
    before = _sha(db_copy)
    for extra in ([], ["--force"]):
        argv = ["review", "--db", str(db_copy), "--now", NOW_ARG, "--format", "md", "--out", str(db_copy), *extra]
        code, out, err = _run(analytics_main, argv)
        assert code == 2 and "a file this command reads" in err, err
    wal = db_copy.with_name(db_copy.name + ".wal")
    code, out, err = _run(analytics_main, ["review", "--db", str(db_copy), "--format", "md", "--out", str(wal)])
    assert code == 2 and "a file this command reads" in err
    assert _sha(db_copy) == before and not wal.exists()


def test_review_and_reconcile_out_refuse_existing_files_without_force(db_copy, tmp_path):
    report = _write(tmp_path, "report.md", "keep me\n")
    base = ["review", "--db", str(db_copy), "--now", NOW_ARG, "--format", "md", "--out", str(report)]
    code, out, err = _run(analytics_main, base)
    assert code == 2 and "already exists: pass --force" in err
    assert report.read_text(encoding="utf-8") == "keep me\n"
    code, out, err = _run(analytics_main, [*base, "--force"])
    assert code == 0, err
    assert report.read_text(encoding="utf-8").startswith("# Weekly key review")
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    output = _write(tmp_path, "discrepancies.json", "keep me too\n")
    argv = ["reconcile", "--db", str(db_copy), "--now", NOW_ARG, "--output", str(output)]
    code, out, err = _run(analytics_main, argv)
    assert code == 2 and "already exists" in err and output.read_text(encoding="utf-8") == "keep me too\n"
    code, out, err = _run(analytics_main, ["reconcile", "--db", str(db_copy), "--output", str(db_copy), "--force"])
    assert code == 2 and "a file this command reads" in err
    code, out, err = _run(analytics_main, [*argv, "--force"])
    assert code == 0 and json.loads(output.read_text(encoding="utf-8")) is not None
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


# --- files the product writes are owner-only ------------------------------------------------------------------


def test_files_the_product_writes_are_owner_only(collected, tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k != "RBV_UMASK"}
    new_db = tmp_path / "fresh" / "monitor.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "collectors", "once", "--config", str(collected.config_path), "--db", str(new_db),
         "--endpoints", "pricing"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = tmp_path / "demo" / "keys.toml"
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--no-serve", "--keys", "3", "--days", "3", "--write-config", str(config)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # In-process library calls get the same modes (no umask involved).
    state = tmp_path / "state" / "dashboard.duckdb"
    record(state, Decision("api-gateway-prod", "keep", "ops", "", "2026-W46"), now=SIM_NOW.replace(tzinfo=None))
    monkeypatch.setenv("RBV_STATE_DB", str(state))
    from analytics.credits import ReconcileSettings
    from analytics.keys import Rules
    from service.review import write_weekly_review

    reports = write_weekly_review(
        collected.db_path, tmp_path / "reports", SIM_NOW.replace(tzinfo=None), Rules(), ReconcileSettings()
    )
    files = [new_db, config, state, *reports]
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {str(p): "0o600" for p in files}
    folders = [new_db.parent, config.parent, tmp_path / "reports"]
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in folders} == {str(p): "0o700" for p in folders}


def test_rbv_umask_configures_the_modes(tmp_path, monkeypatch):
    from private_files import write_private

    monkeypatch.setenv("RBV_UMASK", "027")
    path = write_private(tmp_path / "shared.txt", "x", replace=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    with pytest.raises(FileExistsError):
        write_private(path, "y", replace=False)


# --- text from data in the Markdown and HTML exports ---------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory, admin_token_env):
    from simulator.server import start_server

    folder = tmp_path_factory.mktemp("hostile-export")
    receiver_url = "http://127.0.0.1:9"
    values = hostile_values(receiver_url)
    world = make_world(n_keys=6, days=21)
    server = start_server(world, admin_token=admin_token_env)
    try:
        config = write_sim_config(server, folder / "keys.toml")
        renamed = write_hostile_config(config, receiver_url)
        db = folder / "monitor.duckdb"
        collect_once(load_config(config), db)
    finally:
        server.stop()
    state = folder / "state.duckdb"
    now = SIM_NOW.replace(tzinfo=None)
    for name in renamed:
        record(state, Decision(name, "investigate", values["who"], values["note"], "2026-W46"), now=now)
    return {"db": db, "state": state, "names": sorted(renamed), "values": values}


def _export(hostile_db, fmt: str) -> str:
    argv = ["review", "--db", str(hostile_db["db"]), "--state-db", str(hostile_db["state"]), "--now", NOW_ARG,
            "--week", "2026-W46", "--format", fmt, "--out", "-"]  # fmt: skip
    code, out, err = _run(analytics_main, argv)
    assert code == 0, err
    return out


def test_markdown_export_shows_data_as_text(hostile_db):
    text = _export(hostile_db, "md")
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [cell.strip() for line in rows for cell in re.split(r"(?<!\\)\|", line)]
    shown = [shown_text(cell) for cell in cells]
    for value in (*hostile_db["names"], hostile_db["values"]["note"]):
        assert value in shown, f"{value!r} is not in any table cell as text"
    who = hostile_db["values"]["who"]
    assert any(who in cell for cell in shown)
    for cell in cells:
        assert not _UNESCAPED.search(re.sub(r"\\.", "", cell)), cell
        assert not _TEXT_TRIGGERS.search(cell.replace("\\", "")), cell
    assert not re.search(r"(?<!\\)<img|(?<!\\)\]\(http", text) and WORD_JOINER in text


def test_html_export_shows_data_as_text(hostile_db):
    text = _export(hostile_db, "html")
    assert "<b>who</b>" not in text and "&lt;b&gt;who&lt;/b&gt;" in text
    assert re.findall(r"<img [^>]*>", text) == re.findall(r'<img class="chart" [^>]*>', text)  # the charts only
    for name in hostile_db["names"]:
        assert html.escape(name) in text


def test_every_page_calls_open_page_before_anything_else():
    """Nothing a page computes can run before the sign-in check that open_page makes."""
    import ast

    for path in sorted((ROOT / "pages").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # docstring
                continue
            if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef):
                continue
            call = node.value if isinstance(node, ast.Assign | ast.Expr) else None
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "open_page":
                break
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
            assert not calls, f"{path.name} line {node.lineno} runs code before open_page()"
        else:
            pytest.fail(f"{path.name} never calls open_page()")


def test_anomalies_page_shows_an_undeliverable_webhook_without_the_url(collected, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from ui.settings import Settings

    monkeypatch.setenv("RBV_NOW", NOW_ARG)
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    monkeypatch.setenv("RBV_TEST_PAGE_HOOK", f"hooks.example.test/services/{SECRET_PART}")
    config = _write(tmp_path, "dashboard.toml", '[alerts]\nwebhook_url_env = "RBV_TEST_PAGE_HOOK"\n')
    at = AppTest.from_file(str(ROOT / "pages" / "anomalies.py"), default_timeout=120)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=config, demo=False)
    at.run()
    at.selectbox(key="range_choice").set_value(at.selectbox(key="range_choice").options[-1]).run()
    at.button(key="alerts_sync").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Alerts webhook" in e.value and "http(s)" in e.value for e in at.error)
    shown = " ".join(str(getattr(e, "value", "")) for e in [*at.error, *at.caption, *at.success, *at.markdown])
    assert SECRET_PART not in shown
    # The page only opens alerts; the service's next check tries to send them and records why it could not.
    from service.alerts import deliver_pending, plan_notices

    settings = load_config(config, secrets=False).alerts
    plan_notices(tmp_path / "state.duckdb", settings, SIM_NOW.replace(tzinfo=None))
    deliver_pending(tmp_path / "state.duckdb", settings, SIM_NOW.replace(tzinfo=None))
    alerts = list_alerts(tmp_path / "state.duckdb")
    assert len(alerts) > 0 and alerts["delivered_at"].isna().all()
    assert alerts["last_error"].str.contains("http\\(s\\)").all()
    assert not alerts["last_error"].str.contains(SECRET_PART).any()
