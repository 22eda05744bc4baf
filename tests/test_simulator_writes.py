"""The stand-in's write endpoints over loopback: jobs that progress and are charged, uploads, starting a job,
the admin API's key actions, the same error shapes, determinism, and untouched keys answering as before."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from simulator.server import start_server
from simulator.world import World

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
KEY = "api-gateway-prod"
ADMIN = {"X-Admin-Token": "sim-admin-token"}


@pytest.fixture
def server():
    handle = start_server(World(seed=7, n_keys=30, days=30, now=NOW))
    yield handle
    handle.stop()


def _client(server, key: str = KEY) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"X-Api-Key": server.world.key(key).secret}, timeout=10)


def _settle(client: httpx.Client, job_id: str, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def test_a_created_job_progresses_is_charged_and_shows_up_everywhere(server):
    with _client(server) as client:
        before = client.get("/v1/usage/summary", params={"days": 1}).json()["daily"][-1]
        created = client.post("/v1/jobs", json={"video_url": "https://x.example/clip-12s.mp4", "model": "pro"})
        assert created.status_code == 201 and created.json()["status"] == "pending"
        request_id = created.headers["x-request-id"]
        seen = {created.json()["status"]}
        job = created.json()
        while job["status"] not in ("completed", "failed"):
            job = client.get(f"/v1/jobs/{job['id']}").json()
            seen.add(job["status"])
            time.sleep(0.01)
        assert seen >= {"pending", "processing", "completed"}  # it progressed over (accelerated) time
        assert job["credits"] == 36.0 and job["billing_status"] == "charged"  # 12 s of pro at 180/min
        assert httpx.get(job["output_url"]).status_code == 200
        listed = client.get("/v1/jobs", params={"limit": 1}).json()["items"][0]
        assert listed == job
        event = next(e for e in client.get("/v1/usage/events", params={"limit": 5}).json()["items"]
                     if e["job_id"] == job["id"])  # fmt: skip
        assert (event["method"], event["endpoint"], event["request_id"], event["credits"]) == (
            "POST", "/v1/jobs", request_id, 36.0
        )  # fmt: skip
        after = client.get("/v1/usage/summary", params={"days": 1}).json()["daily"][-1]
        assert after["calls"] == before["calls"] + 1 and after["jobs"] == before["jobs"] + 1
        assert after["credits"] == pytest.approx(before["credits"] + 36.0)

        failing = client.post("/v1/jobs", json={"video_url": "https://nowhere.invalid/a.mp4"}).json()
        failed = _settle(client, failing["id"])
        assert failed["status"] == "failed" and failed["credits"] == 0 and failed["billing_status"] == "not_charged"
        assert failed["error"].startswith("input_unreachable")
        assert client.get("/v1/usage/summary", params={"days": 1}).json()["daily"][-1]["failed"] == after["failed"] + 1


def test_created_jobs_take_their_place_in_the_listing_page_by_page(server):
    world = server.world
    with _client(server) as client:
        ids = [
            client.post("/v1/jobs", json={"video_url": f"https://x.example/{n}-5s.mp4"}).json()["id"] for n in range(3)
        ]
        httpx.post(server.base_url + "/_sim/clock", json={"advance_seconds": 5400})  # generated jobs come after them
        ids.append(client.post("/v1/jobs", json={"video_url": "https://x.example/late-5s.mp4"}).json()["id"])
        for job_id in ids:
            _settle(client, job_id)
        truth = world.jobs(KEY)
        for status in (None, "completed"):
            params = {"status": status} if status else {}
            expected = [j for j in truth if status is None or j["status"] == status]
            pages, offset = [], 0
            while True:
                page = client.get("/v1/jobs", params={"limit": 7, "offset": offset, **params}).json()
                assert page["total"] == len(expected)
                pages += page["items"]
                offset += 7
                if offset >= page["total"] or offset > 70:
                    break
            assert [j["id"] for j in pages] == [j["id"] for j in expected[: len(pages)]]
        positions = [j["id"] for j in truth].index
        assert positions(ids[3]) < positions(ids[0])  # newer first, generated jobs of the last hour between them
        assert 0 < positions(ids[0]) - positions(ids[3]) - 1  # some generated jobs came in between


def test_uploads_and_starting_a_job(server):
    with _client(server) as client:
        upload = client.post("/v1/uploads", files={"file": ("my clip.mp4", b"\0" * 2_000_000, "video/mp4")})
        assert upload.status_code == 201
        body = upload.json()
        assert body["size_bytes"] == 2_000_000 and body["filename"] == "my_clip.mp4"
        job = client.post("/v1/jobs", json={"video_url": body["video_url"], "model": "light", "auto_start": False})
        job_id = job.json()["id"]
        time.sleep(0.3)
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "pending"  # waits for its start
        started = client.post(f"/v1/jobs/{job_id}/start")
        assert started.status_code == 200
        done = _settle(client, job_id)
        assert done["duration_seconds"] == 8.0 and done["credits"] == 6.0  # 2 MB at 250 kB per second, light
        again = client.post(f"/v1/jobs/{job_id}/start")
        assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_request"
        assert client.post("/v1/jobs/job_nope/start").status_code == 404
        no_file = client.post("/v1/uploads", files={"other": ("a.txt", b"x", "text/plain")})
        assert no_file.status_code == 400 and "'file'" in no_file.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "'video_url' is required"),
        ({"video_url": "ftp://x/a.mp4"}, "http(s) URL"),
        ({"video_url": "https://x/a.mp4", "model": "ultra"}, "'model' must be one of"),
        ({"video_url": "https://x/a.mp4", "output_format": "avi"}, "'output_format' must be one of"),
        ({"video_url": "https://x/a.mp4", "auto_start": "yes"}, "'auto_start' must be true or false"),
        ({"video_url": "https://x/a.mp4", "metadata": {"x": "y" * 5000}}, "'metadata' must be an object"),
    ],
)
def test_bad_job_requests_get_the_documented_error_shape(server, body, message):
    with _client(server) as client:
        answer = client.post("/v1/jobs", json=body)
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["code"] == "invalid_request" and message in error["message"]
    assert error["request_id"] == answer.headers["x-request-id"]


def test_admin_actions_change_the_key_state(server):
    world = server.world
    spec = world.key(KEY)
    base = server.base_url
    assert httpx.get(base + "/v1/admin/config").json()["error"]["code"] == "invalid_admin_token"
    enabled = sum(k["enabled"] for k in world.truth()["keys"])
    assert httpx.get(base + "/v1/admin/config", headers=ADMIN).json()["enabled_keys"] == enabled
    off = httpx.post(base + "/v1/admin/keys/disable", json={"key_fingerprint": spec.fingerprint}, headers=ADMIN)
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert httpx.get(base + "/v1/admin/config", headers=ADMIN).json()["enabled_keys"] == enabled - 1
    with _client(server) as client:
        refused = client.get("/v1/usage/summary")
        assert refused.status_code == 401 and refused.json()["error"]["message"] == "API key is disabled"
        # its traffic stops from the next whole hour: three hours on, the key was last used before 13:00
        httpx.post(base + "/_sim/clock", json={"advance_seconds": 3 * 3600})
        assert world.last_used(KEY) < datetime(2026, 11, 20, 13, tzinfo=UTC)
        httpx.post(base + "/v1/admin/keys/enable", json={"key_fingerprint": spec.fingerprint}, headers=ADMIN)
        assert client.get("/v1/usage/summary").status_code == 200
    missing = httpx.post(base + "/v1/admin/keys/disable", json={"key_fingerprint": "0" * 16}, headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    created = httpx.post(base + "/v1/admin/keys", json={"client_id": spec.client_id, "note": "rotation",
                                                       "name": "api-gateway-v2-prod"}, headers=ADMIN)  # fmt: skip
    assert created.status_code == 201
    secret = created.json()["secret"]
    listed = {k["name"]: k for k in httpx.get(base + "/v1/admin/keys", headers=ADMIN).json()["items"]}
    assert listed["api-gateway-v2-prod"]["key_fingerprint"] == created.json()["key_fingerprint"]
    assert secret not in httpx.get(base + "/v1/admin/keys", headers=ADMIN).text  # shown once, never listed
    assert httpx.get(base + "/v1/jobs", headers={"X-Api-Key": secret}).json()["total"] == 0
    twice = httpx.post(base + "/v1/admin/keys", json={"client_id": "c", "name": "api-gateway-v2-prod"}, headers=ADMIN)
    assert twice.status_code == 409


def _script(base: str, secret: str) -> list:
    """The same writes against a world: what they answered (ids, charges, secrets)."""
    out = []
    with httpx.Client(base_url=base, headers={"X-Api-Key": secret}) as client:
        for url in ("https://x.example/a-7s.mp4", "https://b.invalid/x.mp4"):
            job = _settle(client, client.post("/v1/jobs", json={"video_url": url}).json()["id"])
            out.append({**job, "output_url": (job["output_url"] or "").replace(base, "<stand-in>")})
    out.append(httpx.post(base + "/v1/admin/keys", json={"client_id": "c1"}, headers=ADMIN).json())
    return out


def test_writes_are_deterministic_and_other_keys_answer_byte_for_byte_as_before():
    fresh = start_server(World(seed=7, n_keys=30, days=30, now=NOW))
    first = start_server(World(seed=7, n_keys=30, days=30, now=NOW))
    second = start_server(World(seed=7, n_keys=30, days=30, now=NOW))
    try:
        secret = first.world.key(KEY).secret
        assert _script(first.base_url, secret) == _script(second.base_url, secret)
        other = fresh.world.key("prod-main").secret
        for path, params in (("/v1/usage/summary", {"days": 30}), ("/v1/usage/events", {"limit": 100}),
                             ("/v1/jobs", {"limit": 100})):  # fmt: skip
            bodies = [
                httpx.get(s.base_url + path, params=params, headers={"X-Api-Key": other}).content
                for s in (fresh, first)
            ]
            assert bodies[0] == bodies[1], path
    finally:
        for handle in (fresh, first, second):
            handle.stop()


def test_live_settings_are_validated(server):
    bad = httpx.post(server.base_url + "/_sim/live", json={"charge_multiplier": -1})
    assert bad.status_code == 400
    unknown = httpx.post(server.base_url + "/_sim/live", json={"key_name": "nobody"})
    assert unknown.status_code == 400
    ok = httpx.post(
        server.base_url + "/_sim/live", json={"items": [{"speed": 50}, {"key_name": KEY, "missing_output": True}]}
    )
    assert ok.status_code == 200 and len(ok.json()["items"]) == 2
