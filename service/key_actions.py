"""Key actions through the admin API — disable, enable, rotate with overlap — behind the guardrails, each action
and refusal appended to the `key_actions` audit. The use case behind `collectors admin` and the pages' actions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analytics.key_actions import (
    ACTIONS,
    Access,
    Guard,
    TrafficFacts,
    guard,
    rotation_name_problem,
    suggested_rotation_name,
)
from collectors.contract import ContractError, InventoryKey
from collectors.http_client import ApiClient, ApiError, RetryPolicy
from collectors.sync import utc_now
from collectors.vendor_api import VendorApi
from config import Config, ConfigError, fingerprint, load_config
from domain import environment_from_name
from store import StoreError, StoreNotReady
from store import key_actions as audit

if TYPE_CHECKING:  # the transport is the test seam; outbound HTTP itself lives in collectors.http_client
    from collectors.http_client import AsyncTransport

FACES = ("cli", "dashboard")


@dataclass(frozen=True)
class ActionRequest:
    action: str  # disable | enable | rotate
    key_name: str
    actor: str
    face: str  # cli | dashboard
    reason: str | None = None
    force: bool = False
    dry_run: bool = False
    new_name: str | None = None  # rotate: the replacement's name


@dataclass(frozen=True)
class Target:
    """The key an action is about: a configured key, or the old key of a rotation still tracked."""

    key_name: str
    fingerprint: str
    environment: str
    configured: bool


@dataclass(frozen=True)
class Preview:
    """What the confirmation shows: the key, its last 7 days of traffic, and what the guardrail says."""

    request: ActionRequest
    target: Target | None
    facts: TrafficFacts
    guard: Guard
    problem: str | None  # why the action cannot be taken at all (access, unknown key, bad name)
    client_id: str | None = None
    enabled_upstream: bool | None = None

    @property
    def allowed(self) -> bool:
        return self.problem is None and self.guard.allowed

    def confirmation(self, now: datetime) -> str:
        key = self.target.key_name if self.target else self.request.key_name
        what = {"disable": "Disable", "enable": "Enable", "rotate": "Rotate"}[self.request.action]
        text = f"{what} key {key}"
        if self.target:
            text += f" (fingerprint {self.target.fingerprint}, {self.target.environment})"
        if self.request.action == "rotate" and self.request.new_name:
            text += f", creating {self.request.new_name} beside it"
        return f"{text}. Last 7 days, {self.facts.summary(now)}."


@dataclass(frozen=True)
class ActionResult:
    """The outcome, as the audit records it; a rotation's new secret travels only here, once."""

    action: str
    key_name: str
    fingerprint: str | None
    outcome: str  # done | dry_run | refused | failed
    message: str
    actor: str
    reason: str | None = None
    request_id: str | None = None
    forced: bool = False
    new_key_name: str | None = None
    new_fingerprint: str | None = None
    traffic_24h: bool | None = None
    audit_id: int | None = None
    audit_error: str | None = None
    secret: str | None = field(default=None, repr=False)  # never stored, logged or exported

    def line(self) -> dict[str, Any]:
        """The JSON line `collectors admin` prints (without the secret)."""
        return {
            "action": self.action, "key_name": self.key_name, "fingerprint": self.fingerprint,
            "outcome": self.outcome, "message": self.message, "actor": self.actor, "reason": self.reason,
            "request_id": self.request_id, "forced": self.forced, "traffic_24h": self.traffic_24h,
            "new_key_name": self.new_key_name, "new_fingerprint": self.new_fingerprint, "audit_id": self.audit_id,
        }  # fmt: skip


def access_for(config: Config, actor: str | None, *, signed_in: bool) -> Access:
    return Access(
        enabled=config.actions.enabled,
        actor=(actor or "").strip() or None,
        operators=config.actions.operators,
        admin_token=bool(config.admin_token),
        signed_in=signed_in,
    )


def find_target(config: Config, db_path: str | Path, key_name: str) -> Target | None:
    """A configured key by name, else the old key of an open rotation (tracked by fingerprint until disabled)."""
    for key in config.keys:
        if key.name == key_name:
            return Target(key.name, key.fingerprint, key.environment, True)
    try:
        rotation = audit.open_rotation_of(db_path, key_name)
    except StoreError:
        rotation = None
    if rotation:
        return Target(key_name, str(rotation["old_fingerprint"]), environment_from_name(key_name) or "dev", False)
    return None


def _client(config: Config, transport: AsyncTransport | None) -> ApiClient:
    settings = config.collector
    return ApiClient(
        config.base_url,
        concurrency=2,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        retry=RetryPolicy(settings.max_attempts, settings.backoff_scale),
        transport=transport,
    )


def _facts(stored: dict[str, Any], upstream: InventoryKey | None) -> TrafficFacts:
    last, source = stored["last_used_at"], stored["last_used_source"]
    if upstream is not None and upstream.last_used_at is not None and (last is None or upstream.last_used_at > last):
        last, source = upstream.last_used_at, "the vendor's inventory, read now"
    elif upstream is not None and last is None:
        source = "the vendor's inventory, read now"
    return TrafficFacts(
        daily_calls=tuple(stored["daily"]),
        calls_24h=stored["events_24h"],
        summary_calls_24h=stored["summary_24h"],
        last_used_at=last,
        last_used_source=source,
        observed_at=stored["observed_at"],
        live_inventory=upstream is not None,
    )


async def _preview(
    config: Config, db_path: str | Path, request: ActionRequest, access: Access, now: datetime, api: VendorApi
) -> tuple[Preview, str | None]:
    """The preview, and the request id of the inventory read behind it."""
    problem = access.problem()
    if request.action not in ACTIONS:
        problem = f"unknown action {request.action!r} (known: {', '.join(ACTIONS)})"
    target = find_target(config, db_path, request.key_name)
    if target is None and problem is None:
        problem = f"no configured key, and no rotation still tracked, is named {request.key_name}"
    upstream, request_id = None, None
    if problem is None and target is not None:
        try:
            listed = await api.inventory()
            request_id = listed.request_id
            upstream = next((k for k in listed.value if k.key_fingerprint == target.fingerprint), None)
        except (ApiError, ContractError) as exc:
            problem = f"the admin API could not be read: {exc}"
            request_id = getattr(exc, "request_id", None)
    facts = (
        _facts(audit.traffic(db_path, target.key_name, target.fingerprint, now), upstream)
        if target
        else (TrafficFacts())
    )
    verdict = guard(request.action, facts, now, force=request.force, reason=request.reason)
    if problem is None and target is not None:
        problem = _state_problem(request, target, upstream, config)
    preview = Preview(
        request, target, facts, verdict, problem,
        client_id=upstream.client_id if upstream else None,
        enabled_upstream=upstream.enabled if upstream else None,
    )  # fmt: skip
    return preview, request_id


def _state_problem(request: ActionRequest, target: Target, upstream: InventoryKey | None, config: Config) -> str | None:
    if upstream is None:
        return f"the vendor's admin inventory does not list fingerprint {target.fingerprint}"
    if request.action == "disable" and upstream.enabled is False:
        return f"{target.key_name} is already disabled upstream; nothing to do"
    if request.action == "enable" and upstream.enabled is True:
        return f"{target.key_name} is already enabled upstream; nothing to do"
    if request.action == "rotate":
        if not upstream.client_id:
            return "the vendor's inventory gives no client_id for this key, so a replacement cannot be created"
        configured = [k.name for k in config.keys]
        name_problem = rotation_name_problem(
            request.new_name or "", target.key_name, target.environment, configured, config.rules
        )
        if name_problem:
            return f"{name_problem} (e.g. {suggested_rotation_name(target.key_name, target.environment, configured)})"
    return None


async def preview_action(
    config: Config,
    db_path: str | Path,
    request: ActionRequest,
    access: Access,
    *,
    now: datetime | None = None,
    transport: AsyncTransport | None = None,
) -> Preview:
    """What the action would do and whether it is allowed, for the confirmation (changes nothing, records nothing)."""
    async with _client(config, transport) as client:
        preview, _ = await _preview(
            config, db_path, request, access, now or utc_now(), VendorApi(client, config.admin_token)
        )
    return preview


async def perform_action(
    config: Config,
    db_path: str | Path,
    request: ActionRequest,
    access: Access,
    *,
    now: datetime | None = None,
    transport: AsyncTransport | None = None,
) -> ActionResult:
    """Judge the action afresh, take it (or only say what it would do, for a dry run), and append the outcome
    — done, dry_run, refused or failed — to the audit. A rotation's result carries the new secret, once."""
    moment = now or utc_now()
    if request.face not in FACES:
        raise ValueError(f"face must be one of {', '.join(FACES)}")
    async with _client(config, transport) as client:
        api = VendorApi(client, config.admin_token)
        preview, request_id = await _preview(config, db_path, request, access, moment, api)
        target = preview.target
        base = ActionResult(
            action=request.action, key_name=target.key_name if target else request.key_name,
            fingerprint=target.fingerprint if target else None, outcome="refused", message="",
            actor=access.actor or "?",
            reason=(request.reason or "").strip() or None, request_id=request_id,
            traffic_24h=preview.facts.recent(moment) if target else None,
        )  # fmt: skip
        if preview.problem is not None:
            return _audited(db_path, replace(base, message=preview.problem), access, request, moment)
        if not preview.guard.allowed:
            return _audited(db_path, replace(base, message=preview.guard.why), access, request, moment)
        base = replace(base, forced=preview.guard.forced)
        if request.dry_run:
            message = f"dry run, nothing changed: {preview.confirmation(moment)} Guardrail: {preview.guard.why}."
            return _audited(db_path, replace(base, outcome="dry_run", message=message), access, request, moment)
        assert target is not None
        try:
            if request.action == "rotate":
                # The documented body has no name: the note carries it first (`<name>: replaces …`).
                note = f"{request.new_name}: replaces {target.key_name} ({target.fingerprint})"
                created = await api.create_key(str(preview.client_id), note)
                new_fingerprint = created.key.key_fingerprint or fingerprint(created.secret)
                done = replace(
                    base, outcome="done", request_id=created.request_id, new_key_name=request.new_name,
                    new_fingerprint=new_fingerprint, secret=created.secret,
                    message=(
                        f"created {request.new_name} (fingerprint {new_fingerprint}) beside {target.key_name}; put its "
                        f"secret in the config, move callers to it, then disable {target.key_name} once its traffic "
                        "has stopped"
                    ),
                )  # fmt: skip
            else:
                changed = await api.set_enabled(target.fingerprint, request.action == "enable")
                state = "enabled" if changed.value.enabled else "disabled"
                done = replace(
                    base, outcome="done", request_id=changed.request_id, message=f"{target.key_name} is {state}"
                )
        except (ApiError, ContractError) as exc:
            failed = replace(base, outcome="failed", request_id=getattr(exc, "request_id", None), message=str(exc))
            return _audited(db_path, failed, access, request, moment)
    return _audited(db_path, done, access, request, moment)


def _audited(
    db_path: str | Path, result: ActionResult, access: Access, request: ActionRequest, at: datetime
) -> ActionResult:
    """Append the outcome to the audit (its secret never: the audit row has no place for one)."""
    row = {
        "at": at, "actor": result.actor, "face": request.face, "action": result.action, "key_name": result.key_name,
        "fingerprint": result.fingerprint, "reason": result.reason, "request_id": result.request_id,
        "outcome": result.outcome, "forced": result.forced, "detail": result.message,
        "new_key_name": result.new_key_name, "new_fingerprint": result.new_fingerprint,
    }  # fmt: skip
    try:
        return replace(result, audit_id=audit.append(db_path, row))
    except Exception as exc:  # the action was taken (a new key's secret is in `result`): report, never lose it
        return replace(result, audit_error=f"{type(exc).__name__}: {exc}")


def refuse(
    db_path: str | Path, preview: Preview, access: Access, message: str, *, now: datetime | None = None
) -> ActionResult:
    """Record that an action was not taken because the operator did not confirm it (or a face refused it)."""
    request, target = preview.request, preview.target
    result = ActionResult(
        action=request.action, key_name=target.key_name if target else request.key_name,
        fingerprint=target.fingerprint if target else None, outcome="refused", message=message,
        actor=access.actor or "?", reason=(request.reason or "").strip() or None,
    )  # fmt: skip
    return _audited(db_path, result, access, request, now or utc_now())


def preview_now(
    config: Config, db_path: str | Path, request: ActionRequest, access: Access, now: datetime | None = None
) -> Preview:
    """preview_action from synchronous code (a page)."""
    return asyncio.run(preview_action(config, db_path, request, access, now=now))


def perform_now(
    config: Config, db_path: str | Path, request: ActionRequest, access: Access, now: datetime | None = None
) -> ActionResult:
    """perform_action from synchronous code (a page)."""
    return asyncio.run(perform_action(config, db_path, request, access, now=now))


def dashboard_config(config_path: str | Path | None) -> tuple[Config | None, str | None]:
    """The config with its secrets (the admin token, the keys'), as actions and smoke checks need it; or why not."""
    if config_path is None:
        return None, "no key config is loaded (start the dashboard with --config or RBV_CONFIG)"
    try:
        return load_config(config_path), None
    except ConfigError as exc:
        return None, f"the key config cannot be used here: {exc}"


def audit_log(db_path: str | Path, key_name: str | None = None, limit: int = 200) -> pd.DataFrame:
    """The `key_actions` audit, newest first (empty before the first action)."""
    try:
        return audit.actions(db_path, key_name, limit)
    except StoreNotReady:
        return pd.DataFrame(columns=[*(c.strip('"') for c in audit.PUBLIC), "forced", "detail", "new_key_name", "face"])


def rotations_in_progress(config: Config, db_path: str | Path, now: datetime) -> pd.DataFrame:
    """Rotations whose old key is not disabled yet, each with its old key's traffic: disable it once quiet."""
    columns = ["rotated_at", "old_key_name", "old_fingerprint", "new_key_name", "new_configured", "old_last_used_at",
               "old_calls_24h", "ready", "status"]  # fmt: skip
    try:
        open_ones = audit.rotations(db_path, open_only=True)
    except StoreNotReady:
        return pd.DataFrame(columns=columns)
    configured = {k.name for k in config.keys}
    rows = []
    for row in open_ones.itertuples(index=False):
        stored = audit.traffic(db_path, row.old_key_name, row.old_fingerprint, now)
        upstream_last = row.old_last_used_upstream if pd.notna(row.old_last_used_upstream) else None
        facts = _facts(stored, None)
        if upstream_last is not None and (facts.last_used_at is None or upstream_last > facts.last_used_at):
            facts = replace(facts, last_used_at=upstream_last, last_used_source="the vendor's inventory, collected")
        calls = facts.calls_24h if facts.calls_24h is not None else facts.summary_calls_24h
        ready = facts.known_quiet(now) or (not facts.recent(now) and upstream_last is not None)
        if facts.recent(now):
            status = f"old key still used: {calls or 'some'} call(s) in the last 24 h — move its callers"
        elif ready:
            status = "old key quiet for 24 h — disable it"
        else:
            status = "no recent call seen, but the old key's traffic is not collected up to now"
        rows.append(
            {
                "rotated_at": row.rotated_at, "old_key_name": row.old_key_name, "old_fingerprint": row.old_fingerprint,
                "new_key_name": row.new_key_name, "new_configured": row.new_key_name in configured,
                "old_last_used_at": facts.last_used_at, "old_calls_24h": calls, "ready": ready, "status": status,
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
