"""Smoke checks per key: one success path and one failure path end to end against the API, judged, stored, and
alerted on when they fail. The use case behind `collectors smoke`, the Key detail button and `serve`'s schedule."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analytics import smoke
from analytics.credits import ReconcileSettings
from analytics.pricing import Pricing, resolve_pricing
from collectors.contract import PUBLISHED_PRICING, ContractError, Job
from collectors.http_client import ApiClient, ApiError, RetryPolicy
from collectors.sync import collect, utc_now
from collectors.vendor_api import VendorApi
from config import Config, ConfigError, KeyConfig
from service.alerts import clear_alerts, deliver_pending, open_alerts, plan_notices
from service.credits import pricing_for
from store import StoreError, StoreNotReady
from store import smoke_checks as smoke_store
from store.credit_reads import PricingState
from store.state_file import state_path
from untrusted import UnsafeURL, check_url

if TYPE_CHECKING:  # the transport is the test seam; outbound HTTP itself lives in collectors.http_client
    from collectors.http_client import AsyncTransport

log = logging.getLogger("service.smoke")

TRIGGERS = ("cli", "schedule", "dashboard")
SMOKE_METRIC = "smoke_check"  # the alert metric a failing check opens
MAX_POLL_INTERVAL_S = 15.0


@dataclass(frozen=True)
class SmokeRun:
    """One run of checks: a verdict per key and path, and which rates and model judged them."""

    run_id: str
    verdicts: tuple[smoke.Verdict, ...]
    model: str
    pricing_label: str
    alerts_opened: int = 0
    alert_error: str | None = None
    store_error: str | None = None  # the results could not be stored (they were still judged and printed)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)

    def rows(self) -> list[dict[str, Any]]:
        return [v.row() for v in self.verdicts]


def select_keys(config: Config, names: Sequence[str] | None) -> list[KeyConfig]:
    """The keys named (whether or not they opted in), else the keys with `smoke = true`."""
    if names:
        known = {k.name: k for k in config.keys}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"no configured key named {', '.join(unknown)} (known: {', '.join(known)})")
        return [known[n] for n in dict.fromkeys(names)]
    chosen = [k for k in config.keys if k.smoke]
    if not chosen:
        raise ConfigError("no key has smoke = true in its [[keys]] entry; opt keys in, or name them with --key")
    return chosen


def current_pricing(db_path: str | Path, settings: ReconcileSettings) -> Pricing:
    """The rates the checks judge charges by: the API's last read, else `[pricing]`, else the published ones."""
    try:
        return pricing_for(db_path, settings.pricing)
    except StoreNotReady:  # nothing collected yet: the configured, then the published rates
        empty = pd.DataFrame({"model": pd.Series(dtype=str), "credits_per_minute": pd.Series(dtype=float)})
        return resolve_pricing(PricingState(empty, None, None, None), settings.pricing, PUBLISHED_PRICING)


def _run_id(keys: Sequence[KeyConfig], started: datetime) -> str:
    text = f"{started.isoformat()}|{','.join(k.name for k in keys)}|{time.monotonic_ns()}"
    return "smk_" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class _Checker:
    """Runs both paths of one key's check over one client."""

    def __init__(self, api: VendorApi, config: Config, model: str, run_id: str) -> None:
        self.api, self.settings, self.model, self.run_id = api, config.smoke, model, run_id

    async def path(self, key: KeyConfig, path: str, started_at: datetime, skipped: str | None) -> smoke.Observation:
        url = self.settings.clip_url if path == "success" else self.settings.failure_url
        began = time.monotonic()
        base = {"key_name": key.name, "path": path, "started_at": started_at, "model": self.model, "video_url": url}
        if skipped:
            return smoke.Observation(**base, seconds=0.0, skipped=skipped)
        job: Job | None = None
        request_id: str | None = None
        try:
            created = await self.api.create_job(
                key.secret, video_url=url, model=self.model, output_format=self.settings.output_format,
                metadata={"rbv_smoke_check": self.run_id, "path": path},
            )  # fmt: skip
            job, request_id = created.value, created.request_id
            delay = self.settings.poll_interval_s
            deadline = began + self.settings.timeout_s
            while not job.terminal and time.monotonic() < deadline:
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 1.25, MAX_POLL_INTERVAL_S)
                job = (await self.api.get_job(key.secret, job.job_id)).value
        except ApiError as exc:
            return smoke.Observation(
                **base, seconds=time.monotonic() - began, job_id=job.job_id if job else None,
                request_id=request_id or exc.request_id, status=job.status if job else None,
                api_error=exc.code, api_message=str(exc),
            )  # fmt: skip
        except ContractError as exc:
            return smoke.Observation(
                **base, seconds=time.monotonic() - began, job_id=job.job_id if job else None, request_id=request_id,
                status=job.status if job else None, api_error="contract", api_message=str(exc),
            )  # fmt: skip
        output_status, output_error = None, None
        if job.status == "completed" and job.output_url and path == "success":
            try:
                output = check_url(job.output_url)  # a URL from the API is fetched only when it is http(s)
            except UnsafeURL as exc:
                output_error = f"not fetched: it {exc}"
            else:
                output_status, _, output_error = await self.api.probe(output)
        return smoke.Observation(
            **base, seconds=time.monotonic() - began, job_id=job.job_id, request_id=request_id, status=job.status,
            timed_out=not job.terminal, duration_seconds=job.duration_seconds, credits_charged=job.credits_charged,
            billing_status=job.billing_status, output_url=job.output_url, output_status=output_status,
            output_error=output_error, api_message=job.error,
        )  # fmt: skip


def _spent_today(db_path: str | Path, clip_url: str, model: str, now: datetime) -> tuple[float, float | None]:
    """What smoke checks were charged today, and what the newest check of this clip and model cost."""
    try:
        spent = smoke_store.credits_since(db_path, now.replace(hour=0, minute=0, second=0, microsecond=0))
        return spent, smoke_store.last_cost(db_path, clip_url, model)
    except StoreNotReady:
        return 0.0, None


def _plan(keys: Sequence[KeyConfig], spent: float, estimate: float, cap: float) -> dict[str, str | None]:
    """Which keys' success paths fit in what is left of today's credit cap, reserved in the order given; a key
    that does not fit gets the reason its success path is skipped."""
    skipped: dict[str, str | None] = {}
    for key in keys:
        if smoke.within_cap(spent, estimate, cap):
            spent += estimate
            skipped[key.name] = None
        else:
            skipped[key.name] = (
                f"skipped: today's smoke checks spent or reserved {spent:.2f} of the {cap:g}-credit daily cap "
                f"and this one may cost {estimate:.2f}"
            )
    return skipped


async def run_smoke_checks(
    config: Config,
    db_path: str | Path,
    keys: Sequence[KeyConfig],
    *,
    trigger: str,
    now: Callable[[], datetime] = utc_now,
    transport: AsyncTransport | None = None,
    alert: bool = True,
) -> SmokeRun:
    """Check every key's success and failure paths (concurrently), collect their jobs once more to see them
    listed, judge, store each check in `smoke_checks`, and open an alert for every failing one."""
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}")
    settings = config.reconciliation
    pricing = current_pricing(db_path, settings)
    model = config.smoke.model or smoke.cheapest_model(pricing.rates)
    rate = pricing.rates.get(model)
    if rate is None:
        raise ConfigError(f"[smoke] model '{model}' has no known rate (known: {', '.join(sorted(pricing.rates))})")
    started_at = now()
    run_id = _run_id(keys, started_at)
    spent, last = _spent_today(db_path, config.smoke.clip_url, model, started_at)
    collector = config.collector
    client = ApiClient(
        config.base_url,
        concurrency=min(collector.concurrency, 8),
        connect_timeout_s=collector.connect_timeout_s,
        read_timeout_s=collector.read_timeout_s,
        retry=RetryPolicy(collector.max_attempts, collector.backoff_scale),
        transport=transport,
    )
    cap = config.smoke.daily_credit_cap
    observations: list[smoke.Observation] = []
    async with client:
        checker = _Checker(VendorApi(client), config, model, run_id)

        async def check(batch: Sequence[KeyConfig], estimate: float) -> list[smoke.Observation]:
            plan = _plan(batch, spent, estimate, cap)
            paths = [checker.path(k, path, started_at, plan[k.name] if path == "success" else None)
                     for k in batch for path in smoke.PATHS]  # fmt: skip
            return list(await asyncio.gather(*paths))

        rest = list(keys)
        if last is None and len(rest) > 1:
            # No check of this clip and model yet: the first key's learns its cost (reserving a minute of the
            # model), so the others reserve what it really cost rather than a minute each.
            observations = await check(rest[:1], smoke.cost_estimate(None, rate))
            rest = rest[1:]
            charged = [o.credits_charged for o in observations if o.path == "success" and o.credits_charged]
            spent += sum(charged)
            last = charged[0] if charged else None
        observations += await check(rest, smoke.cost_estimate(last, rate))
    observations = await _with_listing(config, db_path, observations, now, transport)
    verdicts = tuple(
        smoke.judge_success(o, rate, settings) if o.path == "success" else smoke.judge_failure(o, settings)
        for o in observations
    )
    finished_at = now()
    fingerprints = {k.name: k.fingerprint for k in keys}
    store_error = None
    try:
        smoke_store.record(db_path, [_stored(v, run_id, trigger, fingerprints, finished_at) for v in verdicts])
    except StoreError as exc:
        store_error = str(exc)
    opened, alert_error = 0, None
    if alert:
        opened, alert_error = _open_alerts(db_path, config, verdicts, finished_at, post=trigger != "dashboard")
    return SmokeRun(run_id, verdicts, model, pricing.label, opened, alert_error, store_error)


async def _with_listing(
    config: Config,
    db_path: str | Path,
    observations: list[smoke.Observation],
    now: Callable[[], datetime],
    transport: AsyncTransport | None,
) -> list[smoke.Observation]:
    """The collection that follows: the checked keys' jobs once more, then whether each check's job is listed."""
    job_ids = [o.job_id for o in observations if o.job_id]
    if not job_ids:
        return observations
    names = sorted({o.key_name for o in observations if o.job_id})
    problem = None
    try:
        summary = await collect(config, db_path, endpoints=["jobs"], mode="smoke", now=now, transport=transport,
                                only_keys=names)  # fmt: skip
        if summary.failures:
            problem = "; ".join(summary.failures)
        listed = smoke_store.listed_jobs(db_path, job_ids)
    except StoreError as exc:
        problem, listed = str(exc), set()
    out = []
    for obs in observations:
        if obs.job_id:
            found = obs.job_id in listed
            message = obs.api_message
            if not found and problem:
                message = f"{message}; " if message else ""
                message += f"the jobs collection after the check failed: {problem}"
            obs = dataclasses.replace(obs, listed=found, api_message=message)
        out.append(obs)
    return out


def _stored(
    verdict: smoke.Verdict, run_id: str, trigger: str, fingerprints: dict[str, str], finished_at: datetime
) -> dict[str, Any]:
    obs = verdict.observation
    return {
        **verdict.row(), "run_id": run_id, "trigger": trigger, "fingerprint": fingerprints.get(obs.key_name),
        "started_at": obs.started_at, "finished_at": finished_at, "listed": obs.listed, "model": obs.model,
        "video_url": obs.video_url, "detail": verdict.detail,
    }  # fmt: skip


def _open_alerts(
    db_path: str | Path, config: Config, verdicts: Sequence[smoke.Verdict], now: datetime, post: bool
) -> tuple[int, str | None]:
    """One alert per failing key and path (merged with an open one within the cooldown); a path that passes again
    resolves its alert (a recovery notice). The service's jobs and the CLI announce and send at once, through the
    alert routes; from the dashboard, the service's next alert check does."""
    failing = [v for v in verdicts if not v.ok and v.error_code != "credit_cap"]
    passing = [v for v in verdicts if v.ok]
    state_file = state_path(db_path)
    try:
        opened = 0
        if failing:
            incidents = pd.DataFrame(
                {
                    "key_name": [v.observation.key_name for v in failing],
                    "metric": SMOKE_METRIC,
                    "direction": [f"{v.observation.path}_path" for v in failing],
                    "start": [v.observation.started_at for v in failing],
                    "end": [now for _ in failing],
                    "peak_score": 1.0,
                }
            )
            opened = open_alerts(state_file, incidents, now, config.alerts.cooldown)
        for verdict in passing:
            obs = verdict.observation
            clear_alerts(db_path, SMOKE_METRIC, obs.key_name, f"{obs.path}_path", now)
        if not post or not (failing or passing):
            return opened, None
        plan_notices(state_file, config.alerts, now)
        errors = deliver_pending(state_file, config.alerts, now).errors
    except StoreError as exc:
        return 0, str(exc)
    return opened, "; ".join(errors) or None


def run_smoke_checks_now(config: Config, db_path: str | Path, keys: Sequence[KeyConfig], *, trigger: str) -> SmokeRun:
    """The same, from synchronous code (a page's button, a CLI)."""
    return asyncio.run(run_smoke_checks(config, db_path, keys, trigger=trigger))


def history(db_path: str | Path, key_name: str | None = None, limit: int = 50) -> pd.DataFrame:
    """Stored checks, newest first (empty before the first check)."""
    try:
        return smoke_store.history(db_path, key_name, limit)
    except StoreNotReady:
        return pd.DataFrame(columns=list(smoke_store.HISTORY))
