"""The endpoints we collect, described as data, and how each turns responses into a store write.

Every fetch returns an Outcome whose `apply` runs inside one write transaction together with
the endpoint's new cursor, so rows and the high-water mark always advance together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from collectors import contract
from collectors.http_client import ApiClient, ApiError, ApiResponse
from config import Config, KeyConfig
from store import writes
from store.collector_state import CollectorState
from store.landing import PackedBody, pack_body, unpack_body


@dataclass
class Landing:
    endpoint: str
    request_id: str | None
    http_status: int | None
    body: PackedBody  # compressed as it arrives: most of what a run holds while it waits to be written

    @property
    def text(self) -> str | None:
        return unpack_body(self.body.zstd)


@dataclass
class Outcome:
    """What one endpoint fetch for one key (or globally) produced; written in one transaction."""

    endpoint: str
    key: KeyConfig | None
    status: str = "ok"
    attempts: int = 0
    requests: int = 0
    error_code: str | None = None
    message: str | None = None
    request_id: str | None = None
    landings: list[Landing] = field(default_factory=list)
    rejects: list[tuple[str, Any, str | None]] = field(default_factory=list)
    apply: Callable[[writes.Batch], None] | None = None
    # Records the contract accepted and rejected: an endpoint whose records were all rejected is unreadable.
    parsed: int = 0
    rejected: int = 0
    # The admin inventory as read (the run learns which keys are disabled upstream before polling them).
    inventory: list[contract.InventoryKey] | None = None

    @property
    def key_name(self) -> str:
        return self.key.name if self.key else "*"


@dataclass(frozen=True)
class FetchContext:
    client: ApiClient
    config: Config
    state: CollectorState
    now: Callable[[], datetime]


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    per_key: bool
    fetch: Callable[[FetchContext, Outcome], Awaitable[None]]
    enabled: Callable[[Config], bool] = lambda config: True


class _Request:
    """Issue one GET for an outcome: count it, land its body, keep its request id."""

    def __init__(self, ctx: FetchContext, outcome: Outcome) -> None:
        self.ctx, self.outcome = ctx, outcome

    async def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        endpoint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        key = self.outcome.key
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["X-Api-Key"] = key.secret
        label = f"[{self.outcome.key_name} {self.outcome.endpoint}]"
        try:
            response = await self.ctx.client.get_json(path, params=params, headers=all_headers, label=label)
        except ApiError as exc:
            self.outcome.attempts += exc.attempts
            self.outcome.requests += 1
            if exc.text is not None:
                self.outcome.landings.append(
                    Landing(endpoint or self.outcome.endpoint, exc.request_id, exc.status, pack_body(exc.text))
                )
            raise
        self.outcome.attempts += response.attempts
        self.outcome.requests += 1
        self.outcome.request_id = response.request_id
        self.outcome.landings.append(
            Landing(
                endpoint or self.outcome.endpoint,
                response.request_id,
                response.status,
                pack_body(response.text),
            )
        )
        return response

    def records(self, parsed: int, rejects: list[contract.Reject], request_id: str | None) -> None:
        """Count what one body gave, and send its rejects to quarantine."""
        self.outcome.parsed += parsed
        self.outcome.rejected += len(rejects)
        self.outcome.rejects.extend((reason, record, request_id) for reason, record in rejects)


async def fetch_pricing(ctx: FetchContext, outcome: Outcome) -> None:
    req = _Request(ctx, outcome)
    response = await req.get("/api/pricing")
    rates, rejects = contract.parse_pricing(response.body)
    req.records(len(rates), rejects, response.request_id)
    outcome.apply = lambda batch: batch.snapshots.append((writes.upsert_pricing, (rates,)))


async def fetch_admin(ctx: FetchContext, outcome: Outcome) -> None:
    req = _Request(ctx, outcome)
    response = await req.get("/v1/admin/keys", headers={"X-Admin-Token": ctx.config.admin_token or ""})
    rows, rejects = contract.parse_inventory(response.body)
    req.records(len(rows), rejects, response.request_id)
    outcome.inventory = rows
    outcome.apply = lambda batch: batch.snapshots.append((writes.replace_inventory, (rows,)))


async def fetch_summary(ctx: FetchContext, outcome: Outcome) -> None:
    """Backfill the full window for a key new to the store, then refresh only the last few days."""
    key, settings = outcome.key, ctx.config.collector
    assert key is not None
    today = ctx.now().date()
    cursor = ctx.state.cursor(key.name, "summary")
    if cursor and cursor.get("last_day"):
        since = (today - date.fromisoformat(cursor["last_day"])).days
        days = min(settings.summary_backfill_days, max(1, since + settings.summary_refresh_days))
    else:
        days = settings.summary_backfill_days
    req = _Request(ctx, outcome)
    response = await req.get("/v1/usage/summary", {"days": days})
    rows, rejects = contract.parse_summary(response.body)
    req.records(len(rows), rejects, response.request_id)
    # The response covered every day up to today, so the next cycle only refreshes from here.
    new_cursor = {"last_day": today.isoformat()}

    table = writes.key_records("daily", key.name, rows)

    def apply(batch: writes.Batch) -> None:
        batch.daily.append(table)
        batch.cursors.append((key.name, "summary", new_cursor))

    outcome.apply = apply


async def fetch_events(ctx: FetchContext, outcome: Outcome) -> None:
    """Poll the newest events; if the 100-event window no longer reaches our high-water mark, record a gap."""
    key, limit = outcome.key, ctx.config.collector.events_limit
    assert key is not None
    req = _Request(ctx, outcome)
    response = await req.get("/v1/usage/events", {"limit": limit})
    events, rejects = contract.parse_events(response.body)
    req.records(len(events), rejects, response.request_id)
    # Distinct ids: a response that repeats an event must not look like a full window.
    raw_count = len({e.event_id for e in events}) + len(rejects)
    cursor = ctx.state.cursor(key.name, "events") or {}
    newest_seen = datetime.fromisoformat(cursor["newest_at"]) if cursor.get("newest_at") else None
    gap: tuple[datetime, datetime] | None = None
    if events and newest_seen is not None and raw_count >= limit:
        oldest = min(e.occurred_at for e in events)
        if oldest > newest_seen:
            gap = (newest_seen, oldest)
    new_cursor = dict(cursor)
    if events:
        newest = max(e.occurred_at for e in events)
        if newest_seen is None or newest >= newest_seen:
            new_cursor["newest_at"] = newest.isoformat()
        new_cursor.setdefault("covered_since", min(e.occurred_at for e in events).isoformat())
    elif not cursor:
        new_cursor["covered_since"] = ctx.now().isoformat(timespec="seconds")

    table = writes.key_records("events", key.name, events)

    def apply(batch: writes.Batch) -> None:
        batch.events.append(table)
        if gap:
            batch.gaps.append((key.name, "events", gap[0], gap[1]))
        batch.cursors.append((key.name, "events", new_cursor))

    outcome.apply = apply


async def fetch_jobs(ctx: FetchContext, outcome: Outcome) -> None:
    """Page newest-first until a page holds only known jobs, then re-poll the unsettled ones not seen.

    Jobs only ever arrive at the head of the newest-first list, so once a whole page is known
    everything older is known too; its unsettled jobs are refreshed one by one below. A key's
    first collection may be capped at `max_job_pages_first_run` pages (older history skipped).
    """
    settings = ctx.config.collector
    key, page_size = outcome.key, settings.jobs_page_size
    assert key is not None
    known = ctx.state.jobs_of(key.name)
    cursor = ctx.state.cursor(key.name, "jobs") or {}
    backfilled = bool(cursor.get("complete"))
    page_cap = 0 if backfilled else settings.max_job_pages_first_run
    req = _Request(ctx, outcome)
    seen: dict[str, contract.Job] = {}
    offset, total, pages, capped = 0, None, 0, False
    while True:
        response = await req.get("/v1/jobs", {"limit": page_size, "offset": offset})
        pages += 1
        page, rejects = contract.parse_jobs_page(response.body)
        req.records(len(page.jobs), rejects, response.request_id)
        for job in page.jobs:
            seen[job.job_id] = job
        total = page.total if page.total is not None else total
        all_known = bool(page.jobs) and all(job.job_id in known for job in page.jobs)
        if page.item_count < page_size or (total is not None and offset + page_size >= total):
            break
        if backfilled and all_known:
            break
        if page_cap and pages >= page_cap:
            capped = True
            break
        offset += page_size
    unsettled = [
        job_id
        for job_id, status in known.items()
        if status not in contract.TERMINAL_JOB_STATUSES and job_id not in seen
    ]
    for job_id in unsettled:
        try:
            # An upstream id is data, not a path: "../x" or "a?b" must not reach another route.
            response = await req.get(f"/v1/jobs/{quote(job_id, safe='')}", endpoint="job_detail")
        except ApiError as exc:
            if exc.status == 404:
                outcome.rejects.append((f"job {job_id} no longer listed (404)", {"id": job_id}, exc.request_id))
                continue
            raise
        jobs, rejects = contract.parse_job_detail(response.body)
        req.records(len(jobs), rejects, response.request_id)
        for job in jobs:
            seen[job.job_id] = job
    new_cursor: dict[str, object] = {"complete": True, "total": total}
    if capped or "history_pages" in cursor:
        # Kept in the cursor so the store says the job history held is deliberately partial.
        new_cursor["history_pages"] = pages if capped else cursor["history_pages"]
    table = writes.key_records("jobs", key.name, list(seen.values()))

    def apply(batch: writes.Batch) -> None:
        batch.jobs.append(table)
        batch.cursors.append((key.name, "jobs", new_cursor))

    outcome.apply = apply


ENDPOINTS: dict[str, Endpoint] = {
    endpoint.name: endpoint
    for endpoint in (
        Endpoint("pricing", "/api/pricing", per_key=False, fetch=fetch_pricing),
        Endpoint(
            "admin", "/v1/admin/keys", per_key=False, fetch=fetch_admin, enabled=lambda config: bool(config.admin_token)
        ),
        Endpoint("summary", "/v1/usage/summary", per_key=True, fetch=fetch_summary),
        Endpoint("events", "/v1/usage/events", per_key=True, fetch=fetch_events),
        Endpoint("jobs", "/v1/jobs", per_key=True, fetch=fetch_jobs),
    )
}
