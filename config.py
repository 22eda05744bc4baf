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

from analytics.credits import ROUNDING_POLICIES, ReconcileSettings
from analytics.keys import Rules
from analytics.pricing import PREFER, PricingConfig
from domain import (
    ENVIRONMENT_ALIASES,
    environment_from_name,
    fingerprint,
    mask_secret,
    normalize_environment,
)
from untrusted import UnsafeURL, check_url

__all__ = [
    "ENVIRONMENT_ALIASES",
    "AlertSettings",
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
    "actions",
}  # fmt: skip
_ALERT_FIELDS = {"webhook_url_env", "cooldown_hours", "check_minutes", "allow_link_local"}
MAX_KEY_NAME = 100
MAX_OWNER = 200
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
DEFAULT_ALERT_CHECK_MINUTES = 10
_REVIEW_FIELDS = {"weekly_cron", "reports_dir"}
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
    concurrency: int = 32
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
class AlertSettings:
    """`[alerts]`: where anomaly alerts are posted (the URL is a secret: only its variable's name is kept)."""

    webhook_url_env: str | None = None
    cooldown: timedelta = timedelta(hours=6)
    check_minutes: float = DEFAULT_ALERT_CHECK_MINUTES
    allow_link_local: bool = False

    def webhook_url(self) -> str | None:
        """The webhook URL from the environment at the moment of use (None when unset).

        Raises ValueError (never echoing the URL) when it is not an http(s) URL safe to post to.
        """
        if not self.webhook_url_env:
            return None
        value = os.environ.get(self.webhook_url_env, "").strip()
        if not value:
            return None
        try:
            return check_url(value, allow_link_local=self.allow_link_local)
        except UnsafeURL as exc:
            raise ValueError(
                f"the webhook URL in ${self.webhook_url_env} {exc}; the URL is a secret, so it is not shown"
            ) from None


@dataclass(frozen=True)
class ReviewSettings:
    """`[review]`: the weekly report job of `collectors serve` (a crontab line in UTC) and its folder."""

    weekly_cron: str | None = None
    reports_dir: Path = Path(DEFAULT_REPORTS_DIR)


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


def _alerts(alerts: Any, label: str, secrets: bool) -> AlertSettings:
    """`[alerts]`: a webhook URL is a secret, so only the name of the variable holding it may be given."""
    if not isinstance(alerts, dict):
        raise ConfigError(f"{label}: [alerts] must be a table")
    if "webhook_url" in alerts:  # never echo the value: it is the secret
        raise ConfigError(
            f"{label} [alerts]: webhook_url must not be written in the config (it is a secret); "
            "put it in an environment variable and name that variable with webhook_url_env"
        )
    unknown = set(alerts) - _ALERT_FIELDS
    if unknown:
        known = ", ".join(sorted(_ALERT_FIELDS))
        raise ConfigError(f"{label} [alerts]: unknown field(s) {', '.join(sorted(unknown))} (known: {known})")
    allow_link_local = _flag(alerts, "allow_link_local", f"{label} [alerts]")
    var = alerts.get("webhook_url_env")
    if var is not None:
        if not _is_env_name(var):
            raise ConfigError(
                f"{label} [alerts] webhook_url_env: must be the name of an environment variable (like "
                "RBV_ALERT_WEBHOOK); the value given is not one (it may be the URL itself, so it is not shown)"
            )
        url = os.environ.get(var, "").strip() if secrets else ""  # the dashboard never posts: not its secret
        if url:
            try:
                check_url(url, allow_link_local=allow_link_local)
            except UnsafeURL as exc:  # never echo the URL: it is the secret
                raise ConfigError(
                    f"{label} [alerts]: the webhook URL in ${var} {exc}; the URL is a secret, so it is not shown"
                ) from None
    minutes = alerts.get("check_minutes", DEFAULT_ALERT_CHECK_MINUTES)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 1 <= minutes <= 1440:
        raise ConfigError(f"{label} [alerts] check_minutes: must be a number of minutes from 1 to 1440")
    hours = alerts.get("cooldown_hours", 6)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours) or hours < 0:
        raise ConfigError(f"{label} [alerts] cooldown_hours: must be a non-negative number")
    return AlertSettings(
        webhook_url_env=str(var) if var else None,
        cooldown=timedelta(hours=float(hours)),
        check_minutes=float(minutes),
        allow_link_local=allow_link_local,
    )


def _review(review: Any, label: str) -> ReviewSettings:
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
    return ReviewSettings(weekly_cron=str(cron) if cron is not None else None, reports_dir=Path(folder))


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
    review = _review(data.get("review", {}), label)
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
    )
