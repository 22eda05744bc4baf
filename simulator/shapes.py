"""Wire-shape variants: the same world answered in the other JSON shapes a real vendor might use.

The vendor does not publish its JSON, so the stand-in can answer each record kind in several shapes:
the collector must read every `accepted` variant into exactly the records of the canonical one, and
must quarantine every record of an `unreadable` one (and say so) rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .catalog import MODEL_RATES, MODELS

KINDS = ("pricing", "summary", "events", "jobs")
PRICING_SHAPES = (
    "canonical",  # {"unit": "credits_per_minute", "models": [{"model", "credits_per_minute"}]}
    "mapping",  # {"models": {"pro": 180, ...}}
    "nested",  # {"models": {"pro": {"credits_per_min": 180}, ...}}
    "mixed",  # objects with a differently named rate field, mixed with plain numbers (seen in a real stand-in)
    "list",  # a bare list of {"name", "creditsPerMinute"}
    "strings",  # {"unit": "credits/min", "data": [{"id", "rate": "180.0"}]}
    "per_second",  # {"rates": [{"model", "credits_per_second"}]}
    "enveloped",  # {"data": {"prices": [{"modelId", "price": {"amount", "unit"}}]}}
    "unreadable",  # every entry's rate is prose: all records go to quarantine
    "unavailable",  # 404: the endpoint is gone
)
RECORD_SHAPES = ("canonical", "camel", "unreadable")
ACCEPTED = {
    "pricing": tuple(s for s in PRICING_SHAPES if s not in ("unreadable", "unavailable")),
    **{kind: ("canonical", "camel") for kind in ("summary", "events", "jobs")},
}


class ShapeError(ValueError):
    """An unknown record kind or shape name."""


def parse_shapes(text: str | None) -> dict[str, str]:
    """'pricing=mixed,jobs=camel' -> {"pricing": "mixed", "jobs": "camel"}; empty means canonical."""
    shapes: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        kind, sep, shape = (x.strip() for x in part.partition("="))
        if not sep:
            raise ShapeError(f"'{part.strip()}' is not kind=shape")
        check(kind, shape)
        shapes[kind] = shape
    return shapes


def check(kind: str, shape: str) -> None:
    if kind not in KINDS:
        raise ShapeError(f"unknown record kind '{kind}' (known: {', '.join(KINDS)})")
    known = PRICING_SHAPES if kind == "pricing" else RECORD_SHAPES
    if shape not in known:
        raise ShapeError(f"unknown {kind} shape '{shape}' (known: {', '.join(known)})")


def pricing(shape: str) -> tuple[int, object]:
    """(HTTP status, body) of GET /api/pricing in `shape`."""
    rates = list(zip(MODELS, MODEL_RATES, strict=True))
    bodies: dict[str, Callable[[], object]] = {
        "canonical": lambda: {
            "unit": "credits_per_minute",
            "models": [{"model": m, "credits_per_minute": int(r)} for m, r in rates],
        },
        "mapping": lambda: {"models": {m: int(r) for m, r in rates}},
        "nested": lambda: {"models": {m: {"credits_per_min": r} for m, r in rates}},
        "mixed": lambda: {
            "pricing": {
                m: ({"price_per_min": r, "tier": "standard"} if i % 2 == 0 else r) for i, (m, r) in enumerate(rates)
            }
        },
        "list": lambda: [{"name": m.capitalize(), "creditsPerMinute": r} for m, r in rates],
        "strings": lambda: {"unit": "credits/min", "data": [{"id": m, "rate": f"{r:.1f}"} for m, r in rates]},
        "per_second": lambda: {"rates": [{"model": m, "credits_per_second": r / 60} for m, r in rates]},
        "enveloped": lambda: {
            "data": {"prices": [{"modelId": m, "price": {"amount": r, "unit": "credits/minute"}} for m, r in rates]}
        },
        "unreadable": lambda: {"models": [{"model": m, "cost": "see your contract"} for m, _ in rates]},
    }
    if shape == "unavailable":
        return 404, {"error": {"code": "not_found", "message": "No route for GET /api/pricing"}}
    return 200, bodies[shape]()


def _epoch_ms(text: str | None) -> int | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    return round(moment.timestamp() * 1000)


def _text_number(value: object) -> object:
    return None if value is None else str(value)


_STATUS_WORDS = {"completed": "succeeded", "failed": "error", "processing": "running", "pending": "queued"}


def _camel_job(job: dict) -> dict:
    return {
        "jobId": job["id"],
        "state": _STATUS_WORDS.get(job["status"], job["status"]),
        "progress": _text_number(job.get("progress")),
        "modelName": job.get("model"),
        "outputFormat": job.get("output_format"),
        "durationSeconds": _text_number(job.get("duration_seconds")),
        "creditsCharged": _text_number(job.get("credits")),
        "billingStatus": job.get("billing_status"),
        "outputUrl": job.get("output_url"),
        "errorMessage": job.get("error"),
        "createdAt": _epoch_ms(job.get("created_at")),
    }


def _camel_event(event: dict) -> dict:
    return {
        "eventId": event["id"],
        "occurredAt": _epoch_ms(event["created_at"]),
        "path": event.get("endpoint"),
        "httpMethod": event.get("method"),
        "statusCode": _text_number(event.get("status_code")),
        "requestId": event.get("request_id"),
        "jobId": event.get("job_id"),
        "modelName": event.get("model"),
        "creditsUsed": _text_number(event.get("credits")),
    }


def _camel_day(day: dict) -> dict:
    return {
        "dateUtc": day["date"] + "T00:00:00Z",
        "apiCalls": day["calls"],
        "jobsCreated": _text_number(day["jobs"]),
        "creditsUsed": _text_number(day["credits"]),
        "failedJobs": day["failed"],
    }


def reshape(kind: str, body: dict, shape: str) -> object:
    """A canonical per-key body (summary, events, jobs list, or one job) in `shape`."""
    if shape == "canonical":
        return body
    unreadable = shape == "unreadable"
    if kind == "summary":
        if unreadable:  # the day is missing from every row
            return {"daily": [{k: v for k, v in day.items() if k != "date"} for day in body["daily"]]}
        return {"data": {"range_days": body["days"], "days": [_camel_day(d) for d in body["daily"]]}}
    if kind == "events":
        if unreadable:  # times in a format nobody can read
            return {"items": [dict(e, created_at="last Tuesday") for e in body["items"]]}
        return {"data": [_camel_event(e) for e in body["items"]]}
    if kind == "jobs":
        if unreadable:  # no job has an id
            return dict(body, items=[{k: v for k, v in j.items() if k != "id"} for j in body["items"]])
        inner = {"jobs": [_camel_job(j) for j in body["items"]], "totalCount": body.get("total")}
        return {"data": inner, "limit": body.get("limit"), "offset": body.get("offset")}
    if kind == "job":
        return {k: v for k, v in body.items() if k != "id"} if unreadable else {"data": _camel_job(body)}
    raise ShapeError(f"unknown record kind '{kind}'")
