"""Secrets never land: every byte the product writes or shows is scanned for every configured secret.

One stand-in world (with faults, so retries and error paths log) is collected for real by
`python -m collectors once` (verbose) and `serve --run-first` as subprocesses; smoke checks run and keys are
rotated (by `collectors admin rotate`, to a file and to stdout, and on the Keys page); then every analytics
export, a store backup, every dashboard page (AppTest: all rendered elements and download payloads),
alert delivery to a webhook and the dashboard's state DB are produced.  Each artifact is scanned for
each secret (API key secrets, the rotations' new secrets, the admin token, the webhook URL) and for
distinctive substrings of it. The one place each new secret is meant to appear once (the `--secret-out`
file, the command's stdout without it, the page run that created it) is a control, like the config.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from analytics.__main__ import main as analytics_main
from analytics.key_actions import suggested_rotation_name
from analytics.keys import Rules, is_generic_name, is_well_formed_name
from collectors.http_client import RetryPolicy, post_json
from config import load_config
from service.alerts import deliver_pending, plan_notices
from simulator.config_writer import write_config
from simulator.faults import FaultSpec
from simulator.ledger import write_ledger
from simulator.server import start_server
from store.__main__ import main as store_main
from store.landing import unpack_body
from tests.conftest import ROOT, make_world
from tests.notify_receivers import smtp_receiver
from ui.auth import hash_password
from ui.settings import Settings

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
ADMIN_TOKEN = "adm-Q7xK2pLm9Vw4Rt8Zs3NbHq6J"
ADMIN_ENV = "RBV_SCAN_ADMIN_TOKEN"
WEBHOOK_ENV = "RBV_SCAN_WEBHOOK"
# Every other channel's secret, each from its own variable: the HMAC signing secret, PagerDuty's routing key and
# the SMTP password must reach their receivers and nothing else.
CHANNEL_SECRETS = {
    "RBV_SCAN_HMAC": "hmacKq7Vx2Lp9Wr4Tz8Ns3Bd6Yf",
    "RBV_SCAN_PD": "pdRk4Jx8Qm2Vw7Ls5Nt9Hc3Gz6",
    "RBV_SCAN_SMTP_PASS": "smtpPw5Xq9Lm3Rv7Kt2Nz8Wd4",
}
WEBHOOK_PATH = "/services/T0SCAN/B0SCAN/whk9Xq2LmP4vR7tZ8sKd3NwYc"
GHOST_SECRET = "rbv_ghostQ4mZ8xT2vK9pL6nR3wS7yB1cF5"  # not known upstream: the 401 path
PAGES = ("overview", "keys", "key_detail", "traffic", "anomalies", "credits", "review", "collection")


class _Hook(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        length = int(self.headers.get("Content-Length") or 0)
        type(self).received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # keep the receiver quiet
        pass


def _next_name(spec) -> str:
    return suggested_rotation_name(spec.name, spec.environment)


def _needles(secrets: dict[str, str]) -> list[tuple[str, str]]:
    """(label, needle): each secret whole, its middle 12 characters, and its distinctive head and tail."""
    found = []
    for label, secret in secrets.items():
        found.append((f"{label} (whole)", secret))
        core = secret.split("_", 1)[1] if secret.startswith("rbv_") else secret
        if label.startswith("webhook"):
            core = WEBHOOK_PATH.rsplit("/", 1)[1]
        mid = len(core) // 2
        found.append((f"{label} (middle 12)", core[mid - 6 : mid + 6]))
        found.append((f"{label} (first 12)", core[:12]))
        found.append((f"{label} (last 12)", core[-12:]))
    return found


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _rows_text(rows: list[tuple]) -> str:
    """Rows as text, with every zstd-compressed value (landed bodies, store.landing) also as its text: a secret
    inside one would not show in the compressed bytes."""
    lines = []
    for row in rows:
        lines.append(repr(row))
        for value in row:
            if isinstance(value, bytes) and value[:4] == ZSTD_MAGIC:
                lines.append(unpack_body(value) or "")
    return "\n".join(lines)


def _db_text(path: Path) -> str:
    """Every value of every table and view in a DuckDB file (compressed storage hides raw bytes)."""
    parts = []
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()"
        ).fetchall()
        for schema, table in tables:
            rows = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            parts.append(f"## {schema}.{table}\n" + _rows_text(rows))
    finally:
        con.close()
    return "\n".join(parts)


def _parquet_text(folder: Path) -> str:
    con = duckdb.connect()
    try:
        return "\n".join(
            _rows_text(con.execute("SELECT * FROM read_parquet(?)", [str(p)]).fetchall())
            for p in folder.glob("*.parquet")
        )
    finally:
        con.close()


def _element_text(at: AppTest) -> str:
    """Everything an AppTest run rendered: each element's proto, and dataframe values as CSV."""
    parts: list[str] = []

    def walk(node):
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        if getattr(node, "type", None) in ("arrow_data_frame", "dataframe"):
            with contextlib.suppress(Exception):
                parts.append(node.value.to_csv())

    walk(at._tree)
    return "\n".join(parts)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """Run everything once; return {artifact name: text or bytes} and the secrets."""
    folder = tmp_path_factory.mktemp("secrets_scan")
    artifacts: dict[str, str | bytes] = {}
    controls: dict[str, str | bytes] = {}  # where a secret is meant to be: the config, its one-time showings
    records: list[str] = []

    class _Capture(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    capture = _Capture(level=logging.DEBUG)
    capture.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)

    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    webhook_url = f"http://127.0.0.1:{hook.server_address[1]}{WEBHOOK_PATH}"

    world = make_world(n_keys=10, days=21, now=NOW)
    faults = FaultSpec(rate429=0.04, rate5xx=0.04, malformed=0.03, drop=0.02, duplicated=0.1, retry_after=0)
    server = start_server(world, faults=faults, admin_token=ADMIN_TOKEN)
    config = folder / "keys.toml"
    write_config(world, config, server.base_url, admin_token_env=ADMIN_ENV)
    text = config.read_text(encoding="utf-8")
    configured = [spec for spec in world.keys() if spec.managed]
    env = dict(
        os.environ,
        **{ADMIN_ENV: ADMIN_TOKEN, WEBHOOK_ENV: webhook_url},
        **CHANNEL_SECRETS,
        RBV_SCAN_SMTP_USER="monitor",
    )
    mail = contextlib.ExitStack()
    smtp_port, mailbox = mail.enter_context(smtp_receiver(login=("monitor", CHANNEL_SECRETS["RBV_SCAN_SMTP_PASS"])))
    # Half the keys read their secret from the environment instead of the file.
    for index, spec in enumerate(configured[::2]):
        var = f"RBV_SCAN_SECRET_{index}"
        text = text.replace(f'secret = "{spec.secret}"', f'secret_env = "{var}"')
        env[var] = spec.secret
    # Keys a rotation can name a replacement for (<service>-<env>, not generic), and one smoke-checked key.
    rotatable = [s for s in configured if is_well_formed_name(s.name) and not is_generic_name(s.name, Rules())]
    smoked = rotatable[0]
    text = text.replace(f'name = "{smoked.name}"', f'name = "{smoked.name}"\nsmoke = true')
    text += (
        '\n[[keys]]\nname = "ghost-dev"\nenvironment = "dev"\nowner = "nobody"\n'
        f'secret = "{GHOST_SECRET}"\n\n[alerts]\nwebhook_url_env = "{WEBHOOK_ENV}"\ncooldown_hours = 6\n'
        f'[alerts.channels.signed]\ntype = "webhook"\nurl_env = "{WEBHOOK_ENV}"\nsecret_env = "RBV_SCAN_HMAC"\n'
        f'[alerts.channels.pager]\ntype = "pagerduty"\nurl = "http://127.0.0.1:{hook.server_address[1]}/v2/enqueue"\n'
        'routing_key_env = "RBV_SCAN_PD"\n'
        f'[alerts.channels.mail]\ntype = "email"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\nstarttls = false\n'
        'username_env = "RBV_SCAN_SMTP_USER"\npassword_env = "RBV_SCAN_SMTP_PASS"\nsender = "m@example.test"\n'
        'to = ["ops@example.test"]\n[budgets]\naccount = 1000\n'
        "\n[smoke]\npoll_interval_s = 0.02\ntimeout_s = 60\n\n[actions]\nenabled = true\n"
    )
    config.write_text(text, encoding="utf-8")
    secrets = {f"key {spec.name}": spec.secret for spec in configured}
    secrets |= {"key ghost-dev": GHOST_SECRET, "admin token": ADMIN_TOKEN, "webhook URL": webhook_url}
    secrets |= {f"channel secret {name}": value for name, value in CHANNEL_SECRETS.items()}
    db = folder / "monitor.duckdb"
    py = [sys.executable, "-m"]
    try:
        # --- the collector, verbose, through faults ------------------------------------------------
        once = subprocess.run(
            [*py, "collectors", "once", "--config", str(config), "--db", str(db), "--backoff-scale", "0.001", "-v"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=180,
        )
        assert once.returncode == 0, once.stderr.decode()[-2000:]
        artifacts["collectors once -v stdout"] = once.stdout
        artifacts["collectors once -v stderr"] = once.stderr
        # `serve` until its first full run is printed, then SIGTERM.
        serve_out = folder / "serve.out"
        with open(serve_out, "wb") as out:
            proc = subprocess.Popen(
                [*py, "collectors", "serve", "--config", str(config), "--db", str(db), "--run-first", "-v"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and b"collecting " not in serve_out.read_bytes():
                if proc.poll() is not None:
                    break
                time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        artifacts["collectors serve -v output"] = serve_out.read_bytes()
        assert b"collecting " in artifacts["collectors serve -v output"], serve_out.read_text()[-2000:]

        # --- smoke checks, and rotations: to a file, to stdout (faults off: a create is not retried) ------
        server.faults.set(FaultSpec())
        base = [*py, "collectors"]
        where = ["--config", str(config), "--db", str(db)]
        for name, argv in {
            "collectors smoke": [*base, "smoke", *where, "--format", "json"],
            "collectors smoke (ghost)": [*base, "smoke", *where, "--key", "ghost-dev"],
        }.items():
            done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=180)
            artifacts[f"{name} output"] = done.stdout + done.stderr
        assert b'"ok": true' in artifacts["collectors smoke output"], artifacts["collectors smoke output"][-2000:]
        secret_file = folder / "rotated.secret"
        to_file = subprocess.run(
            [*base, "admin", "rotate", *where, "--key", rotatable[1].name, "--new-name", _next_name(rotatable[1]),
             "--secret-out", str(secret_file)],
            cwd=ROOT, env=env, capture_output=True, timeout=120,
        )  # fmt: skip
        assert to_file.returncode == 0, to_file.stderr.decode()[-2000:]
        artifacts["admin rotate --secret-out output"] = to_file.stdout + to_file.stderr
        assert secret_file.stat().st_mode & 0o777 == 0o600
        secrets["new key (secret file)"] = secret_file.read_text(encoding="utf-8").strip()
        to_stdout = subprocess.run(
            [*base, "admin", "rotate", *where, "--key", rotatable[2].name, "--new-name", _next_name(rotatable[2])],
            cwd=ROOT, env=env, capture_output=True, timeout=120,
        )  # fmt: skip
        assert to_stdout.returncode == 0, to_stdout.stderr.decode()[-2000:]
        secrets["new key (stdout)"] = json.loads(to_stdout.stdout)["secret"]
        controls["admin rotate stdout (shows the secret once)"] = to_stdout.stdout
        artifacts["admin rotate (to stdout) stderr"] = to_stdout.stderr
        retire = subprocess.run(
            [*base, "admin", "disable", *where, "--key", rotatable[1].name, "--reason", "rotated", "--yes", "--force"],
            cwd=ROOT, env=env, capture_output=True, timeout=120,
        )  # fmt: skip
        assert retire.returncode == 0, retire.stderr.decode()[-2000:]
        artifacts["admin disable output"] = retire.stdout + retire.stderr

        # --- every analytics export ------------------------------------------------------------------
        ledger = folder / "ledger.csv"
        write_ledger(world, ledger, NOW.replace(tzinfo=None))
        now_arg = NOW.isoformat()
        commands = {
            f"keys {fmt}": ["keys", "--db", str(db), "--config", str(config), "--now", now_arg, "--format", fmt]
            for fmt in ("json", "csv")
        }
        commands |= {
            f"anomalies {fmt}": ["anomalies", "--db", str(db), "--now", now_arg, "--format", fmt]
            for fmt in ("json", "csv")
        }
        commands |= {
            f"reconcile {fmt}": [
                "reconcile", "--db", str(db), "--config", str(config), "--ledger", str(ledger),
                "--now", now_arg, "--format", fmt,
            ]
            for fmt in ("json", "csv")
        }  # fmt: skip
        commands |= {
            f"review {fmt}": ["review", "--db", str(db), "--config", str(config), "--now", now_arg,
                              "--format", fmt, "--out", "-"]
            for fmt in ("html", "md", "json")
        }  # fmt: skip
        commands |= {
            f"budgets {fmt}": ["budgets", "--db", str(db), "--config", str(config), "--now", now_arg, "--format", fmt]
            for fmt in ("json", "csv")
        }
        for name, argv in commands.items():
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = analytics_main(argv)
            assert code == 0, f"{name}: {err.getvalue()}"
            artifacts[f"analytics {name}"] = out.getvalue() + err.getvalue()
            assert out.getvalue().strip(), name

        # --- the dashboard: every page, every element, every download payload -----------------------
        payloads: list[tuple[str, bytes]] = []
        original_add = MediaFileManager.add

        def spy_add(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
            data = path_or_data if isinstance(path_or_data, bytes) else str(path_or_data).encode()
            payloads.append((file_name or mimetype, data))
            return original_add(self, path_or_data, mimetype, coordinates, file_name, is_for_static_download)

        state_db = folder / "state.duckdb"
        scan_vars = [v for v in env if v.startswith("RBV_SCAN_SECRET_")]
        names = ("RBV_NOW", "RBV_STATE_DB", WEBHOOK_ENV, ADMIN_ENV, "RBV_SCAN_SMTP_USER", *CHANNEL_SECRETS, *scan_vars)
        saved_env = {k: os.environ.get(k) for k in names}
        os.environ.update(
            {"RBV_NOW": NOW.replace(tzinfo=None).isoformat(), "RBV_STATE_DB": str(state_db), WEBHOOK_ENV: webhook_url}
        )
        os.environ.update({**CHANNEL_SECRETS, "RBV_SCAN_SMTP_USER": "monitor"})
        MediaFileManager.add = spy_add
        try:
            settings = Settings(db_path=db, config_path=config, demo=False)
            # A rotation on the Keys page: the run that creates the key shows its secret (a control), no other.
            os.environ[ADMIN_ENV] = ADMIN_TOKEN
            for var in (v for v in env if v.startswith("RBV_SCAN_SECRET_")):
                os.environ[var] = env[var]
            rotating = AppTest.from_file(str(ROOT / "pages" / "keys.py"), default_timeout=120)
            rotating.session_state["settings"] = settings
            rotating.secrets["access"] = {"password_hash": hash_password("scan", iterations=1000)}
            rotating.session_state["access_granted"] = True
            rotating.run()
            rotating.text_input(key="keys_action_actor").input("scanner").run()
            old = rotatable[3]
            rotating.selectbox(key="keys_action_key").set_value(old.name)
            rotating.radio(key="keys_action_action").set_value("rotate")
            new_name = _next_name(old)
            rotating.text_input(key="keys_action_new_name").input(new_name)
            next(b for b in rotating.button if b.label == "Check").click().run()
            rotating.text_input(key="keys_action_confirm_name").input(old.name).run()
            rotating.button(key="keys_action_go").click().run()
            assert not rotating.exception, [e.value for e in rotating.exception]
            assert [c.value for c in rotating.code] == [world.key(new_name).secret], _element_text(rotating)[-2000:]
            secrets["new key (page)"] = world.key(new_name).secret
            controls["page keys, the run that rotated"] = _element_text(rotating)
            rotating.run()
            artifacts["page keys, the next run after rotating"] = _element_text(rotating)
            for page in PAGES:
                at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=120)
                at.session_state["settings"] = settings
                if page == "key_detail":
                    at.query_params["key"] = configured[0].name
                at.run()
                assert not at.exception, (page, [e.value for e in at.exception])
                if page == "anomalies":
                    choices = at.selectbox(key="range_choice").options
                    at.selectbox(key="range_choice").set_value(choices[-2]).run()
                    button = at.button(key="alerts_sync")
                    assert not button.disabled, "no incidents to alert on"
                    button.click().run()
                    assert not at.exception, [e.value for e in at.exception]
                    assert any("Opened" in s.value for s in at.success), [s.value for s in at.success]
                    # The page never posts: the collector service's alert check delivers what it opened.
                    alerts = load_config(config, secrets=False).alerts
                    plan_notices(state_db, alerts, NOW.replace(tzinfo=None))
                    done = deliver_pending(
                        state_db, alerts, NOW.replace(tzinfo=None), RetryPolicy(max_attempts=2, scale=0.01)
                    )
                    assert done.failed == 0, done.errors
                    assert {s.channel for s in done.sent} == {"webhook", "signed", "pager", "mail"}
                    assert mailbox.messages and mailbox.logins == ["monitor"] * len(mailbox.messages)
                if page == "review":  # a decision lands in the state DB too
                    who = next((w for w in at.text_input if w.key == "decide_who"), None)
                    if who is not None:
                        who.input("ops")
                        at.selectbox(key="decide_choice").select("keep")  # nothing is preset
                        next(b for b in at.button if "decide" in str(b.key)).click().run()
                        assert not at.exception, [e.value for e in at.exception]
                artifacts[f"page {page}"] = _element_text(at)
        finally:
            MediaFileManager.add = original_add
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        assert _Hook.received, "the webhook received nothing"
        assert len(payloads) >= 5, [n for n, _ in payloads]
        for index, (name, data) in enumerate(payloads):
            artifacts[f"download #{index} {name}"] = data
        # PagerDuty's routing key is the one secret a body must carry, to PagerDuty alone.
        paged = [body for path, body in _Hook.received if path == "/v2/enqueue"]
        assert paged and all(CHANNEL_SECRETS["RBV_SCAN_PD"].encode() in body for body in paged)
        artifacts["webhook bodies"] = b"\n".join(body for path, body in _Hook.received if path != "/v2/enqueue")

        # A failing delivery: the error returned (and stored) must not name the URL.
        unreachable = f"http://127.0.0.1:9{WEBHOOK_PATH}"
        secrets["webhook URL (unreachable)"] = unreachable
        outcome = post_json(unreachable, {"text": "x"}, RetryPolicy(max_attempts=2, scale=0.01), timeout_s=2)
        ok, error = outcome.ok, outcome.error
        assert not ok
        artifacts["deliver() error"] = error or ""

        # --- a backup export, then every database file ------------------------------------------------
        backup = folder / "backup"
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert store_main(["backup", "--db", str(db), "--out", str(backup)]) == 0, err.getvalue()
        artifacts["store backup output"] = out.getvalue() + err.getvalue()
        for path in sorted(backup.rglob("*")):
            if path.is_file():
                artifacts[f"backup file {path.name}"] = path.read_bytes()
        artifacts["backup parquet values"] = _parquet_text(backup)
        assert state_db.exists(), "the alerts were not stored in the state DB"
        for path in sorted(folder.rglob("*.duckdb*")):
            artifacts[f"file {path.name}"] = path.read_bytes()
            if path.suffix == ".duckdb":
                artifacts[f"values of {path.name}"] = _db_text(path)
        artifacts["in-process log records"] = "\n".join(records)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
        server.stop()
        hook.shutdown()
        hook.server_close()
        mail.close()
    artifacts["control: the config file itself"] = config.read_bytes()
    artifacts |= {f"control: {name}": content for name, content in controls.items()}
    return artifacts, secrets


def test_every_artifact_was_produced(scan):
    artifacts, _ = scan
    for name in ("collectors once -v stderr", "analytics keys csv", "analytics review html", "page keys"):
        assert artifacts[name], name
    assert any(name.startswith("values of monitor.duckdb") for name in artifacts)
    assert any(name.startswith("values of state.duckdb") for name in artifacts)
    assert "decision" in artifacts["values of state.duckdb"].lower()
    # The landed bodies were scanned as text, not only as their compressed bytes.
    assert '"daily"' in artifacts["values of monitor.duckdb"] and '"items"' in artifacts["values of monitor.duckdb"]
    # The verbose log really logged requests and the faults really made retries.
    assert b"attempt" in artifacts["collectors once -v stderr"]
    assert b"failed" in artifacts["collectors once -v stderr"]


def test_no_secret_in_any_artifact(scan):
    artifacts, secrets = scan
    needles = _needles(secrets)
    leaks = []
    control = artifacts["control: the config file itself"]
    assert sum(needle.encode() in control for _, needle in needles) >= 20, "the scanner finds nothing in the config"
    # Each rotation's secret really was shown where it is meant to be (so the scan below can find it).
    assert secrets["new key (stdout)"].encode() in artifacts["control: admin rotate stdout (shows the secret once)"]
    assert secrets["new key (page)"] in artifacts["control: page keys, the run that rotated"]
    for name, content in artifacts.items():
        if name.startswith("control:"):
            continue
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        raw = content if isinstance(content, bytes) else b""
        for label, needle in needles:
            if needle in text or (raw and needle.encode() in raw):
                leaks.append(f"{name}: {label}")
    assert not leaks, "secrets leaked:\n" + "\n".join(sorted(set(leaks)))


def test_fingerprints_and_masks_are_what_is_stored(scan):
    artifacts, secrets = scan
    from config import fingerprint, mask_secret

    stored = artifacts["values of monitor.duckdb"]
    for label, secret in secrets.items():
        if label.startswith("key ") and label != "key ghost-dev":
            assert fingerprint(secret) in stored, label
            assert mask_secret(secret) in stored, label
