"""Guardrails of the key actions (pure): who may act, when a disable is refused, how a replacement is named."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from analytics.keys import Rules, is_generic_name, is_well_formed_name
from domain import environment_from_name, name_tokens

ACTIONS = ("disable", "enable", "rotate")
RECENT = timedelta(hours=24)
# A key's traffic is known up to now when the vendor's own inventory was read for this action, or when a
# collection of the key succeeded this recently; otherwise "no calls in 24 h" is not known, only not seen.
OBSERVED_WITHIN = timedelta(hours=1)
MAX_REASON = 500
_VERSION = re.compile(r"^v(\d+)$")


@dataclass(frozen=True)
class TrafficFacts:
    """What is known of one key's recent traffic, and from where."""

    daily_calls: tuple[tuple[date, int], ...] = ()  # the last 7 days (and today), oldest first
    calls_24h: int | None = None  # events seen in the last 24 h (None: the events feed does not cover it)
    summary_calls_24h: int | None = None  # calls on the summary days overlapping the last 24 h (an upper bound)
    last_used_at: datetime | None = None
    last_used_source: str = "nothing collected"
    observed_at: datetime | None = None  # the last successful collection of the key (or the live inventory read)
    live_inventory: bool = False  # last_used_at was read from the vendor's inventory for this action

    def recent(self, now: datetime) -> bool:
        """Any sign of a call in the last 24 h."""
        used = self.last_used_at is not None and self.last_used_at >= now - RECENT
        return used or bool(self.calls_24h) or bool(self.summary_calls_24h)

    def known_quiet(self, now: datetime) -> bool:
        """No call in the last 24 h, and that is known up to now rather than merely not collected."""
        if self.recent(now):
            return False
        return self.live_inventory or (self.observed_at is not None and self.observed_at >= now - OBSERVED_WITHIN)

    def summary(self, now: datetime) -> str:
        """One line for the confirmation: the last 7 days, and the newest call."""
        week = ", ".join(f"{d:%a %d}: {n:,}" for d, n in self.daily_calls) or "no daily usage collected"
        last = (
            f"last call {self.last_used_at:%Y-%m-%d %H:%M} UTC ({self.last_used_source})"
            if self.last_used_at
            else (f"no call seen ({self.last_used_source})")
        )
        return f"calls per day (UTC): {week}; {last}"


@dataclass(frozen=True)
class Access:
    """Whether this face and person may act: the config switch, a signed-in operator, an admin token."""

    enabled: bool  # [actions] enabled = true
    actor: str | None  # who acts (signed-in identity, or the CLI user)
    operators: tuple[str, ...] = ()  # when given, only these actors
    admin_token: bool = False
    signed_in: bool = True  # the dashboard requires sign-in; the CLI runs as its user

    def problem(self) -> str | None:
        if not self.enabled:
            return "key actions are off: set [actions] enabled = true in the config"
        if not self.admin_token:
            return "no admin token: set [api] admin_token_env and that variable"
        if not self.signed_in:
            return "key actions need a signed-in operator: configure sign-in for the dashboard (README: Access)"
        if not self.actor:
            return "say who is acting"
        if self.operators and self.actor not in self.operators:
            return f"{self.actor} is not among [actions] operators"
        return None


@dataclass(frozen=True)
class Guard:
    allowed: bool
    why: str
    forced: bool = False
    warnings: tuple[str, ...] = field(default=())


def guard(action: str, facts: TrafficFacts, now: datetime, *, force: bool, reason: str | None) -> Guard:
    """Disabling a key with traffic in the last 24 h, or whose last 24 h are unknown, needs force and a reason.

    Enable and rotate add a key's ability to work, so they are not held back by traffic."""
    if action not in ACTIONS:
        return Guard(False, f"unknown action {action!r}")
    text = (reason or "").strip()
    if len(text) > MAX_REASON:
        return Guard(False, f"the reason is longer than {MAX_REASON} characters")
    if action in ("disable", "enable") and not text:
        return Guard(False, f"say why ({action} needs a reason)")
    if action != "disable":
        return Guard(True, "allowed")
    if facts.known_quiet(now):
        return Guard(True, "no call in the last 24 h")
    if facts.recent(now):
        calls = facts.calls_24h if facts.calls_24h is not None else facts.summary_calls_24h
        seen = f"{calls:,} call(s) in the last 24 h" if calls else "a call in the last 24 h"
        if facts.last_used_at is not None:
            seen += f", the last at {facts.last_used_at:%Y-%m-%d %H:%M} UTC"
        why = f"the key has traffic: {seen}"
    else:
        when = f"{facts.observed_at:%Y-%m-%d %H:%M} UTC" if facts.observed_at else "never"
        why = f"the last 24 h of traffic are unknown (the key was last collected {when})"
    if not force:
        return Guard(False, f"refused: {why}; disabling it would break its callers (use force, with a reason)")
    return Guard(True, f"forced: {why}", forced=True)


def rotation_name_problem(
    new_name: str, old_name: str, environment: str, configured: Collection[str], rules: Rules | None = None
) -> str | None:
    """Why a replacement name breaks the convention, or None: `<service>-<env>` (or `<env>-<purpose>`),
    not generic, the old key's environment, and not already a configured key."""
    rules = rules or Rules()
    name = new_name.strip()
    if not name:
        return "give the replacement a name"
    if name == old_name or name in configured:
        return f"'{name}' is already a configured key; the replacement needs a name of its own"
    if is_generic_name(name, rules):
        return f"'{name}' is a generic name; name it <service>-<env>"
    if not is_well_formed_name(name):
        return f"'{name}' is not lower-case, hyphen-separated <service>-<env>"
    claimed = environment_from_name(name)
    if claimed != environment:
        return f"'{name}' says {claimed or 'no environment'}, but the key it replaces is {environment}"
    return None


def suggested_rotation_name(old_name: str, environment: str, configured: Collection[str] = ()) -> str:
    """`api-gateway-prod` → `api-gateway-v2-prod`, `prod-main` → `prod-main-v2`, and the next free version."""
    tokens = name_tokens(old_name)
    env_last = bool(tokens) and environment_from_name(tokens[-1]) is not None
    env_token = tokens.pop() if env_last else None
    version = 1
    if tokens and _VERSION.match(tokens[-1]):
        version = int(_VERSION.match(tokens[-1]).group(1))  # type: ignore[union-attr]
        tokens.pop()
    while True:
        version += 1
        parts = [*tokens, f"v{version}", *([env_token] if env_token else [])]
        if not env_last and environment_from_name("-".join(parts)) is None:
            parts.append(environment)
        candidate = "-".join(parts)
        if candidate not in configured and candidate != old_name.lower():
            return candidate
