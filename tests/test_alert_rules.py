"""The routing, mute and re-notify rules as the config states them: first matching route wins on environment,
owner, severity and kind, else the default channels; recurring and one-off mute windows end when they say;
re-notification is due on time, never for budgets, never while snoozed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from analytics.alert_rules import channels_for, due_action, muted_until
from config import config_from_dict

CHANNELS = {name: {"type": "slack", "url_env": f"RBV_RULES_{name.upper()}"} for name in ("pager", "ops", "mail", "fin")}


def settings(extra: dict):
    return config_from_dict({"alerts": {"channels": CHANNELS, **extra}}, secrets=False).alerts


def alert(**fields) -> dict:
    base = {"kind": "anomaly", "status": "open", "severity": "high", "environment": "prod", "owner": "platform",
            "key_name": "api-gateway-prod", "notify_count": 0}  # fmt: skip
    return {**base, **fields}


def test_first_matching_route_wins_and_the_default_catches_the_rest():
    policy = settings(
        {
            "default_channels": ["mail"],
            "routes": [
                {"kind": "budget", "owner": "finance", "channels": ["fin"]},
                {"environment": "production", "severity": ["high", "medium"], "channels": ["pager", "ops"]},
                {"environment": "prod", "channels": ["ops"]},
                {"kind": "smoke_check", "channels": []},
            ],
        }
    ).policy
    assert channels_for(alert(), policy) == ("pager", "ops")  # "production" is prod: an alias in the config
    assert channels_for(alert(severity="low"), policy) == ("ops",)  # falls through to the next prod route
    # A budget of finance's matches the first route even in prod at high severity: first match wins.
    assert channels_for(alert(kind="budget", owner="finance"), policy) == ("fin",)
    assert channels_for(alert(kind="budget", owner="platform", environment="dev"), policy) == ("mail",)
    assert channels_for(alert(kind="smoke_check", environment="staging"), policy) == ()  # nowhere, on purpose
    assert channels_for(alert(environment="dev", severity="low"), policy) == ("mail",)


def test_mute_windows_hold_only_what_they_match_and_end_when_they_say():
    mutes = settings(
        {
            "mutes": [
                {"cron": "0 2 * * sun", "duration_minutes": 120, "environment": "prod", "reason": "maintenance"},
                {"start": "2026-11-24T10:00:00Z", "end": "2026-11-24T10:30:00Z", "key": "search-staging"},
            ]
        }
    ).policy.mutes
    sunday = datetime(2026, 11, 22)  # a Sunday
    assert muted_until(alert(), mutes, sunday + timedelta(hours=2)) == sunday + timedelta(hours=4)
    assert muted_until(alert(), mutes, sunday + timedelta(hours=3, minutes=59)) == sunday + timedelta(hours=4)
    assert muted_until(alert(), mutes, sunday + timedelta(hours=4)) is None  # the window has ended
    assert muted_until(alert(), mutes, sunday + timedelta(hours=1, minutes=59)) is None  # not begun
    assert muted_until(alert(), mutes, sunday + timedelta(days=7, hours=3)) == sunday + timedelta(days=7, hours=4)
    assert muted_until(alert(environment="dev"), mutes, sunday + timedelta(hours=3)) is None
    staging = alert(key_name="search-staging", environment="staging")
    assert muted_until(staging, mutes, datetime(2026, 11, 24, 10, 15)) == datetime(2026, 11, 24, 10, 30)
    assert muted_until(staging, mutes, datetime(2026, 11, 24, 10, 30)) is None


@pytest.mark.parametrize(
    ("fields", "after", "due"),
    [
        ({}, timedelta(0), "trigger"),
        ({"notify_count": 1}, timedelta(hours=3, minutes=59), None),
        ({"notify_count": 1}, timedelta(hours=4), "renotify"),
        ({"notify_count": 1, "status": "acknowledged"}, timedelta(hours=9), None),
        ({"notify_count": 1, "kind": "budget"}, timedelta(days=3), None),  # a crossing is told once
        ({"notify_count": 1, "snoozed_until": datetime(2026, 11, 20, 20)}, timedelta(hours=5), None),
        ({"notify_count": 1, "snoozed_until": datetime(2026, 11, 20, 20)}, timedelta(hours=8), "renotify"),
        ({"notify_count": 1, "status": "resolved"}, timedelta(hours=1), "resolve"),
        (
            {"notify_count": 1, "status": "resolved", "resolve_notified_at": datetime(2026, 11, 20, 13)},
            timedelta(hours=2),
            None,
        ),  # fmt: skip
        ({"status": "resolved"}, timedelta(hours=1), None),  # nobody heard the trigger: no recovery notice
    ],
)
def test_which_notice_is_due(fields, after, due):
    sent = datetime(2026, 11, 20, 12)
    policy = settings({"renotify_hours": 4}).policy
    assert due_action(alert(last_notified_at=sent, **fields), sent + after, policy, muted=False) == due


def test_a_muted_alert_is_due_nothing_and_renotify_zero_is_never():
    sent = datetime(2026, 11, 20, 12)
    assert due_action(alert(), sent, settings({}).policy, muted=True) is None
    never = settings({"renotify_hours": 0}).policy
    assert (
        due_action(alert(notify_count=1, last_notified_at=sent), sent + timedelta(days=2), never, muted=False) is None
    )
