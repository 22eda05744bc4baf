"""The assumed wire contract of the RemoveBGVideo API: tolerant parsing of each body into records.

The vendor does not publish the usage endpoints' JSON, so every shape assumption lives here.
Each parser returns (records, rejects): a reject is (reason, raw item) and goes to quarantine,
so one odd record never stops a run and is never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

TERMINAL_JOB_STATUSES = frozenset({"completed", "failed"})
JOB_STATUSES = frozenset({"pending", "processing", "completed", "failed"})

Reject = tuple[str, Any]


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


def _items(body: Any, *names: str) -> list[Any]:
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        raise ContractError(f"expected a JSON object, got {type(body).__name__}")
    for name in names:
        value = body.get(name)
        if isinstance(value, list):
            return value
    raise ContractError(f"no list under any of {', '.join(names)}")


def parse_timestamp(value: Any) -> datetime:
    """ISO text or epoch seconds to naive UTC."""
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
        return datetime.fromtimestamp(float(value), UTC).replace(tzinfo=None)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _optional_time(value: Any) -> datetime | None:
    return None if value in (None, "") else parse_timestamp(value)


def _number(value: Any, what: str, *, allow_none: bool = False) -> float | None:
    kind = type(value)
    if (kind is float or kind is int) and 0 <= value < math.inf:  # the common case (NaN fails the test)
        return float(value)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} is not a number: {value!r}")
    number = float(value)
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


def parse_pricing(body: Any) -> tuple[dict[str, float], list[Reject]]:
    """`{"models": [{"model", "credits_per_minute"}]}` or `{"models": {"pro": 180}}`."""
    if not isinstance(body, dict):
        raise ContractError("pricing: expected a JSON object")
    models = _first(body, "models", "pricing", "rates", "data")
    rates: dict[str, float] = {}
    rejects: list[Reject] = []
    if isinstance(models, dict):
        models = [{"model": k, "credits_per_minute": v} for k, v in models.items()]
    if not isinstance(models, list):
        raise ContractError("pricing: no models list")
    for item in models:
        try:
            name = _first(item, "model", "name", "id")
            rate = _number(_first(item, "credits_per_minute", "rate", "credits"), "credits_per_minute")
            if not name:
                raise ValueError("model name missing")
            rates[str(name)] = float(rate or 0.0)
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"pricing: {exc}", item))
    return rates, rejects


class _Shape:
    """The accepted names of one record kind's aliased fields: canonical name -> names in order of preference.

    `read` returns the item itself when it uses exactly the canonical names (the documented shape,
    one C-level set test), else a dict of each canonical name's first non-null value.  Fields without
    aliases are read from the item directly.
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


_DAY = _Shape(date=("day",), calls=("requests", "api_calls"), jobs=("jobs_created",), credits=("credits_used",),
              failed=("failed_jobs", "errors"))  # fmt: skip
_EVENT = _Shape(id=("event_id",), status_code=("status",), created_at=("timestamp", "occurred_at"),
                endpoint=("path",), credits=("credits_used",))  # fmt: skip
_JOB = _Shape(id=("job_id",), output_format=("format",), duration_seconds=("duration",), credits=("credits_charged",))


def parse_summary(body: Any) -> tuple[list[DailyUsage], list[Reject]]:
    rows: list[DailyUsage] = []
    rejects: list[Reject] = []
    for item in _items(body, "daily", "days_data", "data", "items"):
        try:
            f = _DAY.read(item)
            day_raw = f.get("date")
            if not isinstance(day_raw, str):
                raise ValueError(f"date missing or not text: {day_raw!r}")
            rows.append(
                DailyUsage(
                    day=date.fromisoformat(day_raw[:10]),
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
                    method=_text(item.get("method")),
                    status_code=None if status is None else _count(status, "status_code"),
                    request_id=_text(item.get("request_id")),
                    job_id=_text(item.get("job_id")),
                    model=_text(item.get("model")),
                    credits=float(_number(f.get("credits") or 0, "credits") or 0),
                )
            )
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"events: {exc}", item))
    return rows, rejects


def parse_job(item: Any) -> Job:
    if not isinstance(item, dict):
        raise ValueError("job is not an object")
    f = _JOB.read(item)
    job_id = f.get("id")
    if not job_id:
        raise ValueError("job id missing")
    status = str(item.get("status") or "").lower()
    if status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {status!r}")
    return Job(
        job_id=str(job_id),
        created_at=parse_timestamp(item.get("created_at")),
        status=status,
        progress=_number(item.get("progress"), "progress", allow_none=True),
        model=_text(item.get("model")),
        output_format=_text(f.get("output_format")),
        duration_seconds=_number(f.get("duration_seconds"), "duration", allow_none=True),
        credits_charged=_number(f.get("credits"), "credits", allow_none=True),
        billing_status=_text(item.get("billing_status")),
        output_url=_text(item.get("output_url")) or None,
        error=_text(item.get("error")),
    )


def parse_jobs_page(body: Any) -> tuple[JobsPage, list[Reject]]:
    items = _items(body, "items", "data", "jobs")
    jobs: list[Job] = []
    rejects: list[Reject] = []
    for item in items:
        try:
            jobs.append(parse_job(item))
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"jobs: {exc}", item))
    total = body.get("total") if isinstance(body, dict) else None
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    return JobsPage(jobs=jobs, total=total, item_count=len(items)), rejects


def parse_job_detail(body: Any) -> tuple[list[Job], list[Reject]]:
    item = body.get("job", body) if isinstance(body, dict) else body
    try:
        return [parse_job(item)], []
    except (ValueError, TypeError, AttributeError) as exc:
        return [], [(f"job: {exc}", item)]


def parse_inventory(body: Any) -> tuple[list[InventoryKey], list[Reject]]:
    rows: list[InventoryKey] = []
    rejects: list[Reject] = []
    for item in _items(body, "items", "data", "keys"):
        try:
            fp = _first(item, "key_fingerprint", "fingerprint")
            if not fp:
                raise ValueError("key_fingerprint missing")
            enabled = item.get("enabled")
            rows.append(
                InventoryKey(
                    key_fingerprint=str(fp),
                    client_id=_text(_first(item, "client_id", "id")),
                    name=_text(_first(item, "name", "label")),
                    note=_text(item.get("note")),
                    enabled=None if enabled is None else bool(enabled),
                    created_at=_optional_time(item.get("created_at")),
                    last_used_at=_optional_time(item.get("last_used_at")),
                )
            )
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append((f"admin keys: {exc}", item))
    return rows, rejects
