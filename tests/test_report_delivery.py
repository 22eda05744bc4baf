"""The Monday report delivered with nobody watching: the weekly review's HTML by e-mail and a Slack message with
its headline numbers and a link, on the configured cron, once per week and channel."""

from __future__ import annotations

import asyncio

import pytest

from analytics.review import default_week
from config import ConfigError, load_config
from service.review import send_weekly_review
from service.scheduler import build_scheduler, weekly_review_job
from store.alert_store import notices
from tests.notify_receivers import http_receiver, smtp_receiver

REVIEW = """
[alerts]
dashboard_url = "https://monitor.example.test"
[alerts.channels.team-mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
starttls = false
sender = "monitor@example.test"
to = ["team@example.test", "lead@example.test"]
[alerts.channels.ops-slack]
type = "slack"
url_env = "RBV_REPORT_SLACK"
[review]
weekly_cron = "0 7 * * mon"
reports_dir = "{reports}"
deliver_to = ["team-mail", "ops-slack"]
"""


def test_the_report_is_mailed_and_posted_once_per_week(collected, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    week = default_week(collected.now)
    with smtp_receiver() as (port, mailbox), http_receiver("slack") as (url, slack):
        monkeypatch.setenv("RBV_REPORT_SLACK", url)
        path = tmp_path / "keys.toml"
        extra = REVIEW.format(port=port, reports=tmp_path / "reports")
        path.write_text(collected.config_path.read_text(encoding="utf-8") + extra, encoding="utf-8")
        config = load_config(path, secrets=False)
        first = send_weekly_review(collected.db_path, config, collected.now)
        again = send_weekly_review(collected.db_path, config, collected.now)  # the cron fired twice: no resend
        # serve's cron job is the same use case
        job = next(j for j in build_scheduler(config, collected.db_path).get_jobs() if j.id == "weekly_review")
        assert str(job.trigger) == "cron[month='*', day='*', day_of_week='mon', hour='7', minute='0']"
    assert (first.queued, first.sent, first.errors) == (2, 2, ())
    assert (again.queued, again.sent) == (0, 0) and [p.name for p in again.written] == [p.name for p in first.written]
    assert len(mailbox.messages) == 1 and mailbox.envelopes[0][1] == ["team@example.test", "lead@example.test"]
    message = mailbox.messages[0]
    assert message["Subject"] == f"[RBV] Weekly key review {week} (2026-11-09 to 2026-11-16)"
    html = next(part for part in message.walk() if part.get_content_type() == "text/html").get_content()
    report = (tmp_path / "reports" / f"review-{week}.html").read_text(encoding="utf-8")
    assert html.replace("\r\n", "\n") == report  # the whole report, charts embedded (mail lines end in CRLF)
    text = slack.bodies[0]["text"]
    assert f"Weekly key review {week}" in text and "calls" in text and "credits" in text
    assert "<https://monitor.example.test/review|Open the review>" in text
    sent = notices(tmp_path / "state.duckdb")
    assert set(sent["dedup_key"]) == {f"report/{week}"} and set(sent["status"]) == {"sent"}


def test_the_cron_job_sends_the_report_too(collected, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    with smtp_receiver() as (port, mailbox), http_receiver("slack") as (url, slack):
        monkeypatch.setenv("RBV_REPORT_SLACK", url)
        path = tmp_path / "keys.toml"
        path.write_text(
            collected.config_path.read_text(encoding="utf-8") + REVIEW.format(port=port, reports=tmp_path / "r"),
            encoding="utf-8",
        )
        config = load_config(path, secrets=False)
        monkeypatch.setattr("service.scheduler._utc_now", lambda: collected.now)
        asyncio.run(weekly_review_job(config, collected.db_path, tmp_path / "r")())
    printed = capsys.readouterr().out
    assert "[review] wrote" in printed and "2 report notice(s) queued, 2 sent" in printed
    assert len(mailbox.messages) == 1 and len(slack.bodies) == 1


@pytest.mark.parametrize(
    ("review", "problem"),
    [
        ('deliver_to = ["nowhere"]\nweekly_cron = "0 7 * * mon"', "no channel named nowhere"),
        ('deliver_to = ["pager"]\nweekly_cron = "0 7 * * mon"', "a report pages nobody"),
        ('deliver_to = ["ops"]', "needs weekly_cron"),
    ],
)
def test_delivery_settings_are_checked_at_load(tmp_path, review, problem):
    path = tmp_path / "keys.toml"
    path.write_text(
        '[alerts.channels.ops]\ntype = "slack"\nurl_env = "X"\n[alerts.channels.pager]\ntype = "pagerduty"\n'
        f'routing_key_env = "Y"\n[review]\n{review}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=problem):
        load_config(path, secrets=False)
