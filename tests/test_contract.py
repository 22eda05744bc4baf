"""The wire contract, table-driven: every accepted shape of every record kind parses to the same records,
every rejected one is quarantined with its reason, and an endpoint whose records are all rejected is a
`partial` run that every page's freshness reports as unreadable since then."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

import duckdb
import httpx
import pytest

from collectors import contract
from collectors.sync import collect
from config import config_from_dict
from simulator import shapes
from store import reads

RATES = {"original": 60.0, "light": 45.0, "pro": 180.0, "human": 45.0}
NOW = datetime(2026, 11, 20, 12, 0, 0)

# --- pricing ------------------------------------------------------------------------------------------

PRICING_ACCEPTED: dict[str, object] = {
    **{f"stand-in {name}": shapes.pricing(name)[1] for name in shapes.ACCEPTED["pricing"]},
    "bare mapping with a unit and metadata": {
        "unit": "credits_per_minute",
        "updated_at": "2026-11-01",
        "original": 60,
        "light": "45",
        "pro": 180.0,
        "human": " 45 ",
    },
    "camelCase list under data": {"data": [{"modelName": m, "creditsPerMinute": r} for m, r in RATES.items()]},
    "rate with a declared per-second unit": {
        "unit": "credits/second",
        "models": [{"model": m, "rate": r / 60} for m, r in RATES.items()],
    },
    "per-hour objects": {"models": {m: {"credits_per_hour": r * 60} for m, r in RATES.items()}},
    "an alias nobody listed, in one field": {"items": [{"slug": m, "creditRate": r} for m, r in RATES.items()]},
    "upper-case names listed twice with one rate": {
        "models": [*({"model": m.upper(), "price_per_minute": r} for m, r in RATES.items()), {"id": "pro", "rate": 180}]
    },
    "nested price object": {"prices": [{"id": m, "price": {"value": str(r), "unit": "min"}} for m, r in RATES.items()]},
}


@pytest.mark.parametrize("name", sorted(PRICING_ACCEPTED))
def test_every_accepted_pricing_shape_gives_the_same_rates(name: str) -> None:
    rates, rejects = contract.parse_pricing(PRICING_ACCEPTED[name])
    assert rejects == []
    assert rates == pytest.approx(RATES) and set(rates) == set(RATES)


PRICING_REJECTED: list[tuple[object, str]] = [
    ({"model": "pro"}, "no rate field"),
    ({"model": "pro", "rate": "call us"}, "rate 'rate' is not a number"),
    ({"model": "pro", "rate": -1}, "must be a finite non-negative number"),
    ({"model": "pro", "rate": "NaN"}, "must be a finite non-negative number"),
    ({"model": "pro", "rate": True}, "is not a number"),
    ({"rate": 180}, "model name missing"),
    ({"model": "pro", "price": 2, "unit": "usd per minute"}, "is money, not credits"),
    ({"model": "pro", "price": 2, "unit": "per video"}, "is not credits per minute, second or hour"),
    ({"model": "pro", "price_per_min": 2, "cost_per_sec": 1}, "several fields could be the rate"),
    ("pro", "a list entry must be an object naming its model"),
]


@pytest.mark.parametrize(("entry", "reason"), PRICING_REJECTED, ids=[r for _, r in PRICING_REJECTED])
def test_every_rejected_pricing_entry_is_kept_with_its_reason(entry: object, reason: str) -> None:
    rates, rejects = contract.parse_pricing({"models": [entry, {"model": "light", "credits_per_minute": 45}]})
    assert rates == {"light": 45.0}, "one bad entry never costs the good ones"
    assert len(rejects) == 1
    message, record = rejects[0]
    assert message.startswith("pricing: ") and reason in message
    assert record == entry, "the record is quarantined as received"


def test_a_model_listed_twice_with_different_rates_is_rejected_not_guessed() -> None:
    rates, rejects = contract.parse_pricing({"models": {"pro": 180, "PRO": 200}})
    assert rates == {"pro": 180.0}
    assert "listed twice with different rates (180, 200)" in rejects[0][0]


@pytest.mark.parametrize(
    ("body", "message"),
    [("pricing", "expected a JSON object or list"), ({}, "no models"), ({"models": []}, "the model list is empty"),
     ({"unit": "credits_per_minute"}, "no models")],
)  # fmt: skip
def test_pricing_bodies_without_models_are_contract_errors(body: object, message: str) -> None:
    with pytest.raises(contract.ContractError, match=message):
        contract.parse_pricing(body)


# --- timestamps ---------------------------------------------------------------------------------------

INSTANT = datetime(2026, 11, 20, 11, 59, 58, 250000)
EPOCH_S = 1795175998.25  # INSTANT as epoch seconds

TIMES_ACCEPTED: list[object] = [
    "2026-11-20T11:59:58.250Z",
    "2026-11-20T11:59:58.250",  # no offset: UTC
    "2026-11-20 11:59:58.25",
    "2026-11-20T13:59:58.250+02:00",
    "2026-11-20T06:59:58.250-0500",
    "2026-11-20T11:59:58.250 UTC",
    int(EPOCH_S * 1000),  # epoch milliseconds
    str(int(EPOCH_S * 1000)),
    EPOCH_S,  # epoch seconds
    int(EPOCH_S * 1_000_000),  # epoch microseconds
]


@pytest.mark.parametrize("value", TIMES_ACCEPTED, ids=[repr(v) for v in TIMES_ACCEPTED])
def test_every_accepted_time_shape_is_the_same_instant(value: object) -> None:
    assert contract.parse_timestamp(value) == INSTANT


@pytest.mark.parametrize("value", ["yesterday", "", "2026-13-40", True, None, float("nan"), 1e30])
def test_unreadable_times_are_errors(value: object) -> None:
    with pytest.raises(ValueError):
        contract.parse_timestamp(value)


# --- jobs, events, summary days, inventory keys -----------------------------------------------------------

JOB = {
    "id": "job_1",
    "status": "completed",
    "progress": 100,
    "output_url": "https://cdn/out.mp4",
    "error": None,
    "created_at": "2026-11-20T11:59:58.250Z",
    "duration_seconds": 42.5,
    "billing_status": "charged",
    "model": "pro",
    "output_format": "mp4",
    "credits": 127.5,
}
JOB_ACCEPTED: dict[str, object] = {
    "canonical": JOB,
    "stand-in camel": shapes.reshape("job", JOB, "camel")["data"],
    "aliases, numbers as text, epoch ms": {
        "job_id": "job_1", "state": "Succeeded", "percent": "100", "result_url": "https://cdn/out.mp4",
        "created": int(EPOCH_S * 1000), "duration": "42.5", "billing": "charged", "model_name": "pro",
        "format": "mp4", "credits_charged": "127.5",
    },
    "duration in milliseconds, offset time": dict(
        {k: v for k, v in JOB.items() if k != "duration_seconds"},
        duration_ms=42500, created_at="2026-11-20T12:59:58.25+01:00",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(JOB_ACCEPTED))
def test_every_accepted_job_shape_is_the_same_job(name: str) -> None:
    page, rejects = contract.parse_jobs_page({"items": [JOB_ACCEPTED[name]], "total": 1})
    assert rejects == [] and page.total == 1
    assert page.jobs == [contract.parse_job(JOB)]
    assert page.jobs[0].created_at == INSTANT and page.jobs[0].status == "completed"


@pytest.mark.parametrize(
    ("envelope", "total"),
    [({"items": [JOB], "total": 9}, 9), ({"data": [JOB], "count": "9"}, 9),
     ({"data": {"jobs": [JOB], "totalCount": 9}}, 9), ([JOB], None), ({"jobs": [JOB]}, None)],
)  # fmt: skip
def test_job_list_envelopes(envelope: object, total: int | None) -> None:
    page, rejects = contract.parse_jobs_page(envelope)
    assert rejects == [] and page.total == total and [j.job_id for j in page.jobs] == ["job_1"]


EVENT = {
    "id": "evt_1",
    "created_at": "2026-11-20T11:59:58.250Z",
    "endpoint": "/v1/jobs",
    "method": "POST",
    "status_code": 200,
    "request_id": "req_1",
    "job_id": "job_1",
    "model": "pro",
    "credits": 127.5,
}
EVENT_ACCEPTED: dict[str, object] = {
    "canonical": EVENT,
    "stand-in camel": shapes.reshape("events", {"items": [EVENT]}, "camel")["data"][0],
    "aliases, epoch seconds": {
        "event_id": "evt_1", "timestamp": EPOCH_S, "path": "/v1/jobs", "http_method": "POST", "status": "200",
        "req_id": "req_1", "jobId": "job_1", "model_name": "pro", "credits_used": "127.5",
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EVENT_ACCEPTED))
def test_every_accepted_event_shape_is_the_same_event(name: str) -> None:
    events, rejects = contract.parse_events({"data": [EVENT_ACCEPTED[name]]})
    assert rejects == [] and events == contract.parse_events({"items": [EVENT]})[0]


DAY = {"date": "2026-11-19", "calls": 120, "jobs": 7, "credits": 812.25, "failed": 1}
DAY_ACCEPTED: dict[str, object] = {
    "canonical": DAY,
    "stand-in camel": shapes.reshape("summary", {"days": 1, "daily": [DAY]}, "camel")["data"]["days"][0],
    "aliases as text": {"day": "2026-11-19", "requests": "120", "jobs_created": "7", "credits_used": "812.25",
                        "errors": "1"},
    "epoch midnight": {"timestamp": 1795046400, "api_calls": 120, "jobCount": 7.0, "creditsCharged": 812.25,
                       "failedJobs": 1},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(DAY_ACCEPTED))
def test_every_accepted_summary_day_shape_is_the_same_day(name: str) -> None:
    days, rejects = contract.parse_summary({"data": {"days": [DAY_ACCEPTED[name]]}})
    assert rejects == [] and days == [contract.DailyUsage(date(2026, 11, 19), 120, 7, 812.25, 1)]


KEY = {"key_fingerprint": "abc", "client_id": "c1", "name": "k", "note": None, "enabled": True,
       "created_at": "2026-11-20T11:59:58.250Z", "last_used_at": None}  # fmt: skip
KEY_ACCEPTED: dict[str, object] = {
    "canonical": KEY,
    "camel, flags as text": {"keyFingerprint": "abc", "clientId": "c1", "label": "k", "isEnabled": "true",
                             "createdAt": int(EPOCH_S * 1000)},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(KEY_ACCEPTED))
def test_every_accepted_inventory_key_shape_is_the_same_key(name: str) -> None:
    keys, rejects = contract.parse_inventory({"keys": [KEY_ACCEPTED[name]]})
    assert rejects == [] and keys == contract.parse_inventory({"items": [KEY]})[0]
    assert keys[0].enabled is True and keys[0].created_at == INSTANT


RECORDS_REJECTED: list[tuple[str, dict, str]] = [
    ("jobs", {k: v for k, v in JOB.items() if k != "id"}, "jobs: job id missing"),
    ("jobs", dict(JOB, status="exploded"), "jobs: unknown job status 'exploded'"),
    ("jobs", dict(JOB, created_at="last Tuesday"), "jobs: not an ISO 8601 time or epoch number"),
    ("jobs", dict(JOB, credits="-3"), "jobs: credits must be a finite non-negative number"),
    ("jobs", dict(JOB, duration_seconds="long"), "jobs: duration is not a number"),
    ("events", {k: v for k, v in EVENT.items() if k != "id"}, "events: event id missing"),
    ("events", dict(EVENT, created_at=None), "events: not a timestamp"),
    ("events", dict(EVENT, status_code="2xx"), "events: status_code is not a number"),
    ("summary", {k: v for k, v in DAY.items() if k != "date"}, "summary: date missing"),
    ("summary", dict(DAY, calls=2.5), "summary: calls is not a whole number"),
    ("admin", {"client_id": "c1"}, "admin keys: key_fingerprint missing"),
    ("admin", dict(KEY, enabled="maybe"), "admin keys: enabled is not true or false"),
]
_PARSERS = {
    "jobs": lambda items: contract.parse_jobs_page({"items": items})[1],
    "events": lambda items: contract.parse_events({"items": items})[1],
    "summary": lambda items: contract.parse_summary({"daily": items})[1],
    "admin": lambda items: contract.parse_inventory({"items": items})[1],
}


@pytest.mark.parametrize(("kind", "item", "reason"), RECORDS_REJECTED, ids=[r for _, _, r in RECORDS_REJECTED])
def test_every_rejected_record_is_kept_with_its_reason(kind: str, item: dict, reason: str) -> None:
    rejects = _PARSERS[kind]([item])
    assert len(rejects) == 1 and rejects[0][0].startswith(reason) and rejects[0][1] == item


# --- through the collector: quarantine, `partial` runs and the unreadable report ------------------------

SECRET = "rbv_" + "c" * 32


class ShapedApi:
    """One key; every endpoint answers the body we set (pricing, summary, events, jobs)."""

    def __init__(self, **bodies: object) -> None:
        self.bodies = {"pricing": shapes.pricing("canonical")[1], "summary": {"days": 1, "daily": [DAY]},
                       "events": {"items": [EVENT]}, "jobs": {"items": [JOB], "total": 1}, **bodies}  # fmt: skip

    def handler(self, request: httpx.Request) -> httpx.Response:
        route = {"/api/pricing": "pricing", "/v1/usage/summary": "summary", "/v1/usage/events": "events",
                 "/v1/jobs": "jobs"}.get(request.url.path)  # fmt: skip
        if route is None:
            return httpx.Response(404, json={"error": {"code": "not_found"}})
        return httpx.Response(200, json=self.bodies[route], headers={"X-Request-Id": f"req_{route}"})


def _collect(api: ShapedApi, db, at: datetime = NOW):
    config = config_from_dict(
        {
            "api": {"base_url": "http://fake"},
            "collector": {"backoff_scale": 0.001},
            "keys": [{"name": "api-gateway-prod", "environment": "prod", "secret": SECRET}],
        }
    )
    return asyncio.run(collect(config, db, transport=httpx.MockTransport(api.handler), now=lambda: at))


def _rows(db, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_rejected_pricing_entries_land_in_quarantine_with_their_reasons(tmp_path):
    entries = [entry for entry, _ in PRICING_REJECTED]
    db = tmp_path / "m.duckdb"
    summary = _collect(ShapedApi(pricing={"models": entries}), db)
    quarantined = _rows(db, "SELECT endpoint, reason, request_id FROM quarantine ORDER BY quarantine_id")
    assert len(quarantined) == len(PRICING_REJECTED)
    for (endpoint, reason, request_id), (_, expected) in zip(quarantined, PRICING_REJECTED, strict=True):
        assert endpoint == "pricing" and expected in reason and request_id == "req_pricing"
    assert _rows(db, "SELECT count(*) FROM pricing") == [(0,)]
    assert summary.status == "partial", "a run in which every pricing record was rejected is not ok"
    assert _rows(db, "SELECT status, error_code FROM collector_run_items WHERE endpoint = 'pricing'") == [
        ("unreadable", "unreadable")
    ]


def test_an_unreadable_endpoint_is_reported_since_it_broke_until_it_reads_again(tmp_path):
    db = tmp_path / "m.duckdb"
    assert _collect(ShapedApi(), db).status == "ok"
    assert reads.freshness(db).unreadable == ()

    broken = ShapedApi(jobs=shapes.reshape("jobs", {"items": [JOB], "total": 1}, "unreadable"))
    first = _collect(broken, db, NOW + timedelta(hours=1))
    again = _collect(broken, db, NOW + timedelta(hours=2))
    assert (first.status, again.status) == ("partial", "partial")
    assert first.keys_ok == 0 and "api-gateway-prod jobs: unreadable" in first.failures
    [item] = reads.freshness(db).unreadable
    since_first_failure = _rows(
        db, "SELECT min(finished_at) FROM collector_run_items WHERE endpoint = 'jobs' AND status = 'unreadable'"
    )[0][0]
    assert (item.endpoint, item.keys, item.since) == ("jobs", 1, since_first_failure)
    assert "all 1 record(s) quarantined, e.g. jobs: job id missing" in item.reason
    # The good job collected before is kept, and the cursor did not move past what could not be read.
    assert _rows(db, "SELECT job_id FROM jobs") == [("job_1",)]

    assert _collect(ShapedApi(), db, NOW + timedelta(hours=3)).status == "ok"
    assert reads.freshness(db).unreadable == (), "a good answer ends the unreadable streak"


def test_a_body_without_any_record_list_is_unreadable_too(tmp_path):
    db = tmp_path / "m.duckdb"
    summary = _collect(ShapedApi(events={"error": "maintenance"}), db)
    assert summary.status == "partial"
    [item] = reads.freshness(db).unreadable
    assert item.endpoint == "events" and "no list under any of" in item.reason


def test_an_empty_answer_is_not_unreadable(tmp_path):
    db = tmp_path / "m.duckdb"
    summary = _collect(ShapedApi(events={"items": []}, jobs={"items": [], "total": 0}), db)
    assert summary.status == "ok" and reads.freshness(db).unreadable == ()
