"""kill -9 of `collectors serve` between detection and delivery loses no notice and duplicates none.

The notice is queued in the same transaction as the alert it announces (the outbox); serve is killed while it
is stuck sending it (the receiver takes the request and never answers, so it was never delivered). The next
start of serve sends it once; a further check (`alerts check`, the same pass) sends nothing again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from store.alert_store import list_alerts, notices
from tests.conftest import ROOT
from tests.notify_receivers import black_hole, free_port, http_receiver

SECRET = "kill-test-hmac-secret"


class Serve:
    def __init__(self, config: Path, db: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collectors", "serve", "--config", str(config), "--db", str(db)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def end(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def wait_for(condition, timeout: float, what: str, serve: Serve) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or serve.proc.poll() is not None:
            raise AssertionError(f"{what} did not happen:\n{serve.output[-3000:]}")
        time.sleep(0.1)


@pytest.mark.slow
def test_kill_9_between_detection_and_delivery_loses_and_duplicates_nothing(tmp_path):
    port = free_port()
    config = tmp_path / "keys.toml"
    config.write_text(
        f"""
[api]
base_url = "http://127.0.0.1:{free_port()}"
[[keys]]
name = "api-gateway-prod"
environment = "prod"
secret = "rbv_live_aaaaaaaaaaaaaaaa"
[collector]
max_attempts = 1
backoff_scale = 0.001
[collector.intervals]
events = 3600
jobs = 3600
summary = 3600
results = 3600
[alerts]
health_stale_minutes = 0.02
renotify_hours = 0
[alerts.channels.hook]
type = "webhook"
url_env = "RBV_KILL_HOOK"
secret_env = "RBV_KILL_SECRET"
""",
        encoding="utf-8",
    )
    db, state = tmp_path / "monitor.duckdb", tmp_path / "state.duckdb"
    env = dict(os.environ, RBV_KILL_HOOK=f"http://127.0.0.1:{port}/hook", RBV_KILL_SECRET=SECRET,
               RBV_STATE_DB=str(state))  # fmt: skip
    # The API is unreachable: a collection is attempted and fails, so the collector is soon unhealthy.
    once = subprocess.run(
        [sys.executable, "-m", "collectors", "once", "--config", str(config), "--db", str(db)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert once.returncode == 1, once.stderr
    time.sleep(1.5)

    with black_hole(port) as (_, arrived):
        first = Serve(config, db, env)
        try:
            wait_for(arrived.is_set, 120, "the notice reaching the receiver", first)
        finally:
            first.end(signal.SIGKILL)  # mid-send: detected, queued, not delivered
    queued = notices(state)
    assert len(queued) == 1 and queued["status"].tolist() == ["pending"], queued
    assert list_alerts(state)["kind"].tolist() == ["collector_health"]

    with http_receiver("webhook", secret=SECRET, port=port) as (_, got):
        second = Serve(config, db, env)
        try:
            wait_for(lambda: len(got.requests) >= 1, 120, "the queued notice being sent", second)
            time.sleep(2)  # room for a duplicate to show up, were there one
        finally:
            second.end(signal.SIGTERM)
        assert "Traceback" not in second.output, second.output
        check = subprocess.run(
            [sys.executable, "-m", "analytics", "alerts", "check", "--db", str(db), "--config", str(config)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert check.stdout == ""  # nothing is due again
    assert got.refused == [] and len(got.requests) == 1
    body = got.requests[0]["json"]
    assert body["kind"] == "collector_health" and body["action"] == "trigger"
    assert got.requests[0]["headers"]["X-RBV-Notice"] == queued["notice_key"].iloc[0]
    assert notices(state)["status"].tolist() == ["sent"]
