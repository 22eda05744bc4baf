"""The stand-in API over loopback: wire contract, determinism, truth, faults, CLI and file writers."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from simulator.config_writer import write_config
from simulator.faults import FaultSpec
from simulator.ledger import write_ledger
from simulator.server import start_server
from simulator.world import World

ANCHOR = datetime(2026, 3, 18, 18, 30, tzinfo=UTC)  # a Wednesday, US-east business hours
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, n_keys=30, days=90, now=ANCHOR)


@pytest.fixture(scope="module")
def server(world: World):
    handle = start_server(world)
    yield handle
    handle.stop()


def client(server, key: str | None = None, world: World | None = None, **kw) -> httpx.Client:
    headers = {"X-Api-Key": (world or server.world).key(key).secret} if key else {}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=10, **kw)


def test_health_pricing_and_unknown_path(server) -> None:
    with client(server) as c:
        health = c.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert health.headers["x-request-id"].startswith("req_")
        pricing = c.get("/api/pricing").json()
        rates = {m["model"]: m["credits_per_minute"] for m in pricing["models"]}
        assert pricing["unit"] == "credits_per_minute"
        assert rates == {"original": 60, "light": 45, "pro": 180, "human": 45}
        missing = c.get("/v2/nothing")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_auth_errors_carry_request_id(server, world: World) -> None:
    with client(server) as c:
        for headers in ({}, {"X-Api-Key": "rbv_" + "0" * 32}, {"X-Api-Key": world.key("checkout-prod").secret}):
            r = c.get("/v1/usage/summary", headers=headers)
            assert r.status_code == 401
            err = r.json()["error"]
            assert err["code"] == "invalid_api_key" and err["message"]
            assert err["request_id"] == r.headers["x-request-id"]
    with client(server, "dev-local") as c:
        for path in ("/v1/usage/summary?days=0", "/v1/usage/summary?days=91", "/v1/usage/events?limit=101",
                     "/v1/jobs?offset=-1", "/v1/jobs?status=done", "/v1/jobs?limit=x"):  # fmt: skip
            r = c.get(path)
            assert r.status_code == 400, path
            assert r.json()["error"]["code"] == "invalid_request"


def test_same_seed_same_bytes_other_seed_differs(server, world: World) -> None:
    twin = start_server(World(seed=7, n_keys=30, days=90, now=ANCHOR))
    other = World(seed=8, n_keys=30, days=90, now=ANCHOR)
    try:
        paths = ("/v1/usage/summary?days=90", "/v1/usage/events?limit=100", "/v1/jobs?limit=100&offset=50")
        with client(server, "prod-main") as a, client(twin, "prod-main") as b:
            for path in paths:
                assert a.get(path).content == b.get(path).content
        assert other.key("prod-main").secret != world.key("prod-main").secret
        assert other.summary("prod-main", 30) != world.summary("prod-main", 30)
    finally:
        twin.stop()


def test_summary_totals_match_daily_and_truth(server, world: World) -> None:
    for name in ("api-gateway-prod", "staging-main", "reports-prod", "key-new", "dev-carol"):
        with client(server, name) as c:
            body = c.get("/v1/usage/summary", params={"days": 90}).json()
        daily = body["daily"]
        assert body["days"] == 90 and len(daily) <= 90
        assert [d["date"] for d in daily] == sorted(d["date"] for d in daily)
        assert daily[-1]["date"] == ANCHOR.date().isoformat()
        for field in ("calls", "jobs", "failed"):
            assert body["totals"][field] == sum(d[field] for d in daily)
        assert body["totals"]["credits"] == pytest.approx(sum(d["credits"] for d in daily), abs=0.01)
        truth = {d["date"]: d for d in world.daily_usage(name)}
        assert all(truth[d["date"]] == d for d in daily)
    with client(server, "staging-main") as c:
        assert len(c.get("/v1/usage/summary").json()["daily"]) == 7


def test_events_newest_first_and_match_truth(server, world: World) -> None:
    with client(server, "api-gateway-prod") as c:
        items = c.get("/v1/usage/events", params={"limit": 100}).json()["items"]
        assert len(c.get("/v1/usage/events").json()["items"]) == 20
    assert len(items) == 100
    stamps = [e["created_at"] for e in items]
    assert stamps == sorted(stamps, reverse=True) and stamps[0] <= "2026-03-18T18:30:00.000Z"
    assert len({e["id"] for e in items}) == 100 and len({e["request_id"] for e in items}) == 100
    truth = world.events("api-gateway-prod", since=ANCHOR - timedelta(hours=3))
    assert items == truth[:100]
    kinds = {(e["method"], e["endpoint"].split("/job_")[0]) for e in truth}
    assert ("POST", "/v1/jobs") in kinds and ("GET", "/v1/jobs") in kinds
    submits = [e for e in truth if e["method"] == "POST" and e["endpoint"] == "/v1/jobs"]
    assert 0.03 < len(submits) / len(truth) < 0.2
    assert any(e["status_code"] >= 400 for e in truth)
    for e in submits:
        if e["status_code"] == 200:
            assert e["job_id"].startswith("job_") and e["model"]
        else:
            assert e["job_id"] is None and e["credits"] == 0


def test_jobs_paging_covers_everything(server, world: World) -> None:
    seen: list[dict] = []
    with client(server, "dev-local") as c:
        offset = 0
        while True:
            page = c.get("/v1/jobs", params={"limit": 100, "offset": offset}).json()
            assert page["limit"] == 100 and page["offset"] == offset
            seen += page["items"]
            offset += 100
            if offset >= page["total"]:
                break
        truth = world.jobs("dev-local")
        assert page["total"] == len(truth) == len(seen)
        assert seen == truth
        keys = [(j["created_at"], j["id"]) for j in seen]
        assert keys == sorted(keys, reverse=True)
        one = c.get(f"/v1/jobs/{seen[5]['id']}")
        assert one.status_code == 200 and one.json() == seen[5]
        foreign = world.jobs("staging-main")[0]["id"]
        assert c.get(f"/v1/jobs/{foreign}").status_code == 404
        failed = c.get("/v1/jobs", params={"status": "failed", "limit": 100}).json()
        assert failed["total"] == sum(j["status"] == "failed" for j in truth)
        assert all(j["status"] == "failed" for j in failed["items"])
    job = seen[0]
    assert set(job) == {"id", "status", "progress", "output_url", "error", "created_at", "duration_seconds",
                        "billing_status", "model", "output_format", "credits"}  # fmt: skip
    assert world.daily_usage("dev-local")[-1]["jobs"] == sum(j["created_at"][:10] == "2026-03-18" for j in truth)


def test_pending_jobs_settle_when_clock_advances() -> None:
    world = World(seed=7, n_keys=30, days=90, now=ANCHOR)
    with start_server(world) as srv:
        found = []
        for name in ("api-gateway-prod", "dev-alice", "prod-main", "video-pipeline-prod"):
            with client(srv, name) as c:
                for status in ("pending", "processing"):
                    found += [(name, j) for j in c.get("/v1/jobs", params={"status": status}).json()["items"]]
        assert found, "a busy world has jobs in flight"
        for _, job in found:
            assert job["billing_status"] == "pending" and job["credits"] == 0 and job["output_url"] is None
        before = world.summary(found[0][0], 1)["totals"]["credits"]
        with client(srv) as c:
            assert c.post("/_sim/clock", json={"advance_seconds": 900}).json()["now"] == "2026-03-18T18:45:00.000Z"
        for name, job in found:
            with client(srv, name) as c:
                now = c.get(f"/v1/jobs/{job['id']}").json()
            assert now["status"] in ("completed", "failed") and now["billing_status"] != "pending"
            if now["status"] == "completed":
                assert now["progress"] == 100 and f"/out/{now['id']}." in now["output_url"]
        assert world.summary(found[0][0], 1)["totals"]["credits"] > before


def test_faults_are_observable() -> None:
    world = World(seed=7, n_keys=30, days=90, now=ANCHOR)
    with start_server(world, faults=FaultSpec(rate429=1.0)) as srv, client(srv, "dev-local") as c:
        r = c.get("/v1/usage/summary")
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "rate_limited"
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
        assert c.get("/_sim/truth").status_code == 200  # control endpoints never fault
        c.post("/_sim/faults", json={"rate429": 1.0, "retry_after": 0})
        assert c.get("/health").headers["retry-after"] == "0"
        c.post("/_sim/faults", json={"spec": "rate5xx=1"})
        r = c.get("/v1/jobs")
        assert r.status_code in (500, 502, 503) and r.json()["error"]["code"] == "internal_error"
        c.post("/_sim/faults", json={"malformed": 1.0})
        r = c.get("/v1/usage/events")
        assert r.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.content)
        c.post("/_sim/faults", json={"drop": 1.0})
        with pytest.raises(httpx.TransportError):
            c.get("/v1/usage/events")
        c.post("/_sim/faults", json={"timeout": 1.0, "timeout_s": 3})
        with pytest.raises(httpx.ReadTimeout):
            c.get("/v1/usage/events", timeout=0.3)
        c.post("/_sim/faults", json={"duplicated": 1.0})
        ids = [e["id"] for e in c.get("/v1/usage/events", params={"limit": 50}).json()["items"]]
        assert len(ids) > len(set(ids)) == 50
        c.post("/_sim/faults", json={"rate429": 0.5})
        codes = [c.get("/health").status_code for _ in range(60)]
        assert 10 < codes.count(429) < 50 and codes.count(200) + codes.count(429) == 60
        c.post("/_sim/faults", json={})
        assert c.get("/v1/usage/summary").status_code == 200


def test_admin_inventory(server, world: World) -> None:
    with client(server) as c:
        assert c.get("/v1/admin/keys", headers={"X-Admin-Token": "wrong"}).status_code == 401
        items = c.get("/v1/admin/keys", headers={"X-Admin-Token": "sim-admin-token"}).json()["items"]
    by_name = {i["name"]: i for i in items}
    assert len(items) == 30
    unmanaged = {k.name for k in world.keys() if not k.managed}
    assert unmanaged and unmanaged <= set(by_name)
    assert by_name["checkout-prod"]["enabled"] is False
    for k in world.keys():
        assert by_name[k.name]["key_fingerprint"] == hashlib.sha256(k.secret.encode()).hexdigest()[:16]
    assert by_name["key-new"]["last_used_at"] is None
    assert by_name["reports-prod"]["last_used_at"] < "2026-03-01"
    assert set(items[0]) == {"client_id", "name", "key_fingerprint", "note", "enabled", "created_at", "last_used_at"}


def test_billing_issues_visible_through_api(server, world: World) -> None:
    issues = world.billing_issues()
    categories = {i["category"] for i in issues}
    assert categories == {"overcharged", "undercharged", "failed_but_charged", "missing_output",
                          "duplicate_charge", "orphan_charge", "summary_mismatch"}  # fmt: skip
    both = [i["job_id"] for i in issues if i["category"] == "duplicate_charge"]
    assert set(both) & {i["job_id"] for i in issues if i["category"] == "failed_but_charged"}
    for issue in issues:
        with client(server, issue["key_name"]) as c:
            if issue["category"] == "summary_mismatch":
                daily = {d["date"]: d for d in c.get("/v1/usage/summary", params={"days": 90}).json()["daily"]}
                charged = {d["date"]: d for d in world.daily_usage(issue["key_name"], reported=False)}
                assert daily[issue["day"]]["credits"] == issue["charged_credits"]
                assert abs(daily[issue["day"]]["credits"] - charged[issue["day"]]["credits"]) > 1
                continue
            job = c.get(f"/v1/jobs/{issue['job_id']}")
            events = c.get("/v1/usage/events", params={"limit": 100}).json()["items"]
            charges = [e for e in events if e["job_id"] == issue["job_id"] and e["credits"] > 0]
            if issue["category"] == "orphan_charge":
                assert job.status_code == 404 and len(charges) == 1
                continue
            job = job.json()
            assert job["created_at"][:10] == issue["day"]
            expected = (
                job["duration_seconds"] / 60 * {"original": 60, "light": 45, "pro": 180, "human": 45}[job["model"]]
            )
            if issue["category"] == "failed_but_charged":
                assert job["status"] == "failed" and job["billing_status"] == "charged" and job["credits"] > 0
            elif issue["category"] == "missing_output":
                assert job["status"] == "completed" and job["output_url"] is None
            elif issue["category"] == "overcharged":
                assert job["credits"] > expected + 0.01
            elif issue["category"] == "undercharged":
                assert job["credits"] < expected - 0.01
            elif issue["category"] == "duplicate_charge":
                assert len(charges) == 2 and {e["id"] for e in charges} >= {issue["event_id"]}


def test_governance_truth_is_consistent_with_the_world(world: World) -> None:
    truth = world.governance_truth(ANCHOR)
    findings = {f for _, f in truth}
    assert findings == {"never_used", "inactive", "bad_name", "generic_name", "missing_owner", "env_mismatch",
                        "rotation_due", "rotation_overdue", "sandbox_in_prod", "staging_shape_drift",
                        "unmanaged_key", "disabled_upstream", "owner_offboarded"}  # fmt: skip
    keys = {k.name: k for k in world.keys()}
    stale_days = {"prod": 7, "staging": 14, "dev": 30}
    for name, finding in truth:
        k = keys[name]
        last = world.last_used(name)
        if finding == "never_used":
            assert last is None
        if finding == "inactive":
            assert ANCHOR - last > timedelta(days=stale_days[k.environment] + 4)
        if finding in ("rotation_due", "rotation_overdue"):
            age = (ANCHOR - (k.rotated_at or k.created_at)).days
            assert (
                (age > 95)
                if finding == "rotation_overdue"
                else (k.environment == "staging" and age > 18) or 35 < age < 85
            )
    for k in world.keys():
        if k.managed and "inactive" not in k.findings and "never_used" not in k.findings:
            assert ANCHOR - world.last_used(k.name) < timedelta(days=3), k.name
    week = lambda name: sum(d["calls"] for d in world.daily_usage(name)[-7:])  # noqa: E731
    busiest = max(week(k.name) for k in world.keys() if k.environment == "prod")
    assert week("dev-alice") >= 0.6 * busiest


def test_incidents_show_in_traffic(world: World) -> None:
    incidents = world.incidents()
    assert len(incidents) >= 8 and {i["metric"] for i in incidents} == {"calls", "failed_jobs", "credits"}
    for inc in incidents:
        if inc["metric"] != "calls":
            continue
        start, end = (datetime.fromisoformat(inc[t].replace("Z", "+00:00")) for t in ("start", "end"))
        during = len(world.events(inc["key_name"], start, end - timedelta(milliseconds=1)))
        week_before = len(
            world.events(inc["key_name"], start - timedelta(days=7), end - timedelta(days=7, milliseconds=1))
        )
        if inc["direction"] == "drop":
            assert during == 0 and week_before > 10
        else:
            assert during > 2.5 * week_before


def test_burst_overflows_the_events_window(server, world: World) -> None:
    with client(server, "image-resizer-staging") as c:
        newest = c.get("/v1/usage/events", params={"limit": 100}).json()["items"][0]
        calls = c.get("/v1/usage/summary", params={"days": 1}).json()["totals"]["calls"]
        added = c.post("/_sim/burst", json={"key_name": "image-resizer-staging", "calls": 300}).json()
        assert added["calls"] == 300
        items = c.get("/v1/usage/events", params={"limit": 100}).json()["items"]
        assert all(e["created_at"] > newest["created_at"] for e in items)
        assert newest["id"] not in {e["id"] for e in items}
        assert c.get("/v1/usage/summary", params={"days": 1}).json()["totals"]["calls"] == calls + 300


def test_async_client_keep_alive_and_concurrency(server, world: World) -> None:
    async def run() -> list[int]:
        headers = {"X-Api-Key": world.key("prod-main").secret}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10) as ac:
            paths = ["/v1/usage/events?limit=100", "/v1/jobs?limit=100", "/v1/usage/summary?days=90"] * 20
            responses = await asyncio.gather(*(ac.get(p) for p in paths))
            return [r.status_code for r in responses]

    assert set(asyncio.run(run())) == {200}


def test_write_config_lists_managed_keys_only(tmp_path: Path, world: World) -> None:
    path = write_config(world, tmp_path / "keys.toml", "http://127.0.0.1:9999")
    data = tomllib.loads(path.read_text())
    assert data["api"]["base_url"] == "http://127.0.0.1:9999"
    names = {k["name"] for k in data["keys"]}
    assert names == {k.name for k in world.keys() if k.managed}
    assert not names & {"partner-sync-prod", "analytics-export-prod"}
    by_name = {k["name"]: k for k in data["keys"]}
    assert "owner" not in by_name["export-service-prod"] and by_name["dev-carol"]["owner_status"] == "offboarded"
    assert by_name["search-staging"]["environment"] == "prod" and "rotated_at" not in by_name["webhooks-prod"]
    assert all(k["secret"].startswith("rbv_") and len(k["secret"]) == 36 for k in data["keys"])


def test_ledger_issues_are_recorded(tmp_path: Path, world: World) -> None:
    issues = write_ledger(world, tmp_path / "ledger.csv", ANCHOR, days=14)
    with (tmp_path / "ledger.csv").open() as fh:
        rows = {r["job_id"]: r for r in csv.DictReader(fh)}
    assert {i["category"] for i in issues} == {"missing_in_provider", "missing_in_ledger", "ledger_mismatch"}
    for issue in issues:
        provider = {j["id"]: j for j in world.jobs(issue["key_name"])}
        if issue["category"] == "missing_in_provider":
            assert issue["job_id"] in rows and issue["job_id"] not in provider
        elif issue["category"] == "missing_in_ledger":
            assert issue["job_id"] in provider and issue["job_id"] not in rows
        else:
            row, job = rows[issue["job_id"]], provider[issue["job_id"]]
            assert str(issue["ledger_value"]) == row[issue["field"]] and job[issue["field"]] == issue["provider_value"]
            assert str(job[issue["field"]]) != row[issue["field"]]
    assert world.ledger_issues(ANCHOR, days=14) == issues


def test_large_world_starts_fast() -> None:
    t0 = time.perf_counter()
    big = World(seed=3, n_keys=1000, days=90, now=ANCHOR)
    assert time.perf_counter() - t0 < 5
    names = [k.name for k in big.keys()]
    assert len(set(names)) == 1000
    t0 = time.perf_counter()
    name = names[500]
    big.summary(name, 90), big.recent_events(name, 100), big.jobs_page(name, 100, 0)
    assert time.perf_counter() - t0 < 2


def test_cli_bad_faults_exits_2_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "--faults", "rate429=lots", "--no-serve"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "rate429" in proc.stderr
