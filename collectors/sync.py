"""One sync path: fetch every selected endpoint for every key concurrently, write outcomes in batches.

What a run holds does not grow with the key count: keys are fed to a fixed pool of workers a group at a time
(each group's cursors and known jobs read from the store just before it is fetched, never the whole fleet's),
the outcomes waiting to be written are bounded (fetching pauses while the writer catches up), and so is each
batch written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from collectors import contract
from collectors.endpoints import ENDPOINTS, FetchContext, Outcome
from collectors.http_client import ApiClient, ApiError, RetryPolicy
from collectors.store_worker import PreparedBatch, StoreWorker, store_worker
from config import Config, KeyConfig
from store import write_transaction, writes
from store.collector_state import CollectorState

if TYPE_CHECKING:  # the transport is the test seam; only collectors.http_client does HTTP
    import httpx

log = logging.getLogger("collectors.sync")

PER_KEY_ORDER = ("summary", "events", "jobs")
# The status of an endpoint whose response was landed but every record of it was quarantined.
UNREADABLE = "unreadable"
# The status of a key the vendor's inventory lists as disabled, rejected as expected: not a failure.
DISABLED = "disabled"
# Each write transaction costs a fixed ~0.3 s (open, commit, checkpoint on close) on top of its rows, and
# the checkpoint of a table with a primary key grows with the table (its index is loaded and written back),
# so fewer, larger ones are cheaper (1,000-key first collection: writer CPU 6.6 s at 0.25 s, 3.6 s at 3 s).
# A flush starts once FLUSH_ROWS records are waiting, or FLUSH_INTERVAL_S after the previous one began
# when fewer are (so a small run still lands its rows within seconds).
FLUSH_INTERVAL_S = 1.0
FLUSH_ROWS = 50_000
# Fetching waits while more than this many records wait to be written: the bound on what a run holds.
MAX_PENDING_ROWS = 2 * FLUSH_ROWS
# Keys whose cursors and known jobs are read from the store at once, just before they are fetched.
STATE_GROUP_KEYS = 500


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
    keys_disabled: int = 0  # disabled upstream: rejected as expected, or not due to be tried again yet

    def line(self) -> str:
        failed = (
            f", {len(self.failures)} failed ({'; '.join(self.failures[:3])}"
            + (", …)" if len(self.failures) > 3 else ")")
            if self.failures
            else ""
        )
        return (
            f"run {self.run_id} {self.status}: {self.keys_ok}/{self.keys_total} keys ok, "
            + (f"{self.keys_disabled} disabled upstream (expected), " if self.keys_disabled else "")
            + f"{self.requests} requests, {self.retries} retries, {self.rows_written} rows changed"
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


def outcome_rows(outcome: Outcome) -> int:
    """What an outcome weighs while it waits to be written: its records, plus one for its bookkeeping."""
    return outcome.parsed + outcome.rejected + 1


class _Writer:
    """Serializes all writes of a run into batched transactions (the file lock is held briefly) on the run's
    store worker; `put` waits while too much is pending, which is what bounds a run's memory."""

    def __init__(self, store: StoreWorker, db_path: Path, run_id: int) -> None:
        self.store, self.db_path, self.run_id = store, db_path, run_id
        self.pending: list[Outcome] = []
        self.pending_rows = 0
        self.rows_written = 0
        self.closing = False
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()

    async def put(self, outcome: Outcome) -> None:
        async with self._changed:
            self.pending.append(outcome)
            self.pending_rows += outcome_rows(outcome)
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self.pending_rows <= MAX_PENDING_ROWS)

    async def wait_for_work(self, deadline: float) -> None:
        """Until FLUSH_ROWS are pending, `deadline` (monotonic) passes with something pending, or `close`."""
        async with self._changed:
            while not (self.closing or self.pending_rows >= FLUSH_ROWS):
                if not self.pending:
                    await self._changed.wait()
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    return

    async def close(self) -> None:
        """No more outcomes: the flusher stops waiting (the last flush is the caller's)."""
        async with self._changed:
            self.closing = True
            self._changed.notify_all()

    def _take_batch(self) -> list[Outcome]:
        """The oldest pending outcomes, about FLUSH_ROWS records: a batch's size does not depend on how far the
        writer lags (the store worker's memory follows its largest batch)."""
        rows = taken = 0
        while taken < len(self.pending) and rows < FLUSH_ROWS:
            rows += outcome_rows(self.pending[taken])
            taken += 1
        batch, self.pending = self.pending[:taken], self.pending[taken:]
        self.pending_rows -= rows
        return batch

    async def flush(self) -> None:
        """Write one batch of what is pending (see `_take_batch`)."""
        async with self._lock:
            async with self._changed:
                outcomes = self._take_batch()
                self._changed.notify_all()  # fetching resumes while this batch is written
            if outcomes:
                prepared = prepare(outcomes)
                del outcomes
                self.rows_written += await self.store.call("write", self.db_path, self.run_id, prepared)
            async with self._changed:
                self._changed.notify_all()


def prepare(outcomes: list[Outcome]) -> PreparedBatch:
    """Outcomes as one batch of plain data (keys reduced to their fingerprint): one statement per table for
    the whole batch, since per-key statements cost more than the HTTP."""
    prepared = PreparedBatch()
    for outcome in outcomes:
        fingerprint = outcome.key.fingerprint if outcome.key else None
        prepared.landings += [
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
        prepared.rejects += [
            {
                "endpoint": outcome.endpoint,
                "key_name": outcome.key_name,
                "request_id": request_id,
                "reason": reason,
                "record": record,
            }
            for reason, record, request_id in outcome.rejects
        ]
        if outcome.apply is not None and outcome.status == "ok":
            outcome.apply(prepared.batch)
        prepared.run_items.append(
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
    prepared.batch.compact()
    return prepared


async def _run_endpoint(ctx: FetchContext, name: str, key: KeyConfig | None) -> Outcome:
    outcome = Outcome(endpoint=name, key=key)
    try:
        await ENDPOINTS[name].fetch(ctx, outcome)
    except ApiError as exc:
        outcome.status, outcome.error_code, outcome.message = "failed", exc.code, str(exc)
        outcome.request_id = exc.request_id or outcome.request_id
    except contract.ContractError as exc:
        outcome.status, outcome.error_code, outcome.message = "failed", "contract", str(exc)
        landed = outcome.landings[-1].text if outcome.landings else None
        outcome.rejects.append((f"{name}: {exc}", landed, outcome.request_id))
    else:
        if outcome.rejected and not outcome.parsed:
            # Every record was quarantined: nothing is written and the cursor stays, so the run is not "ok".
            first = outcome.rejects[0][0]
            outcome.status, outcome.error_code = UNREADABLE, UNREADABLE
            outcome.message = f"all {outcome.rejected} record(s) quarantined, e.g. {first}"
    return outcome


def _groups(keys: Sequence[KeyConfig], size: int) -> Iterator[Sequence[KeyConfig]]:
    for first in range(0, len(keys), size):
        yield keys[first : first + size]


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
    a smoke check); one failing key never stops the rest.

    A sharded collector's config holds only its shard's keys (`Config.for_shard`); the file records the shard
    on its first run and refuses a collector of another (store.writes.ShardMismatch)."""
    started = time.monotonic()
    db_path = Path(db_path)
    settings = config.collector
    selected = [e for e in endpoints if ENDPOINTS[e].enabled(config)]
    # In name order: each batch then holds a narrow range of names, so the writer's merge (joined on key_name)
    # skips every stored row group outside it instead of reading the whole history (store.writes).
    chosen = sorted((k for k in config.keys if only_keys is None or k.name in only_keys), key=lambda k: k.name)
    with write_transaction(db_path) as con:
        writes.claim_shard(con, *config.shard, now())
        writes.sync_key_registry(con, registry_rows(config.keys), now())
        run_id = writes.start_run(con, mode=mode, endpoints=",".join(selected), keys_total=len(chosen), now=now())
    # All store work of the run (reading each group's state, writing batches) in one worker, in order.
    store = store_worker()
    writer = _Writer(store, db_path, run_id)
    failures: list[str] = []
    keys_done = 0
    keys_ok = 0
    keys_disabled = 0
    disabled_every = timedelta(seconds=settings.intervals_s.get("disabled", 3600.0))
    client = ApiClient(
        config.base_url,
        concurrency=settings.concurrency,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        retry=RetryPolicy(settings.max_attempts, settings.backoff_scale),
        transport=transport,
    )
    with_jobs = "jobs" in selected
    no_state = FetchContext(client=client, config=config, state=CollectorState(), now=now)

    # Fingerprints disabled upstream as this run's own inventory read says (None: not read; each group's state
    # then holds the stored inventory's).
    fresh_disabled: frozenset[str] | None = None

    async def record(outcome: Outcome) -> None:
        if outcome.status not in ("ok", DISABLED):
            failures.append(f"{outcome.key_name} {outcome.endpoint}: {outcome.error_code}")
            log.warning("%s %s failed: %s", outcome.key_name, outcome.endpoint, outcome.message)
        await writer.put(outcome)

    async def one_key(ctx: FetchContext, key: KeyConfig) -> None:
        nonlocal keys_done, keys_ok, keys_disabled
        known_disabled = ctx.state.disabled_fingerprints
        disabled_upstream = known_disabled is not None and key.fingerprint in known_disabled
        if disabled_upstream:
            # Tried on a slower schedule: it answers 401 until someone re-enables it. Run items are stamped
            # with the wall clock, so the interval is measured on it too.
            tried = ctx.state.last_tried.get(key.name)
            if tried is not None and utc_now() - tried < disabled_every:
                keys_done, keys_disabled = keys_done + 1, keys_disabled + 1
                return
        ok, expected = True, False
        for name in (e for e in PER_KEY_ORDER if e in selected):
            outcome = await _run_endpoint(ctx, name, key)
            if outcome.error_code == "invalid_api_key" and disabled_upstream:
                outcome.status, expected = DISABLED, True
                outcome.message = (
                    f"disabled in the vendor's inventory: tried every {disabled_every.total_seconds():g} s until "
                    f"re-enabled, not counted as a failure ({outcome.message})"
                )
            await record(outcome)
            ok = ok and outcome.status == "ok"
            if outcome.error_code == "invalid_api_key":
                break  # the key itself is rejected: its other endpoints would fail the same way
        keys_done += 1
        keys_ok += ok
        keys_disabled += expected

    async def global_endpoint(name: str) -> None:
        await record(await _run_endpoint(no_state, name, None))

    # Keys reach the workers a group at a time, each group with its own state; the queue holds at most one
    # group ahead, so at most a few groups' cursors and known jobs are in memory, whatever the fleet's size.
    queue: asyncio.Queue[tuple[FetchContext, KeyConfig] | None] = asyncio.Queue(maxsize=STATE_GROUP_KEYS)
    n_workers = min(settings.concurrency, len(chosen))

    async def feed() -> None:
        nonlocal keys_done, keys_ok

        async def end_workers() -> None:
            for _ in range(n_workers):
                await queue.put(None)

        try:
            if any(ENDPOINTS[name].per_key for name in selected):
                for group in _groups(chosen, STATE_GROUP_KEYS):
                    names = [k.name for k in group]
                    state = await store.call("state", db_path, names, with_jobs)
                    if fresh_disabled is not None:
                        state.disabled_fingerprints = fresh_disabled
                    ctx = FetchContext(client=client, config=config, state=state, now=now)
                    for key in group:
                        await queue.put((ctx, key))
            else:  # nothing per key was asked for (e.g. `--endpoints pricing`): no key failed it
                keys_done = keys_ok = len(config.keys)
        except asyncio.CancelledError:
            raise  # the workers are cancelled with it
        except BaseException:
            await end_workers()  # they are still consuming: let them finish their keys
            raise
        await end_workers()

    async def work() -> None:
        while (item := await queue.get()) is not None:
            await one_key(*item)

    async def flusher() -> None:
        last_report = time.monotonic()
        last_flush = time.monotonic()
        while True:
            await writer.wait_for_work(last_flush + FLUSH_INTERVAL_S)
            if writer.closing:
                break
            last_flush = time.monotonic()
            await writer.flush()
            if progress and time.monotonic() - last_report >= 2.0:
                last_report = time.monotonic()
                progress(
                    f"keys {keys_done}/{len(chosen)} done, {client.stats.requests} requests, "
                    f"{client.stats.retries} retries"
                )

    flush_task = asyncio.create_task(flusher())
    status = "failed"
    n_tasks = len(chosen) + sum(1 for n in selected if not ENDPOINTS[n].per_key)
    try:
        async with client:
            global_names = [n for n in selected if not ENDPOINTS[n].per_key]
            if "admin" in global_names and chosen and any(ENDPOINTS[n].per_key for n in selected):
                # The inventory is read before the keys, so a key disabled upstream is expected to be rejected
                # from the very first run (one request's wait).
                global_names.remove("admin")
                admin = await _run_endpoint(no_state, "admin", None)
                await record(admin)
                if admin.status == "ok" and admin.inventory is not None:
                    fresh_disabled = frozenset(row.key_fingerprint for row in admin.inventory if row.enabled is False)
            tasks = [global_endpoint(n) for n in global_names]
            fetching = asyncio.gather(*tasks, feed(), *(work() for _ in range(n_workers)))
            # Read its outcome even when nobody awaits it (cancelled at shutdown), or asyncio logs it as lost.
            fetching.add_done_callback(lambda done: done.cancelled() or done.exception())
            try:
                await asyncio.wait({fetching, flush_task}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                fetching.cancel()
                raise
            if flush_task.done():  # writing failed: stop fetching what could not be written
                fetching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetching
                failures.append(f"writing failed: {flush_task.exception()}")
                flush_task.result()
            await fetching
        status = "ok" if not failures else ("partial" if keys_ok or len(failures) < n_tasks else "failed")
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    finally:
        try:
            await writer.close()
            if not flush_task.done() or flush_task.cancelled() or flush_task.exception() is None:
                await flush_task
                while writer.pending:  # what was left when fetching ended (not after a failed write)
                    await writer.flush()
            await store.call("release")  # the file, checkpointed, for the run's end and for readers
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
                keys_disabled,
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
