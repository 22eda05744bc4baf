"""The assumed wire contract of the RemoveBGVideo API: tolerant parsing of each body into records.

The vendor does not publish the usage or pricing endpoints' JSON, so every shape assumption lives here.
Each parser returns (records, rejects): a reject is (reason, raw item) and goes to quarantine,
so one odd record never stops a run and is never silently dropped.

What "tolerant" means, for every record kind: the list may sit under any of several envelope names
(or be the body itself, or sit one `data` object deeper); each field may use any of its aliases
(snake_case or camelCase); numbers may arrive as text; times may be ISO 8601 with or without an
offset (no offset means UTC), or epoch seconds, milliseconds or microseconds. Pricing may also be a
mapping of model to a number or to an object, mixed freely, with the rate in credits per minute,
second or hour.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

TERMINAL_JOB_STATUSES = frozenset({"completed", "failed"})
JOB_STATUSES = frozenset({"pending", "processing", "completed", "failed"})
# The vendor's words for a status are not published; these are unambiguous, anything else is quarantined.
JOB_STATUS_ALIASES = {
    "complete": "completed",
    "succeeded": "completed",
    "success": "completed",
    "successful": "completed",
    "done": "completed",
    "finished": "completed",
    "error": "failed",
    "errored": "failed",
    "failure": "failed",
    "queued": "pending",
    "created": "pending",
    "submitted": "pending",
    "waiting": "pending",
    "running": "processing",
    "in_progress": "processing",
    "in-progress": "processing",
    "started": "processing",
}

Reject = tuple[str, Any]


@dataclass(frozen=True)
class PublishedPricing:
    """The vendor's published credits per minute by model: the rates of last resort (see analytics.credits)."""

    rates: dict[str, float]
    source: str
    as_of: str  # when these were read from the source


# DESIGN.md section 2 quotes the vendor's public API documentation for `GET /api/pricing`
# ("docs: original 60, light 45, pro 180, human 45" credits per minute); transcribed here on 2026-11-30.
PUBLISHED_PRICING = PublishedPricing(
    rates={"original": 60.0, "light": 45.0, "pro": 180.0, "human": 45.0},
    source="RemoveBGVideo's public API docs, GET /api/pricing",
    as_of="2026-11-30",
)


class ContractError(Exception):
    """The body as a whole does not have the expected shape."""


# Records are NamedTuples: a first collection builds hundreds of thousands of them, and a tuple is
# several times cheaper to build than a frozen dataclass, and Arrow reads them as rows in C (store.writes).


class DailyUsage(NamedTuple):
    day: date
    calls: int
    jobs: int
    credits: float
    failed: int


class UsageEvent(NamedTuple):
    event_id: str
    occurred_at: datetime
    endpoint: str | None
    method: str | None
    status_code: int | None
    request_id: str | None
    job_id: str | None
    model: str | None
    credits: float


class Job(NamedTuple):
    job_id: str
    created_at: datetime
    status: str
    progress: float | None
    model: str | None
    output_format: str | None
    duration_seconds: float | None
    credits_charged: float | None
    billing_status: str | None
    output_url: str | None
    error: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES


@dataclass(frozen=True)
class JobsPage:
    jobs: list[Job]
    total: int | None
    item_count: int


@dataclass(frozen=True)
class InventoryKey:
    key_fingerprint: str
    client_id: str | None
    name: str | None
    note: str | None
    enabled: bool | None
    created_at: datetime | None
    last_used_at: datetime | None


def _first(item: dict[str, Any], *names: str) -> Any:
    for name in names:
        value = item.get(name)
        if value is not None:
            return value
    return None


def _container(body: Any, names: tuple[str, ...], depth: int = 0) -> tuple[list[Any], dict[str, Any]]:
    """The record list and the object that holds it: the body itself, under one of `names`, or one
    `data`/`result` object deeper (`{"data": {"items": [...], "total": 3}}`)."""
    if isinstance(body, list):
        return body, {}
    if not isinstance(body, dict):
        raise ContractError(f"expected a JSON object or list, got {type(body).__name__}")
    for name in names:
        value = body.get(name)
        if isinstance(value, list):
            return value, body
    if depth < 2:
        for wrapper in ("data", "result", "response"):
            inner = body.get(wrapper)
            if isinstance(inner, dict):
                return _container(inner, names, depth + 1)
    raise ContractError(f"no list under any of {', '.join(names)}")


def _items(body: Any, *names: str) -> list[Any]:
    return _container(body, names)[0]


_EPOCH_DIGITS = re.compile(r"^-?\d{9,19}(\.\d+)?$")
# Epoch numbers are told apart by size: 1e11 seconds is the year 5138, 1e11 milliseconds is 1973.
_MS_FROM, _US_FROM = 1e11, 1e14


def _from_epoch(number: float) -> datetime:
    if not math.isfinite(number):
        raise ValueError(f"not a timestamp: {number!r}")
    magnitude = abs(number)
    seconds = number / 1e6 if magnitude >= _US_FROM else number / 1e3 if magnitude >= _MS_FROM else number
    try:
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"timestamp out of range: {number!r}") from exc


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 text (no offset means UTC) or epoch seconds/milliseconds/microseconds, to naive UTC."""
    if type(value) is str and value[-1:] == "Z" and "T" in value:
        # The common shape ("...T12:00:00.123Z") needs no time zone round trip; anything odd takes the long way.
        try:
            parsed = datetime.fromisoformat(value[:-1])
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed
    if isinstance(value, bool):
        raise ValueError("boolean is not a time")
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    if _EPOCH_DIGITS.match(text):
        return _from_epoch(float(text))
    if text[-4:].upper() in (" UTC", " GMT"):
        text = text[:-4]
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time or epoch number: {value!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _optional_time(value: Any) -> datetime | None:
    return None if value in (None, "") else parse_timestamp(value)


def _number(value: Any, what: str, *, allow_none: bool = False) -> float | None:
    kind = type(value)
    if (kind is float or kind is int) and 0 <= value < math.inf:  # the common case (NaN fails the test)
        return float(value)
    if allow_none and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what} must be a finite non-negative number: {value!r}")
    return number


def _count(value: Any, what: str) -> int:
    if type(value) is int and value >= 0:
        return value
    number = _number(0 if value is None else value, what)
    assert number is not None
    if number != int(number):
        raise ValueError(f"{what} is not a whole number: {value!r}")
    return int(number)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_TRUE = frozenset({"true", "1", "yes", "y", "on", "enabled", "active"})
_FALSE = frozenset({"false", "0", "no", "n", "off", "disabled", "inactive"})


def _flag(value: Any, what: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{what} is not true or false: {value!r}")


# --- pricing -------------------------------------------------------------------------------------------

# Where a rate may sit in a per-model object, and what it must be multiplied by to give credits per minute.
PRICING_RATE_FIELDS: dict[str, float] = {
    "credits_per_minute": 1.0,
    "creditsPerMinute": 1.0,
    "credits_per_min": 1.0,
    "creditsPerMin": 1.0,
    "credits_minute": 1.0,
    "rate_per_minute": 1.0,
    "ratePerMinute": 1.0,
    "price_per_minute": 1.0,
    "pricePerMinute": 1.0,
    "cost_per_minute": 1.0,
    "costPerMinute": 1.0,
    "per_minute": 1.0,
    "perMinute": 1.0,
    "credits_per_second": 60.0,
    "creditsPerSecond": 60.0,
    "price_per_second": 60.0,
    "pricePerSecond": 60.0,
    "per_second": 60.0,
    "credits_per_hour": 1 / 60,
    "creditsPerHour": 1 / 60,
    "price_per_hour": 1 / 60,
    "per_hour": 1 / 60,
    # Generic names last: their unit comes from a `unit` field (default: per minute, as the docs say).
    "rate": 1.0,
    "price": 1.0,
    "cost": 1.0,
    "credits": 1.0,
    "amount": 1.0,
    "value": 1.0,
}
PRICING_NAME_FIELDS = ("model", "model_name", "modelName", "model_id", "modelId", "name", "id", "slug")
_PRICING_LISTS = ("models", "pricing", "prices", "rates", "data", "items", "plans")
# Keys of a pricing object that describe the table rather than name a model.
_PRICING_META = frozenset(
    {"unit", "units", "currency", "object", "version", "updated_at", "updatedAt", "as_of", "asOf", "effective_from",
     "effectiveFrom", "total", "count", "note", "notes", "description", "docs", "url"}
)  # fmt: skip
_UNIT_FIELDS = ("unit", "units", "per", "billing_unit", "billingUnit")


def _unit_factor(unit: Any) -> float:
    """Credits-per-minute multiplier of a unit text such as "credits_per_minute", "credits/sec", "per hour"."""
    text = str(unit).strip().lower()
    if re.search(r"(usd|eur|gbp|\$|€|£|dollar|cent)", text):
        raise ValueError(f"unit {unit!r} is money, not credits")
    if re.search(r"(^|[^a-z])(s|sec|second|seconds)$", text) or "second" in text or text.endswith("/s"):
        return 60.0
    if re.search(r"(^|[^a-z])(h|hr|hour|hours)$", text) or "hour" in text:
        return 1 / 60
    if "min" in text or text in ("credits", "credit"):
        return 1.0
    raise ValueError(f"unit {unit!r} is not credits per minute, second or hour")


_GENERIC_RATE_FIELDS = frozenset({"rate", "price", "cost", "credits", "amount", "value"})
_RATE_LIKE = re.compile(r"(credit|price|cost|rate|per_?min|per_?sec|per_?hour)", re.IGNORECASE)


def _rate_from_fields(entry: dict[str, Any], unit: Any, depth: int) -> float:
    for name, factor in PRICING_RATE_FIELDS.items():
        value = entry.get(name)
        if value is None:
            continue
        if isinstance(value, dict) and depth < 2:  # {"price": {"amount": 3, "unit": "credits/second"}}
            return _rate(value, unit, depth + 1)
        number = _number(value, f"rate '{name}'")
        assert number is not None
        # A field named for its unit (credits_per_second) says the unit; a generic one (rate) takes the declared one.
        return number * (_unit_factor(unit) if name in _GENERIC_RATE_FIELDS and unit is not None else factor)
    # An alias we have not met yet ("price_per_min", "creditRate"): accepted when exactly one field looks like a rate.
    candidates = [
        k
        for k, v in entry.items()
        if _RATE_LIKE.search(k)
        and k not in PRICING_NAME_FIELDS
        and isinstance(v, int | float | str)
        and not isinstance(v, bool)
    ]
    if len(candidates) == 1:
        name = candidates[0]
        number = _number(entry[name], f"rate '{name}'")
        assert number is not None
        named_unit = re.search(r"(min|sec|hour|hr)", name, re.IGNORECASE)
        return number * _unit_factor(named_unit.group(0) if named_unit else unit or "minute")
    if candidates:
        raise ValueError(f"several fields could be the rate ({', '.join(sorted(candidates))})")
    raise ValueError("no rate field (looked for credits_per_minute, creditsPerMinute, rate, price_per_minute, …)")


def _rate(entry: Any, unit: Any, depth: int = 0) -> float:
    """Credits per minute from a number, numeric text, or an object holding one under a rate field."""
    if isinstance(entry, dict):
        return _rate_from_fields(entry, _first(entry, *_UNIT_FIELDS) or unit, depth)
    number = _number(entry, "rate")
    assert number is not None
    return number * (1.0 if unit is None else _unit_factor(unit))


def _pricing_entries(body: Any, unit: Any = None, depth: int = 0) -> tuple[list[tuple[Any, Any]], Any]:
    """(mapping key or None, entry) pairs of a pricing body, and the table-wide unit if one is declared."""
    if isinstance(body, list):
        return [(None, item) for item in body], unit
    if not isinstance(body, dict):
        raise ContractError(f"pricing: expected a JSON object or list, got {type(body).__name__}")
    unit = _first(body, *_UNIT_FIELDS) or unit
    for name in _PRICING_LISTS:
        value = body.get(name)
        if isinstance(value, list | dict) and depth < 3:
            return _pricing_entries(value, unit, depth + 1)
    if depth == 0 and not any(k not in _PRICING_META and k not in _UNIT_FIELDS for k in body):
        raise ContractError("pricing: no models in the body")
    # No list anywhere: the object itself maps model -> rate (a number, numeric text or an object).
    return [(key, value) for key, value in body.items() if key not in _PRICING_META and key not in _UNIT_FIELDS], unit


def parse_pricing(body: Any) -> tuple[dict[str, float], list[Reject]]:
    """Credits per minute by (lower-case) model from any of the shapes in PRICING_RATE_FIELDS' neighbourhood:
    `{"models": [{"model": "pro", "credits_per_minute": 180}]}`, `{"models": {"pro": 180}}`,
    `{"pro": {"rate": "180"}, "light": 45}`, `[{"name": "pro", "creditsPerSecond": 3}]`, …"""
    entries, unit = _pricing_entries(body)
    if not entries:
        raise ContractError("pricing: the model list is empty")
    rates: dict[str, float] = {}
    rejects: list[Reject] = []
    for key, entry in entries:
        record = entry if key is None else {key: entry}
        try:
            name = key if key is not None else _first(entry, *PRICING_NAME_FIELDS) if isinstance(entry, dict) else None
            if key is None and not isinstance(entry, dict):
                raise ValueError(f"a list entry must be an object naming its model, got {entry!r}")
            if name is None or not str(name).strip():
                raise ValueError("model name missing")
            model = str(name).strip().lower()
            rate = _rate(entry, unit)
            if model in rates and not math.isclose(rates[model], rate):
                raise ValueError(f"model '{model}' is listed twice with different rates ({rates[model]:g}, {rate:g})")
            rates[model] = rate
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"pricing: {exc}", record))
    return rates, rejects


# --- usage, events, jobs, inventory ----------------------------------------------------------------------


class _Shape:
    """The accepted names of one record kind's aliased fields: canonical name -> names in order of preference.

    `read` returns the item itself when it uses exactly the canonical names (the documented shape,
    one C-level set test), else a dict of each canonical name's first non-null value.
    """

    def __init__(self, **names: tuple[str, ...]) -> None:
        self.names = {canonical: (canonical, *aliases) for canonical, aliases in names.items()}
        self.canonical = frozenset(self.names)
        self.aliases = frozenset(a for _, *aliases in self.names.values() for a in aliases)

    def read(self, item: dict[str, Any]) -> dict[str, Any]:
        keys = item.keys()
        if keys >= self.canonical and keys.isdisjoint(self.aliases):
            return item
        return {canonical: _first(item, *names) for canonical, names in self.names.items()}


_DAY = _Shape(date=("day", "date_utc", "dateUtc", "timestamp"),
              calls=("requests", "api_calls", "apiCalls", "call_count"),
              jobs=("jobs_created", "jobsCreated", "job_count", "jobCount"),
              credits=("credits_used", "creditsUsed", "credits_charged", "creditsCharged"),
              failed=("failed_jobs", "failedJobs", "errors"))  # fmt: skip
_EVENT = _Shape(id=("event_id", "eventId"), created_at=("timestamp", "occurred_at", "occurredAt", "createdAt", "time"),
                endpoint=("path", "route"), method=("http_method", "httpMethod", "verb"),
                status_code=("status", "statusCode", "http_status", "httpStatus"),
                request_id=("requestId", "req_id"), job_id=("jobId",), model=("modelName", "model_name"),
                credits=("credits_used", "creditsUsed", "credits_charged", "creditsCharged"))  # fmt: skip
_JOB = _Shape(id=("job_id", "jobId"), created_at=("createdAt", "created", "submitted_at", "submittedAt"),
              status=("state", "job_status", "jobStatus"), progress=("percent", "progress_pct"),
              model=("modelName", "model_name"), output_format=("format", "outputFormat"),
              duration_seconds=("duration", "durationSeconds", "duration_s", "video_seconds", "videoSeconds"),
              credits=("credits_charged", "creditsCharged", "charged_credits", "credits_used", "creditsUsed"),
              billing_status=("billingStatus", "billing"), output_url=("outputUrl", "result_url", "resultUrl"),
              error=("error_message", "errorMessage"))  # fmt: skip
_KEY = _Shape(key_fingerprint=("fingerprint", "keyFingerprint"), client_id=("clientId", "id"), name=("label",),
              note=("description",), enabled=("active", "is_enabled", "isEnabled"),
              created_at=("createdAt",), last_used_at=("lastUsedAt", "last_used", "lastUsed"))  # fmt: skip
_DURATION_MS = ("duration_ms", "durationMs")


def _day(value: Any) -> date:
    if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-":
        return date.fromisoformat(value[:10])
    if value is None or isinstance(value, bool):
        raise ValueError(f"date missing: {value!r}")
    return parse_timestamp(value).date()


def parse_summary(body: Any) -> tuple[list[DailyUsage], list[Reject]]:
    rows: list[DailyUsage] = []
    rejects: list[Reject] = []
    for item in _items(body, "daily", "days_data", "days", "data", "items", "usage"):
        try:
            f = _DAY.read(item)
            rows.append(
                DailyUsage(
                    day=_day(f.get("date")),
                    calls=_count(f.get("calls"), "calls"),
                    jobs=_count(f.get("jobs"), "jobs"),
                    credits=float(_number(f.get("credits") or 0, "credits") or 0),
                    failed=_count(f.get("failed"), "failed"),
                )
            )
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"summary: {exc}", item))
    return rows, rejects


def parse_events(body: Any) -> tuple[list[UsageEvent], list[Reject]]:
    rows: list[UsageEvent] = []
    rejects: list[Reject] = []
    for item in _items(body, "items", "data", "events"):
        try:
            f = _EVENT.read(item)
            event_id = f.get("id")
            if not event_id:
                raise ValueError("event id missing")
            status = f.get("status_code")
            rows.append(
                UsageEvent(
                    event_id=str(event_id),
                    occurred_at=parse_timestamp(f.get("created_at")),
                    endpoint=_text(f.get("endpoint")),
                    method=_text(f.get("method")),
                    status_code=None if status is None else _count(status, "status_code"),
                    request_id=_text(f.get("request_id")),
                    job_id=_text(f.get("job_id")),
                    model=_text(f.get("model")),
                    credits=float(_number(f.get("credits") or 0, "credits") or 0),
                )
            )
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"events: {exc}", item))
    return rows, rejects


def _job_status(value: Any) -> str:
    status = str(value or "").strip().lower()
    status = JOB_STATUS_ALIASES.get(status, status)
    if status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {value!r}")
    return status


def parse_job(item: Any) -> Job:
    if not isinstance(item, dict):
        raise ValueError("job is not an object")
    f = _JOB.read(item)
    job_id = f.get("id")
    if not job_id:
        raise ValueError("job id missing")
    duration = _number(f.get("duration_seconds"), "duration", allow_none=True)
    if duration is None and (millis := _first(item, *_DURATION_MS)) is not None:
        duration = (_number(millis, "duration_ms") or 0.0) / 1000.0
    return Job(
        job_id=str(job_id),
        created_at=parse_timestamp(f.get("created_at")),
        status=_job_status(f.get("status")),
        progress=_number(f.get("progress"), "progress", allow_none=True),
        model=_text(f.get("model")),
        output_format=_text(f.get("output_format")),
        duration_seconds=duration,
        credits_charged=_number(f.get("credits"), "credits", allow_none=True),
        billing_status=_text(f.get("billing_status")),
        output_url=_text(f.get("output_url")) or None,
        error=_text(f.get("error")),
    )


def _total(holder: dict[str, Any]) -> int | None:
    total = _first(holder, "total", "total_count", "totalCount", "count")
    if isinstance(total, str) and total.strip().isdigit():
        return int(total)
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def parse_jobs_page(body: Any) -> tuple[JobsPage, list[Reject]]:
    items, holder = _container(body, ("items", "data", "jobs"))
    jobs: list[Job] = []
    rejects: list[Reject] = []
    for item in items:
        try:
            jobs.append(parse_job(item))
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"jobs: {exc}", item))
    return JobsPage(jobs=jobs, total=_total(holder), item_count=len(items)), rejects


def parse_job_detail(body: Any) -> tuple[list[Job], list[Reject]]:
    item = body
    if isinstance(body, dict):
        item = body.get("job") or (body["data"] if isinstance(body.get("data"), dict) else body)
    try:
        return [parse_job(item)], []
    except (ValueError, TypeError, AttributeError) as exc:
        return [], [(f"job: {exc}", item)]


def parse_inventory(body: Any) -> tuple[list[InventoryKey], list[Reject]]:
    rows: list[InventoryKey] = []
    rejects: list[Reject] = []
    for item in _items(body, "items", "data", "keys"):
        try:
            f = _KEY.read(item)
            fp = f.get("key_fingerprint")
            if not fp:
                raise ValueError("key_fingerprint missing")
            rows.append(
                InventoryKey(
                    key_fingerprint=str(fp),
                    client_id=_text(f.get("client_id")),
                    name=_text(f.get("name")),
                    note=_text(f.get("note")),
                    enabled=_flag(f.get("enabled"), "enabled"),
                    created_at=_optional_time(f.get("created_at")),
                    last_used_at=_optional_time(f.get("last_used_at")),
                )
            )
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"admin keys: {exc}", item))
    return rows, rejects


# ------------------------------------------------------------------ answers to the writes the SDKs make

_SECRET_FIELDS = ("secret", "api_key", "apiKey", "key", "token")
_UPLOAD_URL_FIELDS = ("video_url", "videoUrl", "url", "file_url", "fileUrl")


def _nested(body: Any, *names: str) -> Any:
    """The first of `names` holding an object, else the body itself."""
    if isinstance(body, dict):
        for name in names:
            if isinstance(body.get(name), dict):
                return body[name]
    return body


def parse_inventory_item(body: Any) -> InventoryKey:
    """One key as the admin API answers a create, disable or enable (bare, or under `key`/`data`)."""
    item = _nested(body, "key", "data")
    rows, rejects = parse_inventory({"items": [item]})
    if not rows:
        raise ContractError(rejects[0][0] if rejects else "admin key: no key in the answer")
    return rows[0]


def parse_created_secret(body: Any) -> str:
    """The new key's secret in the answer to POST /v1/admin/keys (it is shown this once)."""
    holders = [body, body.get("key"), body.get("data")] if isinstance(body, dict) else []
    for holder in holders:
        if isinstance(holder, dict):
            secret = _first(holder, *_SECRET_FIELDS)
            if isinstance(secret, str) and secret.strip():
                return secret.strip()
    raise ContractError("admin keys: the answer holds no secret for the new key")


def parse_upload(body: Any) -> str:
    """The video URL a job can be created from, in the answer to POST /v1/uploads."""
    item = _nested(body, "upload", "data")
    url = _first(item, *_UPLOAD_URL_FIELDS) if isinstance(item, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise ContractError("uploads: the answer holds no video URL")
    return url.strip()
