"""Alerts: the state-file lifecycle, one alert per incident with cooldown merge, and webhook delivery."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from analytics.alerts import slack_payload
from collectors.http_client import RetryPolicy, post_json
from config import ConfigError, config_from_dict
from store.alert_store import (
    AlertError,
    acknowledge,
    alert_book,
    list_alerts,
    mark_notice,
    pending_notices,
    resolve,
    upsert_incidents,
)
from store.state_file import state_path
from tests.notify_receivers import http_receiver

NOW = datetime(2026, 11, 20, 12, 0, 0)
H = timedelta(hours=1)


def incident(key: str, start: datetime, end: datetime, metric: str = "calls", direction: str = "up", peak=9.0):
    return {
        "key_name": key,
        "metric": metric,
        "direction": direction,
        "start": pd.Timestamp(start),
        "end": pd.Timestamp(end),
        "peak_score": peak,
        "expected": 1.0,
        "observed": 10.0,
        "grain": "hour",
    }


def frame(*rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_state_db_path_default_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("RBV_STATE_DB", raising=False)
    assert state_path(tmp_path / "rbv.duckdb") == tmp_path / "rbv.duckdb.dashboard.duckdb"
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    assert state_path(tmp_path / "rbv.duckdb") == tmp_path / "state.duckdb"


def test_lifecycle_open_acknowledged_resolved(tmp_path):
    path = tmp_path / "state.duckdb"
    assert list_alerts(path).empty  # no file yet: no error
    opened = upsert_incidents(path, frame(incident("k1", NOW - 5 * H, NOW - 3 * H)), NOW, timedelta(hours=6))
    assert len(opened) == 1 and opened[0]["status"] == "open"
    alert_id = opened[0]["alert_id"]
    with pytest.raises(AlertError):
        resolve(path, "nope", NOW)
    acknowledge(path, alert_id, "ops@example", NOW + H)
    row = list_alerts(path).iloc[0]
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == "ops@example"
    assert pd.Timestamp(row["acknowledged_at"]) == pd.Timestamp(NOW + H)
    with pytest.raises(AlertError):
        acknowledge(path, alert_id, "again", NOW + H)
    resolve(path, alert_id, NOW + 2 * H, "lead")
    row = list_alerts(path, status="resolved").iloc[0]
    assert row["status"] == "resolved" and pd.Timestamp(row["resolved_at"]) == pd.Timestamp(NOW + 2 * H)
    assert row["resolved_by"] == "lead" and row["resolution"] == "manual"
    assert list_alerts(path, status="open").empty
    with pytest.raises(AlertError):
        resolve(path, alert_id, NOW + 3 * H)


def test_one_alert_per_incident_and_idempotent_resync(tmp_path):
    path = tmp_path / "state.duckdb"
    incidents = frame(
        incident("k1", NOW - 30 * H, NOW - 29 * H),
        incident("k1", NOW - 30 * H, NOW - 29 * H, direction="down"),
        incident("k1", NOW - 30 * H, NOW - 29 * H, metric="credits"),
        incident("k2", NOW - 30 * H, NOW - 29 * H),
    )
    opened = upsert_incidents(path, incidents, NOW, timedelta(hours=6))
    assert len(opened) == 4
    assert upsert_incidents(path, incidents, NOW, timedelta(hours=6)) == []
    # The same incident still running: same alert, extended end.
    grown = frame(incident("k2", NOW - 30 * H, NOW - 2 * H, peak=12.0))
    assert upsert_incidents(path, grown, NOW, timedelta(hours=6)) == []
    alerts = list_alerts(path)
    assert len(alerts) == 4
    k2 = alerts[alerts["key_name"] == "k2"].iloc[0]
    assert pd.Timestamp(k2["incident_end"]) == pd.Timestamp(NOW - 2 * H) and k2["peak_score"] == 12.0


def test_cooldown_merges_then_opens_after_it(tmp_path):
    path = tmp_path / "state.duckdb"
    cooldown = timedelta(hours=6)
    first = incident("k1", NOW - 40 * H, NOW - 38 * H, peak=5.0)
    within = incident("k1", NOW - 34 * H, NOW - 33 * H, peak=8.0)  # 4 h after the first one's end
    after = incident("k1", NOW - 20 * H, NOW - 19 * H)  # 13 h after the merged end
    opened = upsert_incidents(path, frame(first, within, after), NOW, cooldown)
    assert len(opened) == 2
    alerts = list_alerts(path).sort_values("incident_start")
    merged = alerts.iloc[0]
    assert pd.Timestamp(merged["incident_end"]) == pd.Timestamp(NOW - 33 * H) and merged["peak_score"] == 8.0
    # A resolved alert does not swallow a new incident inside the cooldown.
    resolve(path, alerts.iloc[1]["alert_id"], NOW)
    again = upsert_incidents(path, frame(incident("k1", NOW - 16 * H, NOW - 15 * H)), NOW, cooldown)
    assert len(again) == 1
    assert len(list_alerts(path)) == 3


def test_mark_notice_and_payload(tmp_path):
    path = tmp_path / "state.duckdb"
    alert = upsert_incidents(path, frame(incident("k1", NOW - 5 * H, NOW - 3 * H, peak=7.25)), NOW)[0]
    with alert_book(path) as book:
        assert book.queue(alert, "ops", "slack", "trigger", 1, {"text": "x"}, "k|trigger|1|ops", NOW)
        assert not book.queue(alert, "ops", "slack", "trigger", 1, {"text": "x"}, "k|trigger|1|ops", NOW)  # once
    notice = pending_notices(path, 30)[0]
    mark_notice(path, notice["notice_id"], False, 3, "webhook answered HTTP 500", NOW, 30)
    assert pending_notices(path, 30)[0]["attempts"] == 3  # still queued: tried again at the next check
    mark_notice(path, notice["notice_id"], True, 1, None, NOW + H, 30)
    assert pending_notices(path, 30) == []
    row = list_alerts(path).iloc[0]
    assert row["delivery_attempts"] == 4 and row["last_error"] is None
    assert pd.Timestamp(row["delivered_at"]) == pd.Timestamp(NOW + H)
    text = slack_payload(alert)["text"]
    for part in ("k1", "calls spike", "2026-11-20 07:00", "7.25"):
        assert part in text


def test_a_state_file_of_the_previous_version_is_upgraded_without_resending(tmp_path):
    """Alerts the previous version delivered count as notified; undelivered ones are announced once."""
    import duckdb

    path = tmp_path / "state.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        """CREATE TABLE alerts (alert_id VARCHAR PRIMARY KEY, key_name VARCHAR NOT NULL, metric VARCHAR NOT NULL,
        direction VARCHAR NOT NULL, incident_start TIMESTAMP NOT NULL, incident_end TIMESTAMP NOT NULL,
        peak_score DOUBLE, status VARCHAR NOT NULL DEFAULT 'open', opened_at TIMESTAMP NOT NULL,
        acknowledged_at TIMESTAMP, acknowledged_by VARCHAR, resolved_at TIMESTAMP, delivered_at TIMESTAMP,
        delivery_attempts INTEGER NOT NULL DEFAULT 0, last_error VARCHAR,
        UNIQUE (key_name, metric, direction, incident_start))"""
    )
    con.execute(
        "INSERT INTO alerts VALUES ('a1', 'k1', 'calls', 'spike', '2026-11-20 01:00', '2026-11-20 02:00', 0.9, "
        "'open', '2026-11-20 03:00', NULL, NULL, NULL, '2026-11-20 03:00', 1, NULL), "
        "('a2', 'k2', 'calls', 'spike', '2026-11-20 01:00', '2026-11-20 02:00', 0.9, 'open', '2026-11-20 03:00', "
        "NULL, NULL, NULL, NULL, 0, NULL)"
    )
    con.close()
    assert list_alerts(path)["dedup_key"].isna().all()  # read as it is before the first write
    with alert_book(path) as book:
        announced = {a["alert_id"]: a["notify_count"] for a in book.to_announce()}
    assert announced == {"a1": 1, "a2": 0}
    assert list_alerts(path).set_index("alert_id").loc["a1", "dedup_key"] == "anomaly/k1/calls/spike/2026-11-20T01:00"


def _alerts(section: dict):
    return config_from_dict({"alerts": section}, secrets=False).alerts


def test_config_helpers(monkeypatch):
    monkeypatch.setenv("RBV_TEST_HOOK", "http://127.0.0.1:1/hook")
    (hook,) = _alerts({"webhook_url_env": "RBV_TEST_HOOK"}).all_channels()  # the shorthand's Slack channel
    assert (hook.name, hook.type, hook.secret_url()) == ("webhook", "slack", "http://127.0.0.1:1/hook")
    with pytest.raises(ValueError, match=r"\$RBV_TEST_HOOK_MISSING .* is not set"):
        _alerts({"webhook_url_env": "RBV_TEST_HOOK_MISSING"}).all_channels()[0].secret_url()
    assert _alerts({}).all_channels() == ()
    assert _alerts({}).cooldown == timedelta(hours=6)
    assert _alerts({"cooldown_hours": 2}).cooldown == timedelta(hours=2)
    with pytest.raises(ConfigError, match="cooldown_hours"):
        _alerts({"cooldown_hours": -1})


def _deliver(url: str, payload: dict, attempts: int, timeout_s: float = 5.0) -> tuple[bool, int, str | None]:
    """Post through the one outbound HTTP path (collectors.http_client), backoff scaled down for tests."""
    outcome = post_json(url, payload, RetryPolicy(max_attempts=attempts, scale=0.001), timeout_s=timeout_s)
    return outcome.ok, outcome.attempts, outcome.error


def test_deliver_posts_json():
    with http_receiver("slack") as (url, got):
        ok, attempts, error = _deliver(url, {"text": "hello"}, 3)
    assert (ok, attempts, error) == (True, 1, None)
    assert got.bodies == [{"text": "hello"}]


def test_deliver_retries_5xx_until_success():
    with http_receiver("slack", statuses=[500, 500, 200]) as (url, got):
        ok, attempts, error = _deliver(url, {"text": "x"}, 3)
    assert (ok, attempts, error) == (True, 3, None)
    assert got.refused == ["HTTP 500", "HTTP 500"] and len(got.requests) == 1


def test_deliver_gives_up_after_attempts_without_leaking_url():
    with http_receiver("slack", statuses=[503, 503, 503]) as (url, got):
        ok, attempts, error = _deliver(url, {"text": "x"}, 3)
    assert not ok and attempts == 3 and "503" in error and len(got.refused) == 3
    assert url not in error and "SECRETPATH" not in error and "127.0.0.1" not in error


def test_deliver_does_not_retry_4xx():
    with http_receiver("slack", statuses=[400, 200]) as (url, got):
        ok, attempts, error = _deliver(url, {"text": "x"}, 3)
    assert (ok, attempts) == (False, 1) and "400" in error
    assert got.refused == ["HTTP 400"] and got.requests == []
    assert url not in error and "SECRETPATH" not in error


def test_deliver_connection_error_is_retried_without_leaking_url():
    with http_receiver("slack") as (url, _):
        pass  # closed: nothing listens on that port any more
    ok, attempts, error = _deliver(url, {"text": "x"}, 2, timeout_s=1)
    assert not ok and attempts == 2 and error
    assert url not in error and "SECRETPATH" not in error and "127.0.0.1" not in error


def test_anomalies_page_opens_acknowledges_and_resolves_alerts(collected, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT, SIM_NOW
    from ui.settings import Settings

    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    at = AppTest.from_file(str(ROOT / "pages" / "anomalies.py"), default_timeout=120)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "Alerts" for s in at.subheader)
    choices = at.selectbox(key="range_choice").options
    at.selectbox(key="range_choice").set_value(choices[-2]).run()
    at.button(key="alerts_sync").click().run()
    assert not at.exception, [e.value for e in at.exception]
    alerts = list_alerts(tmp_path / "state.duckdb")
    assert len(alerts) > 0 and (alerts["status"] == "open").all()
    chosen = at.selectbox(key="alert_pick").value
    at.text_input(key="alert_who").input("ops").run()
    at.button(key="alert_ack").click().run()
    assert not at.exception, [e.value for e in at.exception]
    row = list_alerts(tmp_path / "state.duckdb").set_index("alert_id").loc[chosen]
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == "ops"
    at.selectbox(key="alert_pick").set_value(chosen).run()
    at.button(key="alert_resolve").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert list_alerts(tmp_path / "state.duckdb").set_index("alert_id").loc[chosen, "status"] == "resolved"


def test_deliver_logs_never_name_the_url(caplog):
    caplog.set_level("DEBUG")
    with http_receiver("slack", statuses=[500, 400]) as (url, _):
        ok, attempts, _error = _deliver(url, {"text": "x"}, 3)
    assert (ok, attempts) == (False, 2)
    assert caplog.records and all("SECRETPATH" not in r.getMessage() for r in caplog.records)
