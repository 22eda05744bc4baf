"""The one typed configuration: the key config TOML read once, every section validated, one error type.

Every face (collectors, the service, the CLIs, the dashboard) loads it through `load_config`; the analysis
faces pass `secrets=False`, so they validate the same file without needing the collectors' secrets.
Unknown sections and fields are an error naming them; secrets are resolved without ever being shown.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from analytics.alert_rules import KINDS, SEVERITIES, AlertPolicy, Match, MuteWindow, Route
from analytics.budgets import BudgetSettings
from analytics.credits import ROUNDING_POLICIES, ReconcileSettings
from analytics.keys import Rules
from analytics.pricing import PREFER, PricingConfig
from domain import (
    ENVIRONMENT_ALIASES,
    environment_from_name,
    fingerprint,
    mask_secret,
    normalize_environment,
    shard_of,
)
from untrusted import UnsafeURL, check_url

__all__ = [
    "ENVIRONMENT_ALIASES",
    "AlertSettings",
    "BudgetSettings",
    "ChannelConfig",
    "CollectorSettings",
    "Config",
    "ConfigError",
    "KeyConfig",
    "ReviewSettings",
    "SmokeSettings",
    "ActionSettings",
    "config_from_dict",
    "environment_from_name",
    "fingerprint",
    "load_config",
    "mask_secret",
    "normalize_environment",
    "pricing_section",
    "reconciliation_section",
    "rules_section",
]

DEFAULT_BASE_URL = "https://api.removebgvideo.com"

_KEY_FIELDS = {
    "name",
    "environment",
    "owner",
    "owner_status",
    "secret",
    "secret_env",
    "created_at",
    "rotated_at",
    "smoke",
}
_API_FIELDS = {"base_url", "admin_token_env", "allow_link_local"}
_SECTIONS = {
    "api", "keys", "collector", "rules", "alerts", "reconciliation", "pricing", "review", "dashboard", "smoke",
    "actions", "budgets",
}  # fmt: skip
_ALERT_FIELDS = {
    "webhook_url_env", "cooldown_hours", "check_minutes", "allow_link_local", "channels", "routes",
    "default_channels", "renotify_hours", "resolve_after_hours", "mutes", "health_stale_minutes", "dashboard_url",
}  # fmt: skip
CHANNEL_TYPES = ("slack", "webhook", "pagerduty", "email")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_CHANNEL_FIELDS = {
    "slack": {"type", "url_env", "allow_link_local"},
    "webhook": {"type", "url_env", "secret_env", "allow_link_local"},
    "pagerduty": {"type", "url", "routing_key_env", "allow_link_local"},
    "email": {
        "type", "smtp_host", "smtp_port", "starttls", "username_env", "password_env", "sender", "to", "ca_file",
        "timeout_s",
    },
}  # fmt: skip
_ROUTE_FIELDS = {"environment", "owner", "severity", "kind", "channels"}
_MUTE_FIELDS = {"environment", "owner", "severity", "kind", "key", "start", "end", "cron", "duration_minutes", "reason"}
IMPLICIT_WEBHOOK_CHANNEL = "webhook"  # the channel `[alerts] webhook_url_env` alone stands for (Slack-compatible)
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8501"
_BUDGET_FIELDS = {"thresholds", "account", "keys", "environments", "owners", "prepaid_balance", "prepaid_as_of"}
MAX_KEY_NAME = 100
MAX_OWNER = 200
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
DEFAULT_ALERT_CHECK_MINUTES = 10
_REVIEW_FIELDS = {"weekly_cron", "reports_dir", "deliver_to"}
DEFAULT_REPORTS_DIR = "data/reports"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, the place and the fix."""


@dataclass(frozen=True)
class KeyConfig:
    name: str
    environment: str
    owner: str | None
    owner_status: str | None
    created_at: datetime | None
    rotated_at: datetime | None
    secret: str = field(repr=False)
    smoke: bool = False  # opted in to scheduled smoke checks

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.secret)

    @property
    def masked(self) -> str:
        return mask_secret(self.secret)


@dataclass(frozen=True)
class CollectorSettings:
    concurrency: int = 64  # one key's requests never overlap: this many keys in flight at once
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    max_attempts: int = 5
    backoff_scale: float = 1.0
    summary_backfill_days: int = 90
    summary_refresh_days: int = 3
    events_limit: int = 100
    jobs_page_size: int = 100
    max_job_pages_first_run: int = 0  # 0: a key's first collection pages through all its job history
    raw_retention_days: int = 14
    events_retention_days: int = 400
    intervals_s: dict[str, float] = field(
        default_factory=lambda: {
            "events": 60.0,
            "jobs": 300.0,
            "summary": 900.0,
            "pricing": 86400.0,
            "admin": 3600.0,
            "results": 300.0,  # how often `serve` refreshes the stored findings when new data arrived
            # Keys the vendor's inventory lists as disabled answer 401 until someone re-enables them: polled
            # this often (to notice that), and counted as expected, not as failures.
            "disabled": 3600.0,
        }
    )


@dataclass(frozen=True)
class ChannelConfig:
    """One place notices go (`[alerts.channels.NAME]`). Secrets are named by their variables only: a Slack or
    webhook URL (`url_env`), the HMAC secret (`secret_env`), PagerDuty's routing key, the SMTP login."""

    name: str
    type: str  # slack | webhook | pagerduty | email
    url_env: str | None = None
    url: str | None = None  # PagerDuty's Events API v2 endpoint (not a secret)
    secret_env: str | None = None
    routing_key_env: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    starttls: bool = True
    username_env: str | None = None
    password_env: str | None = None
    sender: str | None = None
    to: tuple[str, ...] = ()
    ca_file: str | None = None
    timeout_s: float = 10.0
    allow_link_local: bool = False

    def secret_url(self) -> str:
        """The URL held by `url_env` now, checked like every URL here. Raises ValueError saying which variable
        is unset or why the URL is refused; never the URL (it is a secret)."""
        value = os.environ.get(self.url_env or "", "").strip()
        if not self.url_env or not value:
            raise ValueError(f"${self.url_env} (the channel's URL) is not set")
        try:
            return check_url(value, allow_link_local=self.allow_link_local)
        except UnsafeURL as exc:
            raise ValueError(f"the URL in ${self.url_env} {exc}; the URL is a secret, so it is not shown") from None

    @property
    def stateful(self) -> bool:
        """PagerDuty keeps an incident open until it is told it resolved; chat and mail are just messages."""
        return self.type == "pagerduty"


@dataclass(frozen=True)
class AlertSettings:
    """`[alerts]`: channels, routing, the lifecycle's timings and silences (secrets only by variable name)."""

    webhook_url_env: str | None = None
    cooldown: timedelta = timedelta(hours=6)
    check_minutes: float = DEFAULT_ALERT_CHECK_MINUTES
    allow_link_local: bool = False
    channels: tuple[ChannelConfig, ...] = ()
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    health_stale: timedelta | None = timedelta(minutes=60)
    dashboard_url: str = DEFAULT_DASHBOARD_URL

    def all_channels(self) -> tuple[ChannelConfig, ...]:
        """The configured channels, and the Slack-compatible one `webhook_url_env` alone stands for."""
        if self.webhook_url_env and all(c.name != IMPLICIT_WEBHOOK_CHANNEL for c in self.channels):
            implicit = ChannelConfig(
                IMPLICIT_WEBHOOK_CHANNEL, "slack", url_env=self.webhook_url_env, allow_link_local=self.allow_link_local
            )
            return (*self.channels, implicit)
        return self.channels

    def url_problems(self) -> list[str]:
        """Why a channel's URL, as this process's environment holds it now, could not be sent to (never the URL)."""
        problems = []
        for channel in self.all_channels():
            if channel.url_env and os.environ.get(channel.url_env, "").strip():  # unset: not this process's secret
                try:
                    channel.secret_url()
                except ValueError as exc:
                    problems.append(f"channel {channel.name}: {exc}")
        return problems


@dataclass(frozen=True)
class ReviewSettings:
    """`[review]`: the weekly report job of `collectors serve` (a crontab line in UTC) and its folder."""

    weekly_cron: str | None = None
    reports_dir: Path = Path(DEFAULT_REPORTS_DIR)
    deliver_to: tuple[str, ...] = ()  # channel names: e-mail ones get the HTML report, the others its headline


# A public 5-second CC0 clip (MDN's "flower.mp4"): short, so a check costs a few credits. Host your own for production.
DEFAULT_SMOKE_CLIP_URL = "https://interactive-examples.mdn.mozilla.net/media/cc0-videos/flower.mp4"
# `.invalid` never resolves (RFC 6761), so the vendor can never download it: the failure path's input.
DEFAULT_SMOKE_FAILURE_URL = "https://smoke-check.invalid/unreachable.mp4"
_SMOKE_FIELDS = {
    "clip_url", "failure_url", "model", "daily_credit_cap", "timeout_s", "poll_interval_s", "schedule",
    "output_format",
}  # fmt: skip
_ACTION_FIELDS = {"enabled", "operators"}


@dataclass(frozen=True)
class SmokeSettings:
    """`[smoke]`: the known short clip, the input that must fail, the model (None: the cheapest), the daily cap."""

    clip_url: str = DEFAULT_SMOKE_CLIP_URL
    failure_url: str = DEFAULT_SMOKE_FAILURE_URL
    model: str | None = None
    daily_credit_cap: float = 100.0  # credits all smoke checks may spend per UTC day
    timeout_s: float = 300.0  # a success path's job must complete within this
    poll_interval_s: float = 2.0
    schedule: str | None = "30 6 * * *"  # crontab line (UTC) for `collectors serve`; "" turns it off
    output_format: str = "mp4"


@dataclass(frozen=True)
class ActionSettings:
    """`[actions]`: key actions through the admin API are off unless switched on; optionally only some operators."""

    enabled: bool = False
    operators: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    path: Path | None
    base_url: str
    keys: tuple[KeyConfig, ...]
    admin_token: str | None = field(default=None, repr=False)
    collector: CollectorSettings = field(default_factory=CollectorSettings)
    rules: Rules = field(default_factory=Rules)
    reconciliation: ReconcileSettings = field(default_factory=ReconcileSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    smoke: SmokeSettings = field(default_factory=SmokeSettings)
    actions: ActionSettings = field(default_factory=ActionSettings)
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    # This collector's shard of the fleet (I of N, numbered 0 … N-1); `keys` are then that shard's keys only.
    shard: tuple[int, int] = (0, 1)

    def for_shard(self, index: int, count: int) -> Config:
        """Only the keys whose fingerprint hashes to shard `index` of `count` (domain.shard_of)."""
        keys = self.keys if count == 1 else tuple(k for k in self.keys if shard_of(k.fingerprint, count) == index)
        return replace(self, keys=keys, shard=(index, count))


DEFAULTS = Config(path=None, base_url=DEFAULT_BASE_URL, keys=())


def _parse_time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{where}: '{value}' is not a date or ISO timestamp") from None
    else:
        raise ConfigError(f"{where}: expected a date or ISO timestamp, got {type(value).__name__}")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _is_env_name(value: Any) -> bool:
    return isinstance(value, str) and _ENV_NAME.fullmatch(value) is not None


def _flag(table: dict[str, Any], name: str, where: str) -> bool:
    value = table.get(name, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where} {name}: must be true or false")
    return value


def _text_field(raw: dict[str, Any], name: str, where: str, limit: int) -> str | None:
    """An optional one-line text field (owner, owner_status); shown on pages and in exports, so bounded."""
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where} {name}: must be text")
    value = value.strip()
    if len(value) > limit or not value.isprintable():
        problem = f"it has {len(value):,}" if len(value) > limit else "it has a line break or control character"
        raise ConfigError(f"{where} {name}: must be at most {limit} printable characters on one line ({problem})")
    return value or None


def _key_name(raw: dict[str, Any], where: str) -> str:
    """A key's name: 1–100 printable characters on one line (it reaches logs, pages, exports and URLs)."""
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: 'name' is required")
    name = name.strip()
    if len(name) > MAX_KEY_NAME or not name.isprintable():
        problem = f"{len(name):,} characters" if len(name) > MAX_KEY_NAME else "a line break or control character"
        raise ConfigError(
            f"{where}: 'name' must be 1 to {MAX_KEY_NAME} printable characters on one line (it has {problem})"
        )
    return name


def _streamlit_secrets(config_dir: Path) -> dict[str, Any]:
    for candidate in (config_dir / ".streamlit" / "secrets.toml", Path(".streamlit") / "secrets.toml"):
        if candidate.is_file():
            try:
                return tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{candidate}: not valid TOML ({exc})") from None
    return {}


def _resolve_secret(raw: dict[str, Any], where: str, secrets_toml: dict[str, Any]) -> str:
    if "secret" in raw and "secret_env" in raw:
        raise ConfigError(f"{where}: give either 'secret' or 'secret_env', not both")
    if "secret" in raw:
        secret = raw["secret"]
    elif "secret_env" in raw:
        var = raw["secret_env"]
        if not _is_env_name(var) or var.startswith("rbv_"):
            # Likely the secret itself pasted in the wrong field: say so without echoing it.
            raise ConfigError(
                f"{where}: secret_env must be the name of an environment variable (like RBV_KEY_PROD); "
                "the value given is not one (it looks like a secret, so it is not shown)"
            )
        secret = os.environ.get(var)
        if not secret:
            raise ConfigError(f"{where}: environment variable {var} (secret_env) is not set")
    else:
        secret = (secrets_toml.get("keys") or {}).get(raw["name"])
        if not secret:
            raise ConfigError(
                f"{where}: no secret; set 'secret', 'secret_env', or [keys] {raw['name']} in .streamlit/secrets.toml"
            )
    if not isinstance(secret, str) or len(secret.strip()) < 8:
        raise ConfigError(f"{where}: the secret is not a usable API key")
    return secret.strip()


def _collector_settings(raw: dict[str, Any], where: str) -> CollectorSettings:
    defaults = CollectorSettings()
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "intervals":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.intervals: expected a table of seconds per endpoint")
            merged = dict(defaults.intervals_s)
            for endpoint, seconds in value.items():
                if endpoint not in merged:
                    raise ConfigError(f"{where}.intervals: unknown endpoint '{endpoint}' (known: {', '.join(merged)})")
                if not isinstance(seconds, int | float) or seconds <= 0:
                    raise ConfigError(f"{where}.intervals.{endpoint}: expected seconds > 0")
                merged[endpoint] = float(seconds)
            values["intervals_s"] = merged
            continue
        if not hasattr(defaults, name) or name == "intervals_s":
            raise ConfigError(f"{where}: unknown setting '{name}'")
        expected = type(getattr(defaults, name))
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}.{name}: expected a positive number")
        values[name] = expected(value)
    return CollectorSettings(**{**defaults.__dict__, **values})


def _env_var_name(value: Any, where: str, example: str, what: str) -> str:
    """The name of an environment variable holding a secret; anything else may be the secret: never echoed."""
    if not _is_env_name(value):
        raise ConfigError(
            f"{where}: must be the name of an environment variable (like {example}); the value given is not one "
            f"(it may be the {what} itself, so it is not shown)"
        )
    return str(value)


def _check_secret_url(var: str, allow_link_local: bool, where: str, secrets: bool) -> None:
    """A URL that is a secret, checked at load when the process holds it (never echoed)."""
    url = os.environ.get(var, "").strip() if secrets else ""  # the dashboard never posts: not its secret
    if url:
        try:
            check_url(url, allow_link_local=allow_link_local)
        except UnsafeURL as exc:  # never echo the URL: it is the secret
            raise ConfigError(f"{where}: the URL in ${var} {exc}; the URL is a secret, so it is not shown") from None


def _strings(value: Any, where: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A value or a list of values (route and mute matches, channel lists), each one line of text."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() and v.isprintable() for v in items):
        raise ConfigError(f"{where}: expected a text value or a list of them")
    out = tuple(v.strip() for v in items)
    if allowed is not None:
        wrong = [v for v in out if v not in allowed]
        if wrong:
            raise ConfigError(f"{where}: {', '.join(wrong)} is not one of {', '.join(allowed)}")
    return out


def _number(table: Mapping[str, Any], name: str, where: str, default: float, low: float, high: float) -> float:
    value = table.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigError(f"{where} {name}: must be a number from {low:g} to {high:g}")
    return float(value)


def _known(table: Any, known: set[str], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    return table


def _channel(name: str, raw: Any, where: str, secrets: bool) -> ChannelConfig:
    """One `[alerts.channels.NAME]` table: its type's fields, secrets by variable name only."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ConfigError(f"{where}: a channel name is 1-64 letters, digits, '.', '_' or '-'")
    kind = raw.get("type")
    if kind not in CHANNEL_TYPES:
        raise ConfigError(f"{where} type: must be one of {', '.join(CHANNEL_TYPES)}")
    for secret in ("url_env", "secret_env", "routing_key_env", "username_env", "password_env"):
        if secret.removesuffix("_env") in raw and secret.removesuffix("_env") not in _CHANNEL_FIELDS[kind]:
            raise ConfigError(
                f"{where}: {secret.removesuffix('_env')} must not be written in the config (it is a secret); put it "
                f"in an environment variable and name that variable with {secret}"
            )
    _known(raw, _CHANNEL_FIELDS[kind], where)
    allow_link_local = _flag(raw, "allow_link_local", where)
    values: dict[str, Any] = {"name": name, "type": kind, "allow_link_local": allow_link_local}
    if kind in ("slack", "webhook"):
        if "url_env" not in raw:
            raise ConfigError(f"{where}: url_env is required (the name of the variable holding the URL)")
        values["url_env"] = _env_var_name(raw["url_env"], f"{where} url_env", "RBV_SLACK_WEBHOOK", "URL")
        _check_secret_url(values["url_env"], allow_link_local, where, secrets)
    if kind == "webhook":
        if "secret_env" not in raw:
            raise ConfigError(f"{where}: secret_env is required (the variable holding the HMAC-SHA256 signing secret)")
        values["secret_env"] = _env_var_name(raw["secret_env"], f"{where} secret_env", "RBV_HOOK_SECRET", "secret")
    if kind == "pagerduty":
        if "routing_key_env" not in raw:
            raise ConfigError(f"{where}: routing_key_env is required (the variable holding the integration key)")
        values["routing_key_env"] = _env_var_name(
            raw["routing_key_env"], f"{where} routing_key_env", "RBV_PAGERDUTY_KEY", "routing key"
        )
        try:
            values["url"] = check_url(str(raw.get("url", PAGERDUTY_EVENTS_URL)), allow_link_local=allow_link_local)
        except UnsafeURL as exc:
            raise ConfigError(f"{where} url: {exc}") from None
    if kind == "email":
        host = raw.get("smtp_host")
        if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9.:\[\]_-]{1,253}", host.strip()):
            raise ConfigError(f"{where} smtp_host: required, a host name or address")
        values["smtp_host"] = host.strip()
        values["smtp_port"] = int(_number(raw, "smtp_port", where, 587, 1, 65535))
        values["starttls"] = _flag({"starttls": raw.get("starttls", True)}, "starttls", where)
        values["timeout_s"] = _number(raw, "timeout_s", where, 10.0, 1.0, 300.0)
        for secret in ("username_env", "password_env"):
            if secret in raw:
                values[secret] = _env_var_name(raw[secret], f"{where} {secret}", "RBV_SMTP_USER", secret[:-4])
        if ("username_env" in values) != ("password_env" in values):
            raise ConfigError(f"{where}: give both username_env and password_env, or neither (no SMTP login)")
        address = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,253}")
        sender = raw.get("sender")
        if not isinstance(sender, str) or not address.fullmatch(sender.strip()):
            raise ConfigError(f"{where} sender: required, one e-mail address like monitor@example.com")
        values["sender"] = sender.strip()
        to = _strings(raw.get("to"), f"{where} to")
        if not to or not all(address.fullmatch(a) for a in to):
            raise ConfigError(f"{where} to: one or more e-mail addresses like ops@example.com")
        values["to"] = to
        if "ca_file" in raw:
            if not isinstance(raw["ca_file"], str) or not Path(raw["ca_file"]).is_file():
                raise ConfigError(f"{where} ca_file: must be an existing file of CA certificates (PEM)")
            values["ca_file"] = raw["ca_file"]
    return ChannelConfig(**values)


def _match(raw: dict[str, Any], where: str) -> Match:
    environments = ()
    if "environment" in raw:
        environments = tuple(
            normalize_environment(v) or "" for v in _strings(raw["environment"], f"{where} environment")
        )
        if "" in environments:
            raise ConfigError(f"{where} environment: each must be prod, staging or dev")
    return Match(
        environment=environments,
        owner=_strings(raw["owner"], f"{where} owner") if "owner" in raw else (),
        severity=_strings(raw["severity"], f"{where} severity", SEVERITIES) if "severity" in raw else (),
        kind=_strings(raw["kind"], f"{where} kind", KINDS) if "kind" in raw else (),
        key_name=_strings(raw["key"], f"{where} key") if "key" in raw else (),
    )


def _mute(raw: Any, where: str) -> MuteWindow:
    """`[[alerts.mutes]]`: one-off (start, end) or recurring (cron, duration_minutes), with an optional match."""
    raw = _known(raw, _MUTE_FIELDS, where)
    reason = raw.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 200 or not reason.isprintable():
        raise ConfigError(f"{where} reason: at most 200 printable characters on one line")
    match = _match(raw, where)
    if "cron" in raw:
        if "start" in raw or "end" in raw:
            raise ConfigError(
                f"{where}: give cron and duration_minutes (recurring) or start and end (one-off), not both"
            )
        cron = str(raw["cron"])
        try:
            from apscheduler.triggers.cron import CronTrigger

            CronTrigger.from_crontab(cron, timezone=UTC)
        except ValueError as exc:
            raise ConfigError(f"{where} cron: '{cron}' is not a crontab line like \"0 2 * * sun\" ({exc})") from None
        minutes = _number(raw, "duration_minutes", where, 0, 1, 7 * 24 * 60)
        return MuteWindow(match, cron=cron, duration=timedelta(minutes=minutes), reason=reason)
    start = _parse_time(raw.get("start"), f"{where} start")
    end = _parse_time(raw.get("end"), f"{where} end")
    if start is None or end is None or end <= start:
        raise ConfigError(f"{where}: a one-off mute needs start and end (end after start); a recurring one cron")
    return MuteWindow(match, start=start, end=end, reason=reason)


def _alerts(alerts: Any, label: str, secrets: bool) -> AlertSettings:
    """`[alerts]`: a webhook URL is a secret, so only the name of the variable holding it may be given."""
    if not isinstance(alerts, dict):
        raise ConfigError(f"{label}: [alerts] must be a table")
    if "webhook_url" in alerts:  # never echo the value: it is the secret
        raise ConfigError(
            f"{label} [alerts]: webhook_url must not be written in the config (it is a secret); "
            "put it in an environment variable and name that variable with webhook_url_env"
        )
    _known(alerts, _ALERT_FIELDS, f"{label} [alerts]")
    allow_link_local = _flag(alerts, "allow_link_local", f"{label} [alerts]")
    var = alerts.get("webhook_url_env")
    if var is not None:
        var = _env_var_name(var, f"{label} [alerts] webhook_url_env", "RBV_ALERT_WEBHOOK", "URL")
        try:
            _check_secret_url(var, allow_link_local, f"{label} [alerts]", secrets)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace("the URL in $", "the webhook URL in $")) from None
    minutes = alerts.get("check_minutes", DEFAULT_ALERT_CHECK_MINUTES)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 1 <= minutes <= 1440:
        raise ConfigError(f"{label} [alerts] check_minutes: must be a number of minutes from 1 to 1440")
    hours = alerts.get("cooldown_hours", 6)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours) or hours < 0:
        raise ConfigError(f"{label} [alerts] cooldown_hours: must be a non-negative number")
    raw_channels = alerts.get("channels", {})
    if not isinstance(raw_channels, dict):
        raise ConfigError(f"{label} [alerts.channels]: must be tables like [alerts.channels.ops-slack]")
    channels = tuple(
        _channel(name, raw, f"{label} [alerts.channels.{name}]", secrets) for name, raw in raw_channels.items()
    )
    names = {c.name for c in channels} | ({IMPLICIT_WEBHOOK_CHANNEL} if var else set())

    def channel_list(value: Any, where: str) -> tuple[str, ...]:
        listed = () if value == [] else _strings(value, where)
        unknown = [n for n in listed if n not in names]
        if unknown:
            known = ", ".join(sorted(names)) or "none configured"
            raise ConfigError(f"{where}: no channel named {', '.join(unknown)} (channels: {known})")
        return listed

    raw_routes = alerts.get("routes", [])
    if not isinstance(raw_routes, list):
        raise ConfigError(f"{label} [[alerts.routes]]: must be an array of tables")
    routes = []
    for index, raw in enumerate(raw_routes, start=1):
        where = f"{label} [[alerts.routes]] #{index}"
        raw = _known(raw, _ROUTE_FIELDS, where)
        if "channels" not in raw:
            raise ConfigError(f"{where}: channels is required (a list of channel names; [] sends nowhere)")
        routes.append(Route(_match(raw, where), channel_list(raw["channels"], f"{where} channels")))
    if "default_channels" in alerts:
        default = channel_list(alerts["default_channels"], f"{label} [alerts] default_channels")
    else:
        default = tuple(sorted(names))
    raw_mutes = alerts.get("mutes", [])
    if not isinstance(raw_mutes, list):
        raise ConfigError(f"{label} [[alerts.mutes]]: must be an array of tables")
    mutes = tuple(_mute(raw, f"{label} [[alerts.mutes]] #{i}") for i, raw in enumerate(raw_mutes, start=1))
    where = f"{label} [alerts]"
    renotify = _number(alerts, "renotify_hours", where, 4, 0, 24 * 30)
    policy = AlertPolicy(
        routes=tuple(routes),
        default_channels=default,
        renotify=timedelta(hours=renotify) if renotify else None,
        resolve_after=timedelta(hours=_number(alerts, "resolve_after_hours", where, 2, 0, 24 * 30)),
        mutes=mutes,
    )
    stale = _number(alerts, "health_stale_minutes", where, 60, 0, 7 * 24 * 60)
    dashboard_url = alerts.get("dashboard_url", DEFAULT_DASHBOARD_URL)
    try:
        dashboard_url = check_url(str(dashboard_url), allow_link_local=True).rstrip("/")
    except UnsafeURL as exc:
        raise ConfigError(f"{where} dashboard_url: {exc}") from None
    return AlertSettings(
        webhook_url_env=var,
        cooldown=timedelta(hours=float(hours)),
        check_minutes=float(minutes),
        allow_link_local=allow_link_local,
        channels=channels,
        policy=policy,
        health_stale=timedelta(minutes=stale) if stale else None,
        dashboard_url=dashboard_url,
    )


def _budget_table(raw: Any, where: str, scope: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f'{where}: expected a table like {{ "api-gateway-prod" = 20000 }}')
    out = []
    for name, credits in raw.items():
        if (
            isinstance(credits, bool)
            or not isinstance(credits, int | float)
            or not math.isfinite(credits)
            or credits <= 0
        ):
            raise ConfigError(f"{where}.{name}: expected monthly credits > 0, got {credits!r}")
        if scope == "environment":
            canonical = normalize_environment(str(name))
            if canonical is None:
                raise ConfigError(f"{where}: '{name}' is not prod, staging or dev")
            name = canonical
        out.append((str(name), float(credits)))
    return tuple(sorted(out))


def _budgets(raw: Any, label: str) -> BudgetSettings:
    """`[budgets]`: monthly credit budgets per key, environment, owner and the account; thresholds; prepaid."""
    where = f"{label} [budgets]"
    raw = _known(raw, _BUDGET_FIELDS, where)
    thresholds = raw.get("thresholds", [50, 80, 100])
    if (
        not isinstance(thresholds, list)
        or not thresholds
        or not all(not isinstance(t, bool) and isinstance(t, int | float) and 0 < t <= 1000 for t in thresholds)
    ):
        raise ConfigError(f"{where} thresholds: a list of percentages such as [50, 80, 100]")
    account = raw.get("account")
    if account is not None and (isinstance(account, bool) or not isinstance(account, int | float) or account <= 0):
        raise ConfigError(f"{where} account: expected monthly credits > 0")
    balance = raw.get("prepaid_balance")
    if balance is not None and (isinstance(balance, bool) or not isinstance(balance, int | float) or balance < 0):
        raise ConfigError(f"{where} prepaid_balance: expected credits ≥ 0")
    as_of = _parse_time(raw.get("prepaid_as_of"), f"{where} prepaid_as_of")
    if (balance is None) != (as_of is None):
        raise ConfigError(f"{where}: give prepaid_balance with prepaid_as_of (the date the balance was read)")
    return BudgetSettings(
        thresholds=tuple(sorted({float(t) for t in thresholds})),
        account=float(account) if account is not None else None,
        keys=_budget_table(raw.get("keys", {}), f"{where} keys", "key"),
        environments=_budget_table(raw.get("environments", {}), f"{where} environments", "environment"),
        owners=_budget_table(raw.get("owners", {}), f"{where} owners", "owner"),
        prepaid_balance=float(balance) if balance is not None else None,
        prepaid_as_of=as_of,
    )


def _review(review: Any, label: str, alerts: AlertSettings) -> ReviewSettings:
    """`[review]`: the optional weekly report job of `collectors serve` (a crontab line in UTC, a folder)."""
    review = _known_table(review, "review", _REVIEW_FIELDS, label)
    cron = review.get("weekly_cron")
    if cron is not None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(str(cron), timezone=UTC)
        except ValueError as exc:
            raise ConfigError(
                f"{label} [review] weekly_cron: '{cron}' is not a crontab line like \"0 7 * * mon\" ({exc})"
            ) from None
    folder = review.get("reports_dir", DEFAULT_REPORTS_DIR)
    if not isinstance(folder, str) or not folder.strip():
        raise ConfigError(f"{label} [review] reports_dir: must be a folder path")
    deliver_to = _strings(review["deliver_to"], f"{label} [review] deliver_to") if review.get("deliver_to") else ()
    names = {c.name for c in alerts.all_channels()}
    unknown = [n for n in deliver_to if n not in names]
    if unknown:
        known = ", ".join(sorted(names)) or "none configured"
        raise ConfigError(f"{label} [review] deliver_to: no channel named {', '.join(unknown)} (channels: {known})")
    paging = [c.name for c in alerts.all_channels() if c.name in deliver_to and c.type == "pagerduty"]
    if paging:
        raise ConfigError(
            f"{label} [review] deliver_to: {', '.join(paging)} is a PagerDuty channel (a report pages nobody)"
        )
    if deliver_to and cron is None:
        raise ConfigError(f"{label} [review] deliver_to: needs weekly_cron (when the report is written and sent)")
    return ReviewSettings(
        weekly_cron=str(cron) if cron is not None else None, reports_dir=Path(folder), deliver_to=deliver_to
    )


def _known_table(raw: Any, section: str, fields: set[str], label: str) -> dict[str, Any]:
    """A config table whose every field is known (an unknown one is an error naming the known ones)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: [{section}] must be a table")
    unknown = set(raw) - fields
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{label} [{section}]: unknown field(s) {', '.join(sorted(unknown))} (known: {known})")
    return raw


def smoke_settings(raw: Any, label: str) -> SmokeSettings:
    """Read `[smoke]`; every field has a working default."""
    raw = _known_table(raw, "smoke", _SMOKE_FIELDS, label)
    values: dict[str, Any] = {}
    for name in ("clip_url", "failure_url"):
        if name in raw:
            try:
                values[name] = check_url(str(raw[name]))
            except UnsafeURL as exc:
                raise ConfigError(f"{label} [smoke] {name}: {exc}") from None
    for name in ("model", "output_format"):
        if name in raw:
            value = raw[name]
            if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9_-]{1,40}", value.strip().lower()):
                raise ConfigError(f'{label} [smoke] {name}: expected a name like "light"')
            values[name] = value.strip().lower()
    for name, low, high in (("daily_credit_cap", 0, 1e9), ("timeout_s", 1, 3600), ("poll_interval_s", 0.01, 60)):
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ConfigError(f"{label} [smoke] {name}: expected a number from {low:g} to {high:g}")
            values[name] = float(value)
    if "schedule" in raw:
        cron = str(raw["schedule"]).strip()
        if cron:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(cron, timezone=UTC)
            except ValueError as exc:
                raise ConfigError(f"{label} [smoke] schedule: '{cron}' is not a crontab line ({exc})") from None
        values["schedule"] = cron or None
    return SmokeSettings(**values)


def action_settings(raw: Any, label: str) -> ActionSettings:
    """Read `[actions]`: `enabled = true` switches key actions on; `operators` limits who may take them."""
    raw = _known_table(raw, "actions", _ACTION_FIELDS, label)
    operators = raw.get("operators", [])
    if not isinstance(operators, list) or not all(isinstance(o, str) and o.strip() for o in operators):
        raise ConfigError(f"{label} [actions] operators: expected a list of names or e-mail addresses")
    return ActionSettings(_flag(raw, "enabled", f"{label} [actions]"), tuple(o.strip() for o in operators))


# ---------------------------------------------------------------- analysis sections (typed for analytics)


def rules_section(section: Mapping[str, Any] | None) -> Rules:
    """Rules from a TOML `[rules]` table; unknown scalar names and bad values raise ConfigError.

    Sub-tables (e.g. `[rules.spikes]`) are left to the rules that will read them, as before.
    `release_cycle_days` is accepted as a friendlier name for staging's rotation due age.
    """
    rules = Rules()
    if not section:
        return rules
    known = {f.name: f for f in fields(Rules)}
    changes: dict[str, Any] = {}
    for name, value in section.items():
        if name == "release_cycle_days":
            due = dict(changes.get("rotation_due_days", rules.rotation_due_days))
            due["staging"] = _positive(value, "rules.release_cycle_days")
            changes["rotation_due_days"] = due
            continue
        if name not in known:
            if isinstance(value, Mapping):
                continue
            raise ConfigError(f"[rules] {name}: unknown setting (known: {', '.join(sorted(known))})")
        default = getattr(rules, name)
        where = f"rules.{name}"
        if isinstance(default, Mapping):
            changes[name] = {**default, **_per_environment(value, where)}
        elif isinstance(default, tuple):
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"[rules] {name}: expected a list of strings")
            changes[name] = tuple(v.strip().lower() for v in value)
        elif name == "sandbox_share":
            share = _positive(value, where)
            if share > 1:
                raise ConfigError(f"[rules] {name}: expected a share between 0 and 1, got {value}")
            changes[name] = share
        elif name == "shape_max_distance":
            distance = _positive(value, where)
            if distance > 1:
                raise ConfigError(f"[rules] {name}: expected a distance between 0 and 1, got {value}")
            changes[name] = distance
        elif isinstance(default, int) and not isinstance(default, bool):
            number = _positive(value, where)
            if number != int(number):
                raise ConfigError(f"[rules] {name}: expected a whole number, got {value}")
            changes[name] = int(number)
        else:
            changes[name] = _positive(value, where)
    result = replace(rules, **changes)
    if 24 % result.shape_block_hours:
        raise ConfigError(f"[rules] shape_block_hours: must divide 24, got {result.shape_block_hours}")
    return result


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"[{where.replace('.', '] ', 1)}: expected a positive number, got {value!r}")
    return float(value)


def _per_environment(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{where.replace('.', '] ', 1)}: expected a table like {{ prod = 7, staging = 14 }}")
    out = {}
    for env, days in value.items():
        canonical = normalize_environment(str(env))
        if canonical is None:
            raise ConfigError(f"[{where.replace('.', '] ', 1)}: '{env}' is not prod, staging or dev")
        out[canonical] = _positive(days, f"{where}.{env}")
    return out


def reconciliation_section(section: Mapping[str, Any] | None) -> ReconcileSettings:
    """Read `[reconciliation]` (rounding, tolerance, summary_settle_minutes, ledger_max_mb); unknown keys fail."""
    raw = dict(section or {})
    known = {"rounding", "tolerance", "summary_settle_minutes", "ledger_max_mb"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(
            f"[reconciliation]: unknown setting(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})"
        )
    defaults = ReconcileSettings()
    rounding = str(raw.get("rounding", defaults.rounding)).strip().lower()
    if rounding not in ROUNDING_POLICIES:
        raise ConfigError(
            f"[reconciliation] rounding: '{raw.get('rounding')}' is not one of {', '.join(ROUNDING_POLICIES)}"
        )

    def non_negative(name: str, default: float) -> float:
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"[reconciliation] {name}: expected a number ≥ 0, got {value!r}")
        return float(value)

    max_mb = non_negative("ledger_max_mb", defaults.ledger_max_bytes / 1_048_576)
    if max_mb <= 0:
        raise ConfigError("[reconciliation] ledger_max_mb: expected a number > 0")
    return ReconcileSettings(
        rounding=rounding,
        tolerance=non_negative("tolerance", defaults.tolerance),
        summary_settle_minutes=non_negative("summary_settle_minutes", defaults.summary_settle_minutes),
        ledger_max_bytes=int(max_mb * 1_048_576),
    )


def pricing_section(section: Mapping[str, Any] | None) -> PricingConfig:
    """Read `[pricing]` (rates = {model = credits per minute}, prefer = "api" | "config"); unknown keys fail."""
    raw = dict(section or {})
    known = {"rates", "prefer"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(
            f"[pricing]: unknown setting(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})"
        )
    prefer = str(raw.get("prefer", "api")).strip().lower()
    if prefer not in PREFER:
        raise ConfigError(f"[pricing] prefer: '{raw.get('prefer')}' is not one of {', '.join(PREFER)}")
    table = raw.get("rates", {})
    if not isinstance(table, Mapping):
        raise ConfigError("[pricing] rates: expected a table such as { pro = 180, light = 45 }")
    rates: dict[str, float] = {}
    for model, rate in table.items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate < 0:
            raise ConfigError(f"[pricing] rates.{model}: expected credits per minute ≥ 0, got {rate!r}")
        rates[str(model).strip().lower()] = float(rate)
    if prefer == "config" and not rates:
        raise ConfigError('[pricing] prefer = "config" needs rates')
    return PricingConfig(rates=tuple(sorted(rates.items())), prefer=prefer)


def load_config(path: str | Path, base_url_override: str | None = None, *, secrets: bool = True) -> Config:
    """Read and validate a key config; every problem raises ConfigError with one clear line.

    With `secrets=False` (the dashboard and the analytics commands) keys are validated but their secrets
    are not resolved: those faces never call the API, and need not hold the collectors' environment.
    """
    config_path = Path(path)
    if not config_path.is_file():
        raise ConfigError(f"config file {config_path} does not exist")
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{config_path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML ({exc})") from None
    return config_from_dict(data, config_path, base_url_override, secrets=secrets)


def config_from_dict(
    data: dict[str, Any],
    config_path: Path | None = None,
    base_url_override: str | None = None,
    *,
    secrets: bool = True,
) -> Config:
    label = str(config_path) if config_path else "config"
    unknown = set(data) - _SECTIONS
    if unknown:
        raise ConfigError(
            f"{label}: unknown top-level section(s) or field(s) {', '.join(sorted(unknown))} "
            f"(known sections: {', '.join(sorted(_SECTIONS))})"
        )
    alerts = _alerts(data.get("alerts", {}), label, secrets)
    review = _review(data.get("review", {}), label, alerts)
    budgets = _budgets(data.get("budgets", {}), label)
    analysis = {}
    for name, parse in (("rules", rules_section), ("reconciliation", reconciliation_section)):
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{label}: [{name}] must be a table")
        try:
            analysis[name] = parse(section)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None
    pricing = data.get("pricing", {})
    if not isinstance(pricing, dict):
        raise ConfigError(f"{label}: [pricing] must be a table")
    try:
        reconciliation = replace(analysis["reconciliation"], pricing=pricing_section(pricing))
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    api = data.get("api", {})
    if not isinstance(api, dict):
        raise ConfigError(f"{label}: [api] must be a table")
    if "admin_token" in api:  # never echo the value: it is the secret
        raise ConfigError(
            f"{label} [api]: admin_token must not be written in the config (it is a secret); put it in an "
            "environment variable and name that variable with admin_token_env"
        )
    unknown_api = set(api) - _API_FIELDS
    if unknown_api:
        known = ", ".join(sorted(_API_FIELDS))
        raise ConfigError(f"{label} [api]: unknown field(s) {', '.join(sorted(unknown_api))} (known: {known})")
    base_url = base_url_override or api.get("base_url") or DEFAULT_BASE_URL
    source = "--base-url" if base_url_override else "[api] base_url"
    try:
        base_url = check_url(base_url, allow_link_local=_flag(api, "allow_link_local", f"{label} [api]")).rstrip("/")
    except UnsafeURL as exc:  # not echoed: a URL with credentials in it would put them in the message
        raise ConfigError(f"{label}: {source} {exc}") from None
    admin_token = None
    if api.get("admin_token_env") is not None:
        if not _is_env_name(api["admin_token_env"]):
            raise ConfigError(
                f"{label} [api] admin_token_env: must be the name of an environment variable (like RBV_ADMIN_TOKEN); "
                "the value given is not one (it may be the token itself, so it is not shown)"
            )
        admin_token = os.environ.get(api["admin_token_env"]) or None

    raw_keys = data.get("keys", [])
    if not isinstance(raw_keys, list) or (secrets and not raw_keys):
        raise ConfigError(f"{label}: no [[keys]] entries; add at least one key")
    secrets_toml = _streamlit_secrets(config_path.parent if config_path else Path("."))
    keys: list[KeyConfig] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(raw_keys, start=1):
        where = f"{label} [[keys]] #{index}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table")
        if "note" in raw:
            raise ConfigError(
                f"{where}: 'note' is not stored or shown anywhere, so it is refused rather than dropped; "
                "keep such remarks as a TOML comment (# ...) beside the key"
            )
        unknown_fields = set(raw) - _KEY_FIELDS
        if unknown_fields:
            raise ConfigError(
                f"{where}: unknown field(s) {', '.join(sorted(unknown_fields))} "
                f"(known: {', '.join(sorted(_KEY_FIELDS))})"
            )
        name = _key_name(raw, where)
        where = f"{label} key '{name}'"
        if name in seen:
            raise ConfigError(f"{where}: the name is configured twice")
        env_raw = raw.get("environment")
        if env_raw is not None:
            environment = normalize_environment(str(env_raw))
            if environment is None:
                raise ConfigError(f"{where}: environment '{env_raw}' is not prod, staging or dev")
        else:
            environment = environment_from_name(name)
            if environment is None:
                raise ConfigError(f"{where}: no 'environment' and the name does not say one")
        secret = _resolve_secret(raw, where, secrets_toml) if secrets else ""
        smoke = raw.get("smoke", False)
        if not isinstance(smoke, bool):
            raise ConfigError(f"{where} smoke: must be true or false")
        key = KeyConfig(
            smoke=smoke,
            name=name,
            environment=environment,
            owner=_text_field(raw, "owner", where, MAX_OWNER),
            owner_status=(_text_field(raw, "owner_status", where, 40) or "").lower() or None,
            created_at=_parse_time(raw.get("created_at"), f"{where} created_at"),
            rotated_at=_parse_time(raw.get("rotated_at"), f"{where} rotated_at"),
            secret=secret,
        )
        if secrets and key.fingerprint in seen.values():
            raise ConfigError(f"{where}: the same secret is configured under another name")
        seen[name] = key.fingerprint
        keys.append(key)
    collector_raw = data.get("collector", {})
    if not isinstance(collector_raw, dict):
        raise ConfigError(f"{label}: [collector] must be a table")
    return Config(
        path=config_path,
        base_url=base_url,
        keys=tuple(keys),
        admin_token=admin_token,
        collector=_collector_settings(collector_raw, f"{label} [collector]"),
        rules=analysis["rules"],
        reconciliation=reconciliation,
        alerts=alerts,
        review=review,
        smoke=smoke_settings(data.get("smoke", {}), label),
        actions=action_settings(data.get("actions", {}), label),
        budgets=budgets,
    )
