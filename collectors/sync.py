"""One sync path: fetch every selected endpoint for every key concurrently, write outcomes in batches."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from collectors import contract
from collectors.endpoints import ENDPOINTS, FetchContext, Outcome
from collectors.http_client import ApiClient, ApiError, RetryPolicy
from config import Config, KeyConfig
from store import write_transaction, writes
from store.collector_state import load_collector_state

if TYPE_CHECKING:  # the transport is the test seam; only collectors.http_client does HTTP
    import httpx

log = logging.getLogger("collectors.sync")

PER_KEY_ORDER = ("summary", "events", "jobs")
# The status of an endpoint whose response was landed but every record of it was quarantined.
UNREADABLE = "unreadable"
# Each write transaction costs a fixed ~0.3 s (open, commit, checkpoint on close) on top of its rows, so
# fewer, larger ones are cheaper (1,000-key first collection: writer CPU 6.6 s at 0.25 s, 3.6 s at 3 s).
FLUSH_INTERVAL_S = 1.0


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class RunSummary:
    run_id: int
    status: str
    keys_total: int
    keys_ok: int
    requests: int
    retries: int
    rows_written: int
    failures: list[str]
    seconds: float

    def line(self) -> str:
        failed = (
            f", {len(self.failures)} failed ({'; '.join(self.failures[:3])}"
            + (", …)" if len(self.failures) > 3 else ")")
            if self.failures
            else ""
        )
        return (
            f"run {self.run_id} {self.status}: {self.keys_ok}/{self.keys_total} keys ok, "
            f"{self.requests} requests, {self.retries} retries, {self.rows_written} rows changed"
            f"{failed} in {self.seconds:.1f}s"
        )


def registry_rows(keys: Sequence[KeyConfig]) -> list[dict[str, object]]:
    return [
        {
            "key_name": k.name,
            "environment": k.environment,
            "owner": k.owner,
            "owner_status": k.owner_status,
            "fingerprint": k.fingerprint,
            "masked_key": k.masked,
            "created_at": k.created_at,
            "rotated_at": k.rotated_at,
        }
        for k in keys
    ]


class _Writer:
    """Serializes all writes of a run into short batched transactions (the file lock is held briefly)."""

    def __init__(self, db_path: Path, run_id: int) -> None:
        self.db_path, self.run_id = db_path, run_id
        self.pending: list[Outcome] = []
        self.rows_written = 0
        self._lock = asyncio.Lock()

    async def flush(self) -> None:
        async with self._lock:
            batch, self.pending = self.pending, []
            if batch:
                self.rows_written += await asyncio.to_thread(self._write, batch)

    def _write(self, outcomes: list[Outcome]) -> int:
        # One statement per table for the whole batch: per-key statements cost more than the HTTP.
        changed = 0
        batch = writes.Batch()
        landings: list[dict[str, object]] = []
        run_items: list[dict[str, object]] = []
        for outcome in outcomes:
            fingerprint = outcome.key.fingerprint if outcome.key else None
            landings += [
                {
                    "endpoint": landing.endpoint,
                    "key_name": outcome.key_name,
                    "key_fingerprint": fingerprint,
                    "request_id": landing.request_id,
                    "http_status": landing.http_status,
                    "body": landing.body,
                }
                for landing in outcome.landings
            ]
            if outcome.apply is not None and outcome.status == "ok":
                outcome.apply(batch)
            run_items.append(
                {
                    "key_name": outcome.key_name,
                    "endpoint": outcome.endpoint,
                    "status": outcome.status,
                    "attempts": outcome.attempts,
                    "error_code": outcome.error_code,
                    "message": outcome.message,
                    "request_id": outcome.request_id,
                }
            )
        with write_transaction(self.db_path) as con:
            now = utc_now()
            writes.land_raw(con, [dict(landing, fetched_at=now) for landing in landings])
            for outcome in outcomes:
                for reason, record, request_id in outcome.rejects:
                    changed += writes.quarantine(
                        con,
                        endpoint=outcome.endpoint,
                        key_name=outcome.key_name,
                        fetched_at=now,
                        request_id=request_id,
                        reason=reason,
                        record=record,
                    )
            changed += batch.write(con, now)
            writes.record_run_items(con, self.run_id, run_items, now)
        return changed


async def _run_endpoint(ctx: FetchContext, name: str, key: KeyConfig | None) -> Outcome:
    outcome = Outcome(endpoint=name, key=key)
    try:
        await ENDPOINTS[name].fetch(ctx, outcome)
    except ApiError as exc:
        outcome.status, outcome.error_code, outcome.message = "failed", exc.code, str(exc)
        outcome.request_id = exc.request_id or outcome.request_id
    except contract.ContractError as exc:
        outcome.status, outcome.error_code, outcome.message = "failed", "contract", str(exc)
        landed = outcome.landings[-1].body if outcome.landings else None
        outcome.rejects.append((f"{name}: {exc}", landed, outcome.request_id))
    else:
        if outcome.rejected and not outcome.parsed:
            # Every record was quarantined: nothing is written and the cursor stays, so the run is not "ok".
            first = outcome.rejects[0][0]
            outcome.status, outcome.error_code = UNREADABLE, UNREADABLE
            outcome.message = f"all {outcome.rejected} record(s) quarantined, e.g. {first}"
    return outcome


async def collect(
    config: Config,
    db_path: str | Path,
    *,
    endpoints: Sequence[str] = ("pricing", "admin", *PER_KEY_ORDER),
    mode: str = "once",
    transport: httpx.AsyncBaseTransport | None = None,
    now: Callable[[], datetime] = utc_now,
    progress: Callable[[str], None] | None = None,
    only_keys: Sequence[str] | None = None,
) -> RunSummary:
    """Collect the selected endpoints for every configured key (or only the keys named in `only_keys`, as after
    a smoke check); one failing key never stops the rest."""
    started = time.monotonic()
    db_path = Path(db_path)
    settings = config.collector
    selected = [e for e in endpoints if ENDPOINTS[e].enabled(config)]
    chosen = [k for k in config.keys if only_keys is None or k.name in only_keys]
    with write_transaction(db_path) as con:
        writes.sync_key_registry(con, registry_rows(config.keys), now())
        run_id = writes.start_run(con, mode=mode, endpoints=",".join(selected), keys_total=len(chosen), now=now())
    state = load_collector_state(db_path, [k.name for k in chosen], with_jobs="jobs" in selected)
    writer = _Writer(db_path, run_id)
    failures: list[str] = []
    keys_done = 0
    keys_ok = 0
    client = ApiClient(
        config.base_url,
        concurrency=settings.concurrency,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        retry=RetryPolicy(settings.max_attempts, settings.backoff_scale),
        transport=transport,
    )
    ctx = FetchContext(client=client, config=config, state=state, now=now)

    def record(outcome: Outcome) -> None:
        writer.pending.append(outcome)
        if outcome.status != "ok":
            failures.append(f"{outcome.key_name} {outcome.endpoint}: {outcome.error_code}")
            log.warning("%s %s failed: %s", outcome.key_name, outcome.endpoint, outcome.message)

    async def one_key(key: KeyConfig) -> None:
        nonlocal keys_done, keys_ok
        ok = True
        for name in (e for e in PER_KEY_ORDER if e in selected):
            outcome = await _run_endpoint(ctx, name, key)
            record(outcome)
            ok = ok and outcome.status == "ok"
            if outcome.error_code == "invalid_api_key":
                break  # the key itself is rejected: its other endpoints would fail the same way
        keys_done += 1
        keys_ok += ok

    async def global_endpoint(name: str) -> None:
        record(await _run_endpoint(ctx, name, None))

    async def flusher(stop: asyncio.Event) -> None:
        last_report = time.monotonic()
        while not stop.is_set():
            # Flushes start at most every FLUSH_INTERVAL_S, and back to back while the writer lags, so
            # what is left to write when the last response arrives is one flush's worth, not more.
            started_at = time.monotonic()
            await writer.flush()
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, FLUSH_INTERVAL_S - (time.monotonic() - started_at)))
            except TimeoutError:
                pass
            if progress and time.monotonic() - last_report >= 2.0:
                last_report = time.monotonic()
                progress(
                    f"keys {keys_done}/{len(chosen)} done, {client.stats.requests} requests, "
                    f"{client.stats.retries} retries"
                )

    stop = asyncio.Event()
    flush_task = asyncio.create_task(flusher(stop))
    status = "failed"
    try:
        async with client:
            tasks = [global_endpoint(n) for n in selected if not ENDPOINTS[n].per_key]
            tasks += [one_key(k) for k in chosen]
            await asyncio.gather(*tasks)
        status = "ok" if not failures else ("partial" if keys_ok or len(failures) < len(tasks) else "failed")
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    finally:
        stop.set()
        try:
            await flush_task
            await writer.flush()
        except asyncio.CancelledError:
            # Cancelled again while closing (asyncio.run's teardown cancels the flusher too): rows not yet
            # written are fetched again next run, since cursors only advance with their rows.
            status = "cancelled"
            raise
        finally:
            summary = RunSummary(
                run_id,
                status,
                len(chosen),
                keys_ok,
                client.stats.requests,
                client.stats.retries,
                writer.rows_written,
                failures,
                time.monotonic() - started,
            )
            with write_transaction(db_path) as con:
                writes.finish_run(
                    con,
                    run_id,
                    status=status,
                    keys_ok=keys_ok,
                    requests=client.stats.requests,
                    retries=client.stats.retries,
                    rows_written=writer.rows_written,
                    message=json.dumps(failures[:50]) if failures else None,
                    now=now(),
                )
    return summary


def prune_store(config: Config, db_path: str | Path, now: datetime | None = None) -> int:
    """Apply the configured retention to raw landings and events."""
    raw_before, events_before = writes.retention_cutoffs(
        now or utc_now(), config.collector.raw_retention_days, config.collector.events_retention_days
    )
    with write_transaction(db_path) as con:
        return writes.prune(con, raw_before=raw_before, events_before=events_before)
