"""`collectors serve`: the one writer's schedule. Each endpoint is collected on its own interval; the stored
results are refreshed after new data arrives; alerts, the weekly report and retention run on theirs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from collectors.endpoints import ENDPOINTS
from collectors.sync import collect, prune_store
from config import Config
from service.alerts import check_alerts
from service.refresh import refresh_due, refresh_results
from service.review import send_weekly_review
from service.smoke import run_smoke_checks
from store import StoreError
from untrusted import log_text

log = logging.getLogger("service.scheduler")

SHUTDOWN_GRACE_S = 30.0


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def build_scheduler(
    config: Config,
    db_path: str | Path,
    *,
    run_first: bool = False,
    extra_jobs: dict[str, tuple[Callable[[], Coroutine[Any, Any, None]], dict[str, Any]]] | None = None,
) -> AsyncIOScheduler:
    """One job per endpoint (one instance at a time, missed runs coalesced), the results refresh, alerts,
    the weekly report and housekeeping."""
    scheduler = AsyncIOScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
    )
    running: set[asyncio.Task[Any]] = set()
    scheduler.running_tasks = running  # type: ignore[attr-defined]

    def tracked(name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], Coroutine[Any, Any, None]]:
        async def run() -> None:
            task = asyncio.current_task()
            if task:
                running.add(task)
            try:
                await body()
            except StoreError as exc:
                print(f"[{name}] database error: {log_text(exc)}", file=sys.stderr, flush=True)
            except asyncio.CancelledError:
                # Shutdown outlived its grace period: what was written is complete (rows and cursors
                # commit together, results whole), and the next start resumes from the stored cursors.
                print(f"[{name}] stopped mid-run at shutdown", flush=True)
            except Exception:  # a scheduled job must never kill the service
                log.exception("%s failed", name)
            finally:
                if task:
                    running.discard(task)

        return run

    def collection(endpoint: str) -> Callable[[], Coroutine[Any, Any, None]]:
        async def body() -> None:
            summary = await collect(config, db_path, endpoints=[endpoint], mode="serve")
            print(f"[{endpoint}] {log_text(summary.line())}", flush=True)

        return tracked(endpoint, body)

    start = datetime.now(UTC)
    for endpoint, seconds in config.collector.intervals_s.items():
        if endpoint not in ENDPOINTS or not ENDPOINTS[endpoint].enabled(config):
            continue
        # APScheduler reads an explicit next_run_time=None as "paused": leave it out to start on the interval.
        first = {"next_run_time": start} if run_first or endpoint in ("pricing", "admin") else {}
        scheduler.add_job(collection(endpoint), "interval", seconds=seconds, id=endpoint, name=endpoint, **first)

    alert_check = alert_check_job(config, db_path)

    async def refresh() -> None:
        now = _utc_now()
        if not await asyncio.to_thread(refresh_due, db_path, now):
            return
        done = await asyncio.to_thread(refresh_results, db_path, config.rules, config.reconciliation, now)
        print(f"[results] {done.line()}", flush=True)
        await alert_check()  # the incidents just stored are what alerts are opened for

    results_s = config.collector.intervals_s.get("results", 300.0)
    scheduler.add_job(
        tracked("results", refresh), "interval", seconds=results_s, id="results", name="results", next_run_time=start
    )

    async def housekeeping() -> None:
        removed = await asyncio.to_thread(prune_store, config, db_path)
        if removed:
            print(f"[retention] removed {removed} rows past retention", flush=True)

    scheduler.add_job(tracked("retention", housekeeping), "interval", hours=6, id="retention", name="retention")
    # Also at start: notices queued before a restart (or a crash) go out at once.
    scheduler.add_job(
        alert_check, "interval", minutes=config.alerts.check_minutes, id="alerts", name="alerts", next_run_time=start
    )
    if config.review.weekly_cron:
        trigger = CronTrigger.from_crontab(config.review.weekly_cron, timezone=UTC)
        job = weekly_review_job(config, db_path, config.review.reports_dir)
        scheduler.add_job(job, trigger, id="weekly_review", name="weekly_review")
    if config.smoke.schedule and any(k.smoke for k in config.keys):
        trigger = CronTrigger.from_crontab(config.smoke.schedule, timezone=UTC)
        scheduler.add_job(smoke_check_job(config, db_path), trigger, id="smoke", name="smoke")
    for job_id, (func, trigger) in (extra_jobs or {}).items():
        scheduler.add_job(func, id=job_id, name=job_id, **trigger)
    return scheduler


def alert_check_job(config: Config, db_path: str | Path) -> Callable[[], Coroutine[Any, Any, None]]:
    """Open alerts for the stored incidents and post the undelivered ones, without anyone watching."""

    async def run() -> None:
        try:
            result = await asyncio.to_thread(check_alerts, db_path, config, _utc_now())
            if result.opened or result.resolved or result.delivered or result.failed or result.notes:
                stream = sys.stderr if result.failed else sys.stdout
                print(f"[alerts] {log_text(result.line())}", file=stream, flush=True)
        except Exception as exc:  # a locked state file or database: say so, keep collecting
            message = log_text(_without_webhook(str(exc), config))
            print(f"[alerts] check failed: {message}", file=sys.stderr, flush=True)

    return run


def smoke_check_job(config: Config, db_path: str | Path) -> Callable[[], Coroutine[Any, Any, None]]:
    """The `[smoke] schedule` job: check every key with `smoke = true`; a failing check opens an alert."""

    async def run() -> None:
        try:
            keys = [k for k in config.keys if k.smoke]
            result = await run_smoke_checks(config, db_path, keys, trigger="schedule")
            failed = [f"{v.observation.key_name} {v.observation.path}: {v.detail}" for v in result.verdicts if not v.ok]
            line = f"{len(result.verdicts) - len(failed)}/{len(result.verdicts)} checks passed"
            line += f"; failed: {'; '.join(failed)}" if failed else ""
            line += f"; {result.alerts_opened} alert(s) opened" if result.alerts_opened else ""
            print(f"[smoke] {log_text(line)}", file=sys.stderr if failed else sys.stdout, flush=True)
        except Exception as exc:  # a locked database, an unpriced model: say so, keep collecting
            print(f"[smoke] checks not run: {log_text(exc)}", file=sys.stderr, flush=True)

    return run


def weekly_review_job(config: Config, db_path: str | Path, folder: Path) -> Callable[[], Coroutine[Any, Any, None]]:
    """The `[review] weekly_cron` job: the last full week's review as HTML, Markdown and JSON into `folder`, then
    sent to the `[review] deliver_to` channels (the HTML by e-mail, the headline numbers and a link elsewhere)."""
    config = replace(config, review=replace(config.review, reports_dir=folder))

    async def run() -> None:
        try:
            done = await asyncio.to_thread(send_weekly_review, db_path, config, _utc_now())
            print(f"[review] wrote {', '.join(str(p) for p in done.written)}", flush=True)
            if done.queued or done.sent or done.errors:
                stream = sys.stderr if done.errors else sys.stdout
                problems = f" ({log_text('; '.join(done.errors))})" if done.errors else ""
                print(
                    f"[review] {done.queued} report notice(s) queued, {done.sent} sent{problems}",
                    file=stream,
                    flush=True,
                )
        except Exception as exc:  # a locked or missing database, a full disk: say so, keep collecting
            print(f"[review] weekly report not written: {log_text(exc)}", file=sys.stderr, flush=True)

    return run


def _without_webhook(text: str, config: Config) -> str:
    """An error message with every channel's secrets (valid or not) cut out, should any library echo one."""
    names = [config.alerts.webhook_url_env]
    for channel in config.alerts.all_channels():
        names += [channel.url_env, channel.secret_env, channel.routing_key_env, channel.password_env]
    for name in names:
        value = os.environ.get(name, "").strip() if name else ""
        if value:
            text = text.replace(value, "<secret>")
    return text


async def _serve(config: Config, db_path: str | Path, run_first: bool) -> None:
    if run_first:
        summary = await collect(config, db_path, mode="serve")
        print(summary.line(), flush=True)
    scheduler = build_scheduler(config, db_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scheduler.start()
    intervals = ", ".join(f"{k} {int(v)}s" for k, v in config.collector.intervals_s.items())
    print(
        f"collecting {len(config.keys)} keys into {db_path} on a schedule ({intervals}); Ctrl+C or SIGTERM stops",
        flush=True,
    )
    await stop.wait()
    print("stopping: waiting for running collections to finish", flush=True)
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)  # a job handed to the loop just before shutdown registers itself first
    running: set[asyncio.Task[Any]] = scheduler.running_tasks  # type: ignore[attr-defined]
    deadline = loop.time() + SHUTDOWN_GRACE_S
    while running and loop.time() < deadline:
        await asyncio.wait(list(running), timeout=deadline - loop.time())
    for task in list(running):
        task.cancel()
    if running:  # let cancelled runs record themselves as cancelled before the loop closes
        await asyncio.wait(list(running), timeout=10)
    print("collector stopped", flush=True)


def serve(config: Config, db_path: str | Path, run_first: bool = False) -> int:
    asyncio.run(_serve(config, db_path, run_first))
    return 0
