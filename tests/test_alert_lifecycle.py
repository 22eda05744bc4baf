"""The alert lifecycle end to end, through `python -m analytics alerts check` against a stand-in world caught during
a real credits spike (collected at 16:10, 17:20 and 20:10), with local receivers for every channel.

Trigger once (a second check right after sends nothing), routing first-match-wins, re-notify an unacknowledged
alert on time (never PagerDuty), recovery once the metric has been back inside its band long enough (PagerDuty
resolves the same dedup_key), acknowledgement, snooze and mute windows that hold every notice until they end,
and budgets: a crossing of 80 % sends one notice, the next check none.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import datetime, timedelta

import pytest

from analytics.__main__ import main as analytics_main
from analytics.budgets import BudgetSettings
from service.budgets import budget_report
from store.alert_store import acknowledge, add_mute, alert_events, list_alerts, notices, snooze
from tests.conftest import Lifecycle
from tests.notify_receivers import http_receiver, smtp_receiver

KEY = "billing-worker-prod"
DEDUP = f"anomaly/{KEY}/credits/spike/2026-11-02T14:00"
PD_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
HOOK_SECRET = "hmac-secret-for-the-lifecycle-test"


def check(lifecycle: Lifecycle, config, snapshot: str, at: datetime | None = None) -> list[dict]:
    """One `alerts check` as of `at` (default: the snapshot's collection instant); the JSON lines it printed."""
    out, err = io.StringIO(), io.StringIO()
    now = at or lifecycle.at(snapshot)
    argv = ["alerts", "check", "--db", str(lifecycle.dbs[snapshot]), "--config", str(config), "--now", now.isoformat()]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = analytics_main(argv)
    assert code == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def write_config(lifecycle: Lifecycle, tmp_path, alerts: str) -> object:
    path = tmp_path / "alerts.toml"
    path.write_text(lifecycle.config_path.read_text(encoding="utf-8") + "\n" + alerts, encoding="utf-8")
    return path


@pytest.fixture
def state(tmp_path, monkeypatch):
    path = tmp_path / "state.duckdb"
    monkeypatch.setenv("RBV_STATE_DB", str(path))
    return path


SLACK_ONLY = """
[alerts]
renotify_hours = 1
resolve_after_hours = 2
[alerts.channels.ops-slack]
type = "slack"
url_env = "RBV_LC_SLACK"
"""


def pairs(lines: list[dict]) -> list[tuple[str, str]]:
    return [(line["channel"], line["action"]) for line in lines]


def test_every_channel_through_the_lifecycle(lifecycle, tmp_path, state, monkeypatch):
    monkeypatch.setenv("RBV_LC_PD", PD_KEY)
    monkeypatch.setenv("RBV_LC_HOOK_SECRET", HOOK_SECRET)
    with (
        http_receiver("pagerduty", routing_key=PD_KEY) as (pd_url, pager),
        http_receiver("slack") as (slack_url, slack),
        http_receiver("webhook", secret=HOOK_SECRET) as (hook_url, hook),
        smtp_receiver() as (smtp_port, mailbox),
    ):
        monkeypatch.setenv("RBV_LC_SLACK", slack_url)
        monkeypatch.setenv("RBV_LC_HOOK", hook_url)
        config = write_config(
            lifecycle,
            tmp_path,
            f"""
[alerts]
renotify_hours = 1
resolve_after_hours = 2
default_channels = ["dev-mail"]
[alerts.channels.pager]
type = "pagerduty"
url = "{pd_url}"
routing_key_env = "RBV_LC_PD"
[alerts.channels.ops-slack]
type = "slack"
url_env = "RBV_LC_SLACK"
[alerts.channels.hook]
type = "webhook"
url_env = "RBV_LC_HOOK"
secret_env = "RBV_LC_HOOK_SECRET"
[alerts.channels.dev-mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
starttls = false
sender = "monitor@example.test"
to = ["dev@example.test"]
[[alerts.routes]]
environment = "prod"
severity = "high"
channels = ["pager", "ops-slack", "hook"]
[[alerts.routes]]
environment = "prod"
channels = ["ops-slack"]
""",
        )
        first = check(lifecycle, config, "spike")
        again = check(lifecycle, config, "spike")
        too_soon = check(lifecycle, config, "spike", lifecycle.at("spike") + timedelta(minutes=40))
        reminder = check(lifecycle, config, "later")
        recovery = check(lifecycle, config, "over")
        after = check(lifecycle, config, "over")

    # The spike (prod, high) matches the first route: PagerDuty, Slack and the signed webhook; never the default.
    assert sorted(pairs(first)) == [("hook", "trigger"), ("ops-slack", "trigger"), ("pager", "trigger")]
    assert {(line["kind"], line["key_name"], line["dedup_key"]) for line in first} == {("anomaly", KEY, DEDUP)}
    assert again == [] and too_soon == []  # nothing twice; the reminder is due an hour after the notice
    assert sorted(pairs(reminder)) == [("hook", "renotify"), ("ops-slack", "renotify")]  # PagerDuty escalates itself
    assert sorted(pairs(recovery)) == [("hook", "resolve"), ("ops-slack", "resolve"), ("pager", "resolve")]
    assert after == []

    assert [(b["event_action"], b["dedup_key"]) for b in pager.bodies] == [("trigger", DEDUP), ("resolve", DEDUP)]
    assert pager.refused == [] and hook.refused == []  # every signature verified
    assert [b["action"] for b in hook.bodies] == ["trigger", "renotify", "resolve"]
    texts = [b["text"] for b in slack.bodies]
    assert len(texts) == 3 and "Reminder" in texts[1] and "back inside its expected band" in texts[2]
    assert mailbox.messages == []  # the dev route's mail channel had nothing to say

    alert = list_alerts(state).set_index("dedup_key").loc[DEDUP]
    assert alert["status"] == "resolved" and alert["resolution"] == "recovered" and alert["resolved_by"] == "service"
    history = alert_events(state, alert["alert_id"])
    assert {"opened", "notice trigger", "notice renotify", "resolved", "notice resolve"} <= set(history["action"])


def test_an_acknowledged_alert_is_not_reminded_and_recovers_once(lifecycle, tmp_path, state, monkeypatch):
    with http_receiver("slack") as (url, slack):
        monkeypatch.setenv("RBV_LC_SLACK", url)
        config = write_config(lifecycle, tmp_path, SLACK_ONLY)
        assert pairs(check(lifecycle, config, "spike")) == [("ops-slack", "trigger")]
        alert_id = list_alerts(state)["alert_id"].iloc[0]
        acknowledge(state, alert_id, "ops@example", lifecycle.at("spike") + timedelta(minutes=5))
        assert check(lifecycle, config, "later") == []
        assert pairs(check(lifecycle, config, "over")) == [("ops-slack", "resolve")]
        assert check(lifecycle, config, "over") == []
    assert len(slack.bodies) == 2
    who = alert_events(state, alert_id).set_index("action")
    assert who.loc["acknowledged", "actor"] == "ops@example"


def test_a_snoozed_alert_sends_nothing_until_its_snooze_ends(lifecycle, tmp_path, state, monkeypatch):
    with http_receiver("slack") as (url, slack):
        monkeypatch.setenv("RBV_LC_SLACK", url)
        config = write_config(lifecycle, tmp_path, SLACK_ONLY)
        check(lifecycle, config, "spike")
        alert_id = list_alerts(state)["alert_id"].iloc[0]
        snooze(state, alert_id, "ops", datetime(2026, 11, 2, 19, 0), lifecycle.at("spike"))
        assert check(lifecycle, config, "later") == []  # its reminder was due: held by the snooze
        assert pairs(check(lifecycle, config, "over")) == [("ops-slack", "resolve")]  # the snooze is over
    assert len(slack.bodies) == 2


def test_a_one_off_mute_in_the_config_holds_the_trigger_until_it_ends(lifecycle, tmp_path, state, monkeypatch):
    with http_receiver("slack") as (url, slack):
        monkeypatch.setenv("RBV_LC_SLACK", url)
        mute = '[[alerts.mutes]]\nstart = "2026-11-02T16:00:00Z"\nend = "2026-11-02T17:00:00Z"\nreason = "deploy"\n'
        config = write_config(lifecycle, tmp_path, SLACK_ONLY + mute)
        assert check(lifecycle, config, "spike") == []
        assert list_alerts(state)["status"].tolist() == ["open"]  # opened all the same, and on the page
        assert pairs(check(lifecycle, config, "later")) == [("ops-slack", "trigger")]
    assert len(slack.bodies) == 1


def test_a_recurring_mute_entered_on_the_page_holds_matching_alerts(lifecycle, tmp_path, state, monkeypatch):
    with http_receiver("slack") as (url, slack):
        monkeypatch.setenv("RBV_LC_SLACK", url)
        config = write_config(lifecycle, tmp_path, SLACK_ONLY)
        add_mute(state, "ops", lifecycle.at("spike"), reason="daily batch window", cron="0 16 * * *",
                 duration_minutes=60, match={"environment": "prod"})  # fmt: skip
        assert check(lifecycle, config, "spike") == []  # 16:10 is inside 16:00-17:00
        assert pairs(check(lifecycle, config, "later")) == [("ops-slack", "trigger")]  # 17:20 is not
    assert len(slack.bodies) == 1


def test_a_mute_that_matches_another_environment_holds_nothing(lifecycle, tmp_path, state, monkeypatch):
    with http_receiver("slack") as (url, _):
        monkeypatch.setenv("RBV_LC_SLACK", url)
        mute = '[[alerts.mutes]]\ncron = "0 16 * * *"\nduration_minutes = 60\nenvironment = "dev"\n'
        config = write_config(lifecycle, tmp_path, SLACK_ONLY + mute)
        assert pairs(check(lifecycle, config, "spike")) == [("ops-slack", "trigger")]


def test_a_budget_crossing_of_80_percent_sends_one_notice(lifecycle, tmp_path, state, monkeypatch):
    def spent(snapshot: str) -> float:
        rows = budget_report(lifecycle.dbs[snapshot], BudgetSettings(), lifecycle.at(snapshot)).rows
        return float(rows.set_index(["scope", "name"]).loc[("key", KEY), "spent_credits"])

    budget = round(spent("spike") / 0.85, 2)  # 85 % used: the 50 % and 80 % thresholds are both past
    with http_receiver("slack") as (url, slack):
        monkeypatch.setenv("RBV_LC_SLACK", url)
        # Anomalies routed nowhere on purpose: this test listens to the budget alone.
        extra = f'[[alerts.routes]]\nkind = "anomaly"\nchannels = []\n[budgets]\nkeys = {{ "{KEY}" = {budget} }}\n'
        config = write_config(lifecycle, tmp_path, SLACK_ONLY + extra)
        first = check(lifecycle, config, "spike")
        second = check(lifecycle, config, "spike")
        later = check(lifecycle, config, "later")
    budget_lines = [line for line in first if line["kind"] == "budget"]
    assert first == budget_lines  # the anomaly was routed nowhere
    # One notice: 80 % (the 50 % crossed with it is superseded, never announced).
    assert [(line["dedup_key"], line["action"]) for line in first] == [(f"budget/key/{KEY}/2026-11/80", "trigger")]
    assert second == []
    # An hour on, the spike has spent past 100 %: that crossing is news, once.
    assert spent("later") >= budget
    assert [(line["dedup_key"], line["action"]) for line in later] == [(f"budget/key/{KEY}/2026-11/100", "trigger")]
    assert "80 % of its 2026-11 credit budget" in slack.bodies[0]["text"]
    stored = notices(state)
    assert sorted(stored[stored["kind"] == "budget"]["dedup_key"]) == [
        f"budget/key/{KEY}/2026-11/{t}" for t in (100, 80)
    ]
