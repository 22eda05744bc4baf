"""Every notice channel against a local receiver that behaves like the real one: Slack-compatible webhook, JSON
webhook signed with HMAC-SHA256 (verified; a wrong secret is refused), PagerDuty Events API v2, SMTP (plain,
login, STARTTLS); secrets come from the environment and never appear in an outcome."""

from __future__ import annotations

import shutil
from datetime import datetime

import pytest

from analytics.alerts import render
from collectors.delivery import send
from collectors.http_client import RetryPolicy
from config import ConfigError, config_from_dict
from tests.notify_receivers import free_port, http_receiver, self_signed_cert, smtp_receiver

FAST = RetryPolicy(max_attempts=3, scale=0.001)
ALERT = {
    "alert_id": "a1", "kind": "anomaly", "dedup_key": "anomaly/api-gateway-prod/credits/spike/2026-11-02T14:00",
    "key_name": "api-gateway-prod", "metric": "credits", "direction": "spike", "severity": "high", "status": "open",
    "environment": "prod", "owner": "platform-team", "incident_start": datetime(2026, 11, 2, 14),
    "incident_end": datetime(2026, 11, 2, 15), "grain": "hour", "peak_score": 0.71,
    "detail": '{"what": "5,400 credits where about 700.0 were expected, over 2 hour(s)"}',
    "opened_at": datetime(2026, 11, 2, 16, 10), "notify_count": 0,
}  # fmt: skip


def channel(section: dict, name: str = "c"):
    config = config_from_dict({"alerts": {"channels": {name: section}}}, secrets=False)
    return next(c for c in config.alerts.all_channels() if c.name == name)


def test_slack_webhook_gets_the_message(monkeypatch):
    with http_receiver("slack") as (url, got):
        monkeypatch.setenv("RBV_T_SLACK", url)
        outcome = send(
            channel({"type": "slack", "url_env": "RBV_T_SLACK"}),
            render("slack", ALERT, "trigger", "k", None),
            "k",
            FAST,
        )
    assert outcome.ok and outcome.attempts == 1
    text = got.bodies[0]["text"]
    assert "api-gateway-prod" in text and "credits spike (high)" in text and "5,400 credits" in text


def test_hmac_webhook_is_verified_by_the_receiver_and_a_wrong_secret_fails(monkeypatch):
    hook = channel({"type": "webhook", "url_env": "RBV_T_HOOK", "secret_env": "RBV_T_HOOK_SECRET"})
    payload = render("webhook", ALERT, "trigger", "anomaly/x|trigger|1|c", None)
    with http_receiver("webhook", secret="s3cret-shared-with-the-receiver") as (url, got):
        monkeypatch.setenv("RBV_T_HOOK", url)
        monkeypatch.setenv("RBV_T_HOOK_SECRET", "s3cret-shared-with-the-receiver")
        good = send(hook, payload, "anomaly/x|trigger|1|c", FAST)
        monkeypatch.setenv("RBV_T_HOOK_SECRET", "a-wrong-secret")
        bad = send(hook, payload, "anomaly/x|trigger|1|c", FAST)
    assert good.ok and len(got.requests) == 1
    request = got.requests[0]
    assert request["json"]["dedup_key"] == ALERT["dedup_key"] and request["json"]["action"] == "trigger"
    assert request["headers"]["X-RBV-Notice"] == "anomaly/x|trigger|1|c"
    assert not bad.ok and bad.attempts == 1 and "401" in bad.error  # refused, and a 4xx is not retried
    assert got.refused == ["bad signature"]
    assert "secret" not in bad.error.lower()


def test_a_missing_secret_sends_nothing_and_says_which_variable(monkeypatch):
    monkeypatch.delenv("RBV_T_HOOK_SECRET", raising=False)
    with http_receiver("webhook", secret="x") as (url, got):
        monkeypatch.setenv("RBV_T_HOOK", url)
        hook = channel({"type": "webhook", "url_env": "RBV_T_HOOK", "secret_env": "RBV_T_HOOK_SECRET"})
        outcome = send(hook, {"a": 1}, "k", FAST)
    assert (outcome.ok, outcome.attempts) == (False, 0) and "$RBV_T_HOOK_SECRET" in outcome.error
    assert got.requests == [] and got.refused == []


def test_pagerduty_trigger_then_resolve_under_one_dedup_key(monkeypatch):
    monkeypatch.setenv("RBV_T_PD_KEY", "R0UT1NGKEY0123456789abcdefabcdef")
    with http_receiver("pagerduty", routing_key="R0UT1NGKEY0123456789abcdefabcdef") as (url, got):
        pd = channel({"type": "pagerduty", "url": url, "routing_key_env": "RBV_T_PD_KEY"})
        trigger = send(pd, render("pagerduty", ALERT, "trigger", "k1", "http://dash/anomalies"), "k1", FAST)
        resolved = {**ALERT, "status": "resolved", "resolution": "recovered"}
        resolve = send(pd, render("pagerduty", resolved, "resolve", "k2", None), "k2", FAST)
    assert trigger.ok and resolve.ok and got.refused == []
    actions = [(b["event_action"], b["dedup_key"]) for b in got.bodies]
    assert actions == [("trigger", ALERT["dedup_key"]), ("resolve", ALERT["dedup_key"])]
    first = got.bodies[0]
    assert first["payload"]["severity"] == "critical" and first["payload"]["component"] == "api-gateway-prod"
    assert first["client_url"] == "http://dash/anomalies"


def test_pagerduty_with_a_wrong_routing_key_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("RBV_T_PD_KEY", "WRONGKEY0000000000000000000000000")
    with http_receiver("pagerduty", routing_key="R0UT1NGKEY0123456789abcdefabcdef") as (url, got):
        outcome = send(channel({"type": "pagerduty", "url": url, "routing_key_env": "RBV_T_PD_KEY"}),
                       render("pagerduty", ALERT, "trigger", "k", None), "k", FAST)  # fmt: skip
    assert not outcome.ok and "400" in outcome.error and "WRONGKEY" not in outcome.error
    assert got.refused == ["unknown routing key"]


def test_retries_5xx_then_delivers(monkeypatch):
    with http_receiver("slack", statuses=[503, 500]) as (url, got):
        monkeypatch.setenv("RBV_T_SLACK", url)
        outcome = send(channel({"type": "slack", "url_env": "RBV_T_SLACK"}), {"text": "x"}, "k", FAST)
    assert outcome.ok and outcome.attempts == 3 and len(got.requests) == 1


def _mail(extra: dict) -> dict:
    return {"type": "email", "smtp_host": "127.0.0.1", "sender": "monitor@example.test", "to": ["ops@example.test"],
            "starttls": False, **extra}  # fmt: skip


def test_email_over_plain_smtp():
    with smtp_receiver() as (port, box):
        mail = channel(_mail({"smtp_port": port}))
        outcome = send(mail, render("email", ALERT, "trigger", "k", "http://dash/anomalies"), "k", FAST)
    assert outcome.ok and len(box.messages) == 1
    message = box.messages[0]
    assert box.envelopes == [("monitor@example.test", ["ops@example.test"])]
    assert message["Subject"].startswith("[RBV Alert] Anomaly on key api-gateway-prod")
    assert "5,400 credits" in message.get_payload(decode=True).decode() and message["X-RBV-Notice"] == "k"


def test_email_with_login(monkeypatch):
    monkeypatch.setenv("RBV_T_SMTP_USER", "monitor")
    monkeypatch.setenv("RBV_T_SMTP_PASS", "pa55-w0rd")
    with smtp_receiver(login=("monitor", "pa55-w0rd")) as (port, box):
        mail = channel(_mail({"smtp_port": port, "username_env": "RBV_T_SMTP_USER", "password_env": "RBV_T_SMTP_PASS"}))
        good = send(mail, {"subject": "s", "text": "t"}, "k", FAST)
        monkeypatch.setenv("RBV_T_SMTP_PASS", "wrong")
        bad = send(mail, {"subject": "s", "text": "t"}, "k2", FAST)
    assert good.ok and box.logins == ["monitor"] and len(box.messages) == 1
    assert not bad.ok and "535" in bad.error and "wrong" not in bad.error and len(box.messages) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
def test_email_over_starttls_with_login(tmp_path, monkeypatch):
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("RBV_T_SMTP_USER", "monitor")
    monkeypatch.setenv("RBV_T_SMTP_PASS", "pa55-w0rd")
    with smtp_receiver(login=("monitor", "pa55-w0rd"), tls=(cert, key)) as (port, box):
        common = {
            "smtp_port": port,
            "starttls": True,
            "username_env": "RBV_T_SMTP_USER",
            "password_env": "RBV_T_SMTP_PASS",
        }
        trusted = send(channel(_mail({**common, "ca_file": str(cert)})), {"subject": "s", "text": "t"}, "k", FAST)
        untrusted = send(channel(_mail(common)), {"subject": "s", "text": "t"}, "k2", FAST)
    assert trusted.ok and box.logins == ["monitor"] and len(box.messages) == 1
    assert not untrusted.ok and untrusted.attempts == 1 and "TLS" in untrusted.error  # not retried: a trust problem


def test_an_unreachable_mail_server_is_retried_then_reported():
    mail = channel(_mail({"smtp_port": free_port(), "timeout_s": 2}))
    outcome = send(mail, {"subject": "s", "text": "t"}, "k", RetryPolicy(max_attempts=2, scale=0.001))
    assert not outcome.ok and outcome.attempts == 2 and "unreachable" in outcome.error


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"type": "slack", "url": "https://hooks.slack.example/T/B/x"}, "must not be written in the config"),
        ({"type": "webhook", "url_env": "RBV_X"}, "secret_env is required"),
        ({"type": "pagerduty", "routing_key": "abc"}, "must not be written in the config"),
        ({"type": "email", "smtp_host": "mail", "sender": "a@b.c", "to": ["x"]}, "to: one or more"),
        (
            {"type": "email", "smtp_host": "mail", "sender": "a@b.c", "to": "d@e.f", "password": "p"},
            "must not be written",
        ),
        ({"type": "teams"}, "type: must be one of"),
    ],
)
def test_channel_config_errors_are_one_clear_line(section, problem):
    with pytest.raises(ConfigError, match=problem) as caught:
        channel(section)
    assert "abc" not in str(caught.value) and "hooks.slack.example" not in str(caught.value)


def test_routes_must_name_configured_channels():
    with pytest.raises(ConfigError, match="no channel named pager"):
        config_from_dict(
            {
                "alerts": {
                    "channels": {"ops": {"type": "slack", "url_env": "RBV_X"}},
                    "routes": [{"channels": ["pager"]}],
                }
            },
            secrets=False,
        )
