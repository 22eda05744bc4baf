"""Who hears about an alert, and when (pure): routing rules, mute windows, snoozes, re-notification, recovery.

An alert is a mapping with at least `kind`, `status`, `severity`, `environment`, `owner`, `key_name`, the
times it was notified and its snooze; the service keeps them in the state file and asks these rules, once
per check, which notice (trigger, renotify or resolve) is due and to which channels it goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from apscheduler.triggers.cron import CronTrigger

KINDS = ("anomaly", "budget", "smoke_check", "collector_health")
SEVERITIES = ("low", "medium", "high")
ACTIONS = ("trigger", "renotify", "resolve")
# Budget notices say a threshold was crossed, once per period: nobody is reminded of one every few hours.
RENOTIFY_KINDS = frozenset({"anomaly", "smoke_check", "collector_health"})
MATCH_FIELDS = ("environment", "owner", "severity", "kind", "key_name")


def _naive(moment: Any) -> datetime | None:
    if moment is None or (not isinstance(moment, datetime) and pd.isna(moment)):
        return None
    ts = pd.Timestamp(moment)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(UTC).tz_localize(None)
    return ts.to_pydatetime()


@dataclass(frozen=True)
class Match:
    """Which alerts a route or mute applies to: every field given must hold one of its values (empty = any)."""

    environment: tuple[str, ...] = ()
    owner: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    key_name: tuple[str, ...] = ()

    def matches(self, alert: Mapping[str, Any]) -> bool:
        for name in MATCH_FIELDS:
            wanted = getattr(self, name)
            if wanted and alert.get(name) not in wanted:
                return False
        return True

    def describe(self) -> str:
        parts = [f"{name} {'/'.join(getattr(self, name))}" for name in MATCH_FIELDS if getattr(self, name)]
        return ", ".join(parts) or "every alert"


@dataclass(frozen=True)
class Route:
    """A routing rule: alerts it matches go to `channels` (an empty list sends them nowhere, on purpose)."""

    match: Match
    channels: tuple[str, ...]


@dataclass(frozen=True)
class MuteWindow:
    """A silence: one-off (`start` to `end`) or recurring (from each time `cron` fires, for `duration`), UTC."""

    match: Match = field(default_factory=Match)
    start: datetime | None = None
    end: datetime | None = None
    cron: str | None = None
    duration: timedelta | None = None
    reason: str = ""
    source: str = "config"

    def until(self, now: datetime) -> datetime | None:
        """The end of the window that holds `now`, or None when `now` is outside every window."""
        if self.cron is None:
            if self.start is not None and self.end is not None and self.start <= now < self.end:
                return self.end
            return None
        if self.duration is None or self.duration <= timedelta(0):
            return None
        trigger = CronTrigger.from_crontab(self.cron, timezone=UTC)
        # The last start at or before `now` is the first start after `now - duration`, if it is not after `now`.
        earliest = (now - self.duration).replace(tzinfo=UTC) + timedelta(microseconds=1)
        fired = trigger.get_next_fire_time(None, earliest)
        if fired is None:
            return None
        began = fired.astimezone(UTC).replace(tzinfo=None)
        return began + self.duration if began <= now else None


@dataclass(frozen=True)
class AlertPolicy:
    """`[alerts]` as the rules read it."""

    routes: tuple[Route, ...] = ()
    default_channels: tuple[str, ...] = ()
    renotify: timedelta | None = timedelta(hours=4)
    resolve_after: timedelta = timedelta(hours=2)
    mutes: tuple[MuteWindow, ...] = ()


def channels_for(alert: Mapping[str, Any], policy: AlertPolicy) -> tuple[str, ...]:
    """The first matching route's channels, else the default ones."""
    for route in policy.routes:
        if route.match.matches(alert):
            return route.channels
    return policy.default_channels


def muted_until(
    alert: Mapping[str, Any], windows: tuple[MuteWindow, ...] | list[MuteWindow], now: datetime
) -> datetime | None:
    """When the latest-ending mute window holding `alert` at `now` ends (None: not muted)."""
    ends = [end for w in windows if w.match.matches(alert) and (end := w.until(now)) is not None]
    return max(ends) if ends else None


def due_action(alert: Mapping[str, Any], now: datetime, policy: AlertPolicy, muted: bool) -> str | None:
    """The notice `alert` is due at `now`: trigger, renotify, resolve, or None.

    Muted or snoozed alerts send nothing until the window ends (then whatever is due then goes out); a
    resolved alert sends its recovery notice once, and only when a trigger went out before it.
    """
    snoozed = _naive(alert.get("snoozed_until"))
    if muted or (snoozed is not None and now < snoozed):
        return None
    notified = int(alert.get("notify_count") or 0)
    if alert["status"] == "resolved":
        return "resolve" if notified and _naive(alert.get("resolve_notified_at")) is None else None
    if not notified:
        return "trigger"
    last = _naive(alert.get("last_notified_at"))
    if (
        alert["status"] == "open"
        and policy.renotify
        and alert.get("kind", "anomaly") in RENOTIFY_KINDS
        and last is not None
        and now - last >= policy.renotify
    ):
        return "renotify"
    return None


GRAIN_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


def back_in_band_since(alert: Mapping[str, Any]) -> datetime | None:
    """The first point after an incident's last flagged one (its `end` is the start of that point)."""
    end = _naive(alert.get("incident_end"))
    if end is None:
        return None
    return end + GRAIN_STEP.get(str(alert.get("grain") or "hour"), timedelta(hours=1))


def recovered(alert: Mapping[str, Any], horizon: datetime | None, resolve_after: timedelta) -> bool:
    """True when the data, scored up to `horizon`, has been back inside the band for `resolve_after`."""
    since = back_in_band_since(alert)
    return since is not None and horizon is not None and horizon - since >= resolve_after


def budget_severity(threshold_percent: float) -> str:
    """A budget notice's severity: 100 % and beyond is high, from 80 % medium, below low."""
    if threshold_percent >= 100:
        return "high"
    return "medium" if threshold_percent >= 80 else "low"
