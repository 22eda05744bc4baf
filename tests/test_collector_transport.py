"""Collector behaviour through httpx's transport seam: retries, gaps, paging stop rules, failures."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timedelta

import duckdb
import httpx
import pytest

from collectors.http_client import ApiClient, ApiError, RetryPolicy
from collectors.sync import collect
from config import config_from_dict
from store import reads, write_transaction

NOW = datetime(2026, 11, 20, 12, 0, 0)
SECRET_A = "rbv_" + "a" * 32
SECRET_B = "rbv_" + "b" * 32


class FakeApi:
    """A tiny scripted API: one good key, one rejected key, events and jobs we control."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.jobs: list[dict] = []
        self.calls: list[str] = []
        self.raw_paths: list[bytes] = []
        self.fail_next: list[httpx.Response] = []

    def add_events(self, n: int, start: datetime) -> None:
        base = len(self.events)
        for i in range(n):
            self.events.append(
                {
                    "id": f"evt_{base + i}",
                    "created_at": (start + timedelta(seconds=i)).isoformat() + "Z",
                    "endpoint": "/v1/jobs",
                    "method": "GET",
                    "status_code": 200,
                    "request_id": f"req_{base + i}",
                    "job_id": None,
                    "model": None,
                    "credits": 0,
                }
            )

    def add_jobs(self, n: int, status: str = "completed") -> None:
        base = len(self.jobs)
        for i in range(n):
            self.jobs.append(
                {
                    "id": f"job_{base + i:05d}",
                    "status": status,
                    "progress": 100,
                    "output_url": "https://cdn/x.mp4",
                    "error": None,
                    "created_at": (NOW - timedelta(hours=1000 - base - i)).isoformat() + "Z",
                    "duration_seconds": 60,
                    "billing_status": "charged",
                    "model": "pro",
                    "output_format": "mp4",
                    "credits": 180,
                }
            )

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        self.raw_paths.append(request.url.raw_path)
        if self.fail_next:
            return self.fail_next.pop(0)
        if request.url.path == "/api/pricing":
            return httpx.Response(200, json={"models": [{"model": "pro", "credits_per_minute": 180}]})
        if request.headers.get("x-api-key") != SECRET_A:
            return httpx.Response(
                401, json={"error": {"code": "invalid_api_key", "message": "bad key", "request_id": "req_401"}}
            )
        path = request.url.path
        if path == "/v1/usage/summary":
            return httpx.Response(
                200,
                json={
                    "days": 2,
                    "daily": [
                        {"date": "2026-11-19", "calls": 10, "jobs": 1, "credits": 180.0, "failed": 0},
                        {"date": "2026-11-20", "calls": 5, "jobs": 0, "credits": 0, "failed": 0},
                    ],
                },
            )
        if path == "/v1/usage/events":
            limit = int(request.url.params.get("limit", 20))
            newest = sorted(self.events, key=lambda e: e["created_at"], reverse=True)[:limit]
            return httpx.Response(200, json={"items": newest})
        if path == "/v1/jobs":
            limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
            ordered = sorted(self.jobs, key=lambda j: j["created_at"], reverse=True)
            return httpx.Response(
                200,
                json={
                    "items": ordered[offset : offset + limit],
                    "total": len(ordered),
                    "limit": limit,
                    "offset": offset,
                },
            )
        if path.startswith("/v1/jobs/"):
            job = next((j for j in self.jobs if j["id"] == path.rsplit("/", 1)[1]), None)
            return httpx.Response(200, json=job) if job else httpx.Response(404, json={"error": {"code": "not_found"}})
        return httpx.Response(404)


def _config(page_size: int = 10):
    return config_from_dict(
        {
            "api": {"base_url": "http://fake"},
            "collector": {"backoff_scale": 0.001, "jobs_page_size": page_size, "events_limit": 100},
            "keys": [
                {"name": "api-gateway-prod", "environment": "prod", "secret": SECRET_A},
                {"name": "billing-prod", "environment": "prod", "secret": SECRET_B},
            ],
        }
    )


def _run(api: FakeApi, db, **kwargs):
    return asyncio.run(collect(_config(**kwargs), db, transport=httpx.MockTransport(api.handler), now=lambda: NOW))


def _count(db, sql: str) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchone()[0]


def test_rejected_key_is_recorded_and_others_continue(tmp_path):
    api = FakeApi()
    api.add_events(5, NOW - timedelta(minutes=10))
    api.add_jobs(3)
    summary = _run(api, tmp_path / "m.duckdb")
    assert summary.status == "partial" and summary.keys_ok == 1
    db = tmp_path / "m.duckdb"
    assert _count(db, "SELECT count(*) FROM jobs WHERE key_name = 'api-gateway-prod'") == 3
    assert (
        _count(
            db,
            "SELECT count(*) FROM collector_run_items WHERE key_name = 'billing-prod' "
            "AND error_code = 'invalid_api_key'",
        )
        == 1
    )
    # a rejected key stops after its first endpoint instead of failing three times
    assert _count(db, "SELECT count(*) FROM collector_run_items WHERE key_name = 'billing-prod'") == 1


def test_second_run_changes_nothing_and_stops_paging_early(tmp_path):
    api = FakeApi()
    api.add_events(30, NOW - timedelta(minutes=10))
    api.add_jobs(35)
    db = tmp_path / "m.duckdb"
    _run(api, db)
    assert _count(db, "SELECT count(*) FROM jobs") == 35
    api.calls.clear()
    second = _run(api, db)
    assert second.rows_written == 0
    good_key_calls = [c for c in api.calls if c.startswith("/v1/")]
    # summary + events + one jobs page for the good key, one rejected call for the other key
    assert good_key_calls.count("/v1/jobs") == 1
    assert len(good_key_calls) == 4


def test_new_jobs_arriving_are_paged_until_a_known_page(tmp_path):
    api = FakeApi()
    api.add_jobs(25)
    db = tmp_path / "m.duckdb"
    _run(api, db)
    api.add_jobs(15)  # newer than everything held: page 1 and part of page 2 are new
    _run(api, db)
    assert _count(db, "SELECT count(*) FROM jobs") == 40
    assert _count(db, "SELECT count(DISTINCT job_id) FROM jobs") == 40


def test_unsettled_jobs_are_repolled_and_history_kept(tmp_path):
    api = FakeApi()
    api.add_jobs(12)
    api.add_jobs(1, status="processing")
    db = tmp_path / "m.duckdb"
    _run(api, db)
    api.add_jobs(20)  # pushes the processing job off the first page
    api.jobs[12]["status"] = "completed"
    _run(api, db)
    with duckdb.connect(str(db), read_only=True) as con:
        history = con.execute(
            "SELECT status FROM job_status_history WHERE job_id = 'job_00012' ORDER BY observed_at, status"
        ).fetchall()
    assert {h[0] for h in history} == {"processing", "completed"}


def test_an_upstream_job_id_cannot_reach_another_route(tmp_path):
    api = FakeApi()
    api.add_jobs(12)
    api.add_jobs(1, status="processing")
    api.jobs[12]["id"] = "job/../../admin/keys?x=1"
    db = tmp_path / "m.duckdb"
    _run(api, db)
    del api.jobs[12]  # no longer listed: the unsettled job is polled by its id
    _run(api, db)
    detail = [p for p in api.raw_paths if p.startswith(b"/v1/jobs/")]
    assert detail == [b"/v1/jobs/job%2F..%2F..%2Fadmin%2Fkeys%3Fx%3D1"]


def test_event_window_overflow_records_a_coverage_gap(tmp_path):
    api = FakeApi()
    api.add_events(50, NOW - timedelta(hours=2))
    db = tmp_path / "m.duckdb"
    _run(api, db)
    assert _count(db, "SELECT count(*) FROM coverage_gaps") == 0
    api.add_events(500, NOW - timedelta(minutes=30))
    _run(api, db)
    with duckdb.connect(str(db), read_only=True) as con:
        gaps = con.execute("SELECT key_name, gap_start, gap_end FROM coverage_gaps").fetchall()
    assert len(gaps) == 1 and gaps[0][0] == "api-gateway-prod"
    assert gaps[0][1] == NOW - timedelta(hours=2) + timedelta(seconds=49)
    assert gaps[0][2] == NOW - timedelta(minutes=30) + timedelta(seconds=400)


def test_small_poll_with_overlap_records_no_gap(tmp_path):
    api = FakeApi()
    api.add_events(80, NOW - timedelta(hours=2))
    db = tmp_path / "m.duckdb"
    _run(api, db)
    api.add_events(60, NOW - timedelta(minutes=30))  # window of 100 still reaches back to what we hold
    _run(api, db)
    assert _count(db, "SELECT count(*) FROM coverage_gaps") == 0
    assert _count(db, "SELECT count(*) FROM usage_events") == 140


def test_malformed_record_is_quarantined_not_dropped_and_run_continues(tmp_path):
    api = FakeApi()
    api.add_events(3, NOW - timedelta(minutes=5))
    api.events.append({"id": "evt_bad", "created_at": "not a time"})
    db = tmp_path / "m.duckdb"
    _run(api, db)
    assert _count(db, "SELECT count(*) FROM usage_events") == 3
    assert _count(db, "SELECT count(*) FROM quarantine WHERE reason LIKE 'events:%'") == 1


def test_retry_policy_retries_429_and_5xx_but_not_4xx():
    responses = [httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(503), httpx.Response(200, json={})]
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        return responses.pop(0)

    async def go():
        async with ApiClient("http://x", retry=RetryPolicy(5, 0.001), transport=httpx.MockTransport(handler)) as c:
            ok = await c.get_json("/a")
            assert ok.attempts == 3
        async with ApiClient(
            "http://x",
            retry=RetryPolicy(5, 0.001),
            transport=httpx.MockTransport(lambda r: httpx.Response(400, json={})),
        ) as c:
            with pytest.raises(ApiError) as info:
                await c.get_json("/b")
            assert info.value.attempts == 1

    asyncio.run(go())
    assert len(seen) == 3


def test_a_get_carries_the_clients_headers_and_timeouts_and_follows_no_redirect():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"Location": "http://elsewhere/steal"}, json={"moved": True})
        return httpx.Response(200, json={"ok": True}, headers={"X-Request-Id": "req_1"})

    async def go():
        async with ApiClient(
            "http://api.test", connect_timeout_s=3.0, read_timeout_s=7.0, transport=httpx.MockTransport(handler)
        ) as c:
            answer = await c.get_json("/v1/usage", params={"days": 7}, headers={"X-Api-Key": SECRET_A, "accept": "x"})
            moved = await c.get_json("/moved", headers={"X-Api-Key": SECRET_A})
        return answer, moved

    answer, moved = asyncio.run(go())
    assert (answer.status, answer.body, answer.request_id) == (200, {"ok": True}, "req_1")
    first = seen[0]
    assert str(first.url) == "http://api.test/v1/usage?days=7"
    assert first.headers["user-agent"] == "rbv-key-monitor/1.0"
    assert first.headers.get_list("accept") == ["x"]  # the caller's header replaces the default, whatever its case
    assert first.headers["x-api-key"] == SECRET_A
    assert first.extensions["timeout"] == {"connect": 3.0, "read": 7.0, "write": 7.0, "pool": 7.0}
    # A redirect is answered as it is: the key is never sent to the other host.
    assert moved.status == 302 and [r.url.host for r in seen] == ["api.test", "api.test"]


def test_backoff_follows_the_vendor_schedule():
    import random

    policy = RetryPolicy(scale=1.0)
    rng = random.Random(1)
    for retry, (low, high) in enumerate([(1, 2), (2, 4), (4, 8), (8, 16), (8, 16)], start=1):
        waits = [policy.backoff_seconds(retry, rng) for _ in range(200)]
        assert low <= min(waits) and max(waits) <= high
    assert policy.wait_seconds(1, "7", rng) == 7.0


def test_raw_bodies_are_landed_with_request_ids(tmp_path):
    api = FakeApi()
    api.add_events(2, NOW - timedelta(minutes=5))
    db = tmp_path / "m.duckdb"
    _run(api, db)
    landed = reads.landed_bodies(db)
    assert {"pricing", "summary", "events", "jobs"} <= set(landed["endpoint"])
    body = landed.loc[landed["endpoint"] == "events", "body"].iloc[0]
    assert json.loads(body)["items"][0]["id"].startswith("evt_")
    for text, digest in zip(landed["body"], landed["body_sha256"], strict=True):
        assert hashlib.sha256(text.encode()).hexdigest() == digest
    with duckdb.connect(str(db), read_only=True) as con:
        compressed, as_text = con.execute("SELECT count(body_zstd), count(body) FROM raw_landing").fetchone()
    assert (compressed, as_text) == (len(landed), 0)
    # A landing from before migration 007 keeps its text, and reads back the same way.
    with write_transaction(db) as con:
        con.execute(
            "INSERT INTO raw_landing (landing_id, endpoint, fetched_at, body) "
            "VALUES (nextval('landing_seq'), 'legacy', ?, '{\"old\": 1}')",
            [NOW],
        ).fetchall()
    assert reads.landed_bodies(db, endpoint="legacy")["body"].tolist() == ['{"old": 1}']


def test_a_charge_that_settles_after_the_first_poll_is_recorded(tmp_path):
    api = FakeApi()
    api.add_events(3, NOW - timedelta(minutes=5))
    db = tmp_path / "m.duckdb"
    _run(api, db)
    api.events[1]["credits"] = 180.0  # the submit's charge lands once the job settles
    _run(api, db)
    assert _count(db, "SELECT count(*) FROM usage_events") == 3
    assert _count(db, "SELECT sum(credits) FROM usage_events") == 180
