"""Key staleness and governance findings: pure rules over collected facts, `now` passed in, thresholds in `Rules`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from analytics.traffic import busiest_block, profile_bins, profile_distance
from domain import NAME_SHAPE, environment_from_name, name_tokens
from domain import is_generic_name as _generic
from domain import is_well_formed_name as is_well_formed_name

# Fixed ids, in the order pages and reports list them, with a short label each.
FINDINGS: dict[str, str] = {
    "never_used": "never used",
    "inactive": "inactive",
    "unmanaged_key": "unmanaged upstream key",
    "disabled_upstream": "disabled upstream",
    "sandbox_in_prod": "sandbox key with production traffic",
    "rotation_overdue": "rotation overdue",
    "rotation_due": "rotation due",
    "owner_offboarded": "owner offboarded",
    "missing_owner": "no owner",
    "env_mismatch": "environment mismatch",
    "generic_name": "generic name",
    "bad_name": "bad name",
    "staging_shape_drift": "staging traffic shaped unlike prod",
}
STALE_FINDINGS = ("never_used", "inactive")
FINDING_COLUMNS = ["key_name", "finding", "detail", "since"]


@dataclass(frozen=True)
class Rules:
    """Thresholds of every key rule (DESIGN section 5 defaults); `[rules]` in the config TOML overrides them."""

    inactive_days: Mapping[str, float] = field(default_factory=lambda: {"prod": 7, "staging": 14, "dev": 30})
    # A brand-new key gets this long to make its first call before it is called never used.
    never_used_grace_days: float = 7
    # staging's due age is its release cycle.
    rotation_due_days: Mapping[str, float] = field(default_factory=lambda: {"prod": 30, "staging": 14})
    rotation_overdue_days: Mapping[str, float] = field(default_factory=lambda: {"prod": 90})
    offboarded_statuses: tuple[str, ...] = ("offboarded",)
    # A name whose words (environment and numbers aside) are all in this list is generic.
    generic_words: tuple[str, ...] = (
        "test", "tests", "testing", "key", "keys", "apikey", "mykey", "my", "new", "old", "temp", "tmp",
        "default", "dummy", "foo", "bar", "baz", "sample", "example", "scratch", "untitled", "unnamed", "xxx",
        "asdf", "demo", "copy",
    )  # fmt: skip
    sandbox_window_days: int = 7
    sandbox_share: float = 0.5
    shape_window_days: int = 28
    shape_block_hours: int = 3
    shape_max_distance: float = 0.45
    shape_min_observations: int = 50
    shape_min_active_days: int = 14


@dataclass(frozen=True)
class KeyFacts:
    """What the store knows about the keys, as the rules need it (see store.key_reads.governance_facts).

    keys: one row per configured key (key_name, environment, owner, owner_status, fingerprint, created_at,
        rotated_at, last_used_at, last_job_at, last_call_day, admin_created_at).
    daily: key_name, day, calls over the recent window.
    hourly: key_name, hour, calls (seen events), jobs (created) over the shape window.
    event_coverage: key_name, first_event_at, gaps (coverage gaps overlapping the shape window).
    admin: the upstream inventory (key_fingerprint, client_id, name, enabled, created_at, last_used_at,
        fetched_at); empty when no admin token is configured.
    """

    keys: pd.DataFrame
    daily: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["key_name", "day", "calls"]))
    hourly: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["key_name", "hour", "calls", "jobs"]))
    event_coverage: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["key_name", "first_event_at", "gaps"])
    )
    admin: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["key_fingerprint", "client_id", "name", "enabled", "created_at", "last_used_at", "fetched_at"]
        )
    )

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame]) -> KeyFacts:
        """Facts from a store read's named frames (frames the rules do not use are ignored)."""
        return cls(**{f.name: frames[f.name] for f in fields(cls) if f.name in frames})


# ---------------------------------------------------------------------------------------------- helpers


def _naive_utc(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(UTC).tz_localize(None)
    return stamp.to_pydatetime()


def _day(value: Any) -> date | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).date()


def _text(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _fmt_time(moment: datetime | None) -> str:
    return "unknown" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.0f} day" + ("" if round(days) == 1 else "s")


def _finding(key_name: str, finding: str, detail: str, since: datetime | None) -> dict[str, Any]:
    return {"key_name": key_name, "finding": finding, "detail": detail, "since": since}


# ------------------------------------------------------------------------------------------ staleness


def last_use(
    last_used_at: Any = None, last_job_at: Any = None, last_call_day: Any = None
) -> tuple[datetime | None, datetime | None, str]:
    """(last use shown, last instant the key may have been used, grain) from the evidence the store holds.

    Exact timestamps come from events, the admin inventory and jobs; daily usage only says which day, so a
    day-grain last use counts as lasting until that day's end (a key is never called idle too early).
    """
    exact = [t for t in (_naive_utc(last_used_at), _naive_utc(last_job_at)) if t is not None]
    best = max(exact) if exact else None
    day = _day(last_call_day)
    if day is not None and (best is None or best.date() < day):
        start = datetime(day.year, day.month, day.day)
        return start, start + timedelta(days=1), "day"
    return best, best, "exact"


def staleness_finding(
    key_name: str,
    environment: str,
    created_at: Any,
    now: datetime,
    rules: Rules,
    last_used_at: Any = None,
    last_job_at: Any = None,
    last_call_day: Any = None,
) -> dict[str, Any] | None:
    """never_used (no call since creation, after a grace period) or inactive (idle for the environment's N days)."""
    created = _naive_utc(created_at)
    shown, latest, grain = last_use(last_used_at, last_job_at, last_call_day)
    if latest is None:
        if created is not None and now - created < timedelta(days=rules.never_used_grace_days):
            return None
        age = f"created {_days(now - created)} ago ({_fmt_time(created)})" if created else "creation date unknown"
        return _finding(key_name, "never_used", f"no call seen since it was created; {age}", created)
    threshold = rules.inactive_days.get(environment)
    if threshold is None:
        return None
    idle = now - latest
    if idle < timedelta(days=threshold):
        return None
    when = f"{shown:%Y-%m-%d} (daily data)" if grain == "day" else _fmt_time(shown)
    return _finding(
        key_name,
        "inactive",
        f"no calls for {_days(idle)} (last call {when}); {environment} keys go stale after {threshold:g} days",
        shown,
    )


# ----------------------------------------------------------------------------------------- governance


def is_generic_name(name: str, rules: Rules) -> bool:
    """True when the name's words, environment and numbers aside, are all in the rules' generic words."""
    return _generic(name, rules.generic_words)


def naming_findings(key_name: str, environment: str, created_at: Any, rules: Rules) -> list[dict[str, Any]]:
    """generic_name (which already says the name is bad), else bad_name; and env_mismatch."""
    out = []
    created = _naive_utc(created_at)
    if is_generic_name(key_name, rules):
        out.append(
            _finding(
                key_name,
                "generic_name",
                f"'{key_name}' says nothing about the service; name it <service>-<env>",
                created,
            )
        )
    elif not is_well_formed_name(key_name):
        problem = "is not lower-case" if key_name != key_name.lower() else "is not hyphen-separated <service>-<env>"
        if key_name == key_name.lower() and NAME_SHAPE.match(key_name):
            problem = "does not end (or start) with its environment"
        suggestion = "-".join(name_tokens(key_name))
        if suggestion and not is_well_formed_name(suggestion):
            suggestion = f"{suggestion}-{environment}"
        out.append(_finding(key_name, "bad_name", f"'{key_name}' {problem}; e.g. '{suggestion}'", created))
    claimed = environment_from_name(key_name)
    if claimed is not None and claimed != environment:
        out.append(
            _finding(
                key_name, "env_mismatch", f"the name says {claimed} but the key is configured as {environment}", created
            )
        )
    return out


def ownership_findings(
    key_name: str, environment: str, owner: Any, owner_status: Any, created_at: Any, rules: Rules
) -> list[dict[str, Any]]:
    """missing_owner; owner_offboarded (a personal/dev key must be rotated or deleted when its owner leaves)."""
    out = []
    owner_text = _text(owner)
    if owner_text is None:
        out.append(
            _finding(key_name, "missing_owner", "no owner recorded; every key needs one", _naive_utc(created_at))
        )
    status = (_text(owner_status) or "").lower()
    if status and status in rules.offboarded_statuses:
        action = "rotate or delete it" if environment == "dev" else "hand it to a current owner and rotate it"
        out.append(_finding(key_name, "owner_offboarded", f"owner {owner_text or '?'} is {status}; {action}", None))
    return out


def rotation_finding(
    key_name: str,
    environment: str,
    rotated_at: Any,
    created_at: Any,
    now: datetime,
    rules: Rules,
) -> dict[str, Any] | None:
    """rotation_overdue or rotation_due by the age of the secret (rotation date, else creation date)."""
    due = rules.rotation_due_days.get(environment)
    overdue = rules.rotation_overdue_days.get(environment)
    if due is None and overdue is None:
        return None
    rotated = _naive_utc(rotated_at)
    base = rotated or _naive_utc(created_at)
    if base is None:
        return _finding(
            key_name, "rotation_due", "no rotation or creation date recorded; rotate it and record the date", None
        )
    age = now - base
    what = f"last rotated {_fmt_time(base)}" if rotated else f"never rotated since creation ({_fmt_time(base)})"
    if overdue is not None and age >= timedelta(days=overdue):
        return _finding(
            key_name,
            "rotation_overdue",
            f"secret is {_days(age)} old, {what}; {environment} keys must rotate within {overdue:g} days",
            base + timedelta(days=overdue),
        )
    if due is not None and age >= timedelta(days=due):
        cycle = "release cycle" if environment == "staging" else "rotation period"
        return _finding(
            key_name,
            "rotation_due",
            f"secret is {_days(age)} old, {what}; {environment} {cycle} is {due:g} days",
            base + timedelta(days=due),
        )
    return None


def sandbox_findings(keys: pd.DataFrame, daily: pd.DataFrame, now: datetime, rules: Rules) -> list[dict[str, Any]]:
    """sandbox_in_prod: a dev key whose calls over the window reach a share of the busiest prod key's."""
    start = now.date() - timedelta(days=rules.sandbox_window_days - 1)
    if daily.empty or keys.empty:
        return []
    days = pd.to_datetime(daily["day"]).dt.date
    recent = daily[(days >= start) & (days <= now.date())]
    calls = recent.groupby("key_name")["calls"].sum()
    env = keys.set_index("key_name")["environment"]
    prod_calls = calls[calls.index.isin(env[env == "prod"].index)]
    if prod_calls.empty or prod_calls.max() <= 0:
        return []
    busiest, busiest_calls = str(prod_calls.idxmax()), float(prod_calls.max())
    out = []
    for key_name in env[env == "dev"].index:
        dev_calls = float(calls.get(key_name, 0.0))
        if dev_calls > 0 and dev_calls >= rules.sandbox_share * busiest_calls:
            out.append(
                _finding(
                    key_name,
                    "sandbox_in_prod",
                    f"dev key made {dev_calls:,.0f} calls in {rules.sandbox_window_days} days, "
                    f"{dev_calls / busiest_calls:.0%} of the busiest prod key ({busiest}, {busiest_calls:,.0f}); "
                    f"production traffic needs a prod key",
                    datetime(start.year, start.month, start.day),
                )
            )
    return out


def _covered_by_events(coverage: pd.DataFrame, names: list[str], window_start: datetime) -> np.ndarray:
    """Per key: does the events feed reach back to the window's start without a coverage gap?"""
    if coverage.empty:
        return np.zeros(len(names), dtype=bool)
    rows = coverage.drop_duplicates("key_name").set_index("key_name").reindex(names)
    first = pd.to_datetime(rows["first_event_at"])
    return (first.notna() & (first <= window_start) & (rows["gaps"].fillna(0) == 0)).to_numpy(dtype=bool)


def _activity_cube(
    hourly: pd.DataFrame, names: list[str], window_start: datetime, n_days: int, block_hours: int
) -> np.ndarray:
    """keys × days × profile bins × (calls, jobs): the hourly counts folded for fast per-day masking."""
    n_bins = 2 * (24 // block_hours)
    cube = np.zeros((len(names), n_days, n_bins, 2))
    if hourly.empty:
        return cube
    position = {name: i for i, name in enumerate(names)}
    key_index = hourly["key_name"].map(position).to_numpy()
    hours = pd.to_datetime(hourly["hour"])
    day_index = ((hours - pd.Timestamp(window_start).normalize()) // pd.Timedelta(days=1)).to_numpy()
    bins = profile_bins(hours, block_hours)
    for source, column in enumerate(("calls", "jobs")):
        np.add.at(cube, (key_index, day_index, bins, source), hourly[column].to_numpy(dtype=float))
    return cube


def shape_drift_findings(facts: KeyFacts, now: datetime, rules: Rules) -> list[dict[str, Any]]:
    """staging_shape_drift: a staging key's weekly traffic profile against prod's, beyond a distance.

    Prod is the owner's own prod keys (same team, same clock) or, when the owner has none, every prod key.
    Both sides are compared on the staging key's active days only, so a key that went quiet or is new is
    not called different for that. Calls come from events where the events feed covers the whole window
    without gaps, otherwise from job submissions (complete history); the detail says which.
    """
    keys = facts.keys
    if keys.empty or facts.hourly.empty:
        return []
    window_end = now.replace(minute=0, second=0, microsecond=0)
    window_start = window_end - timedelta(days=rules.shape_window_days)
    first_day = pd.Timestamp(window_start).normalize()
    n_days = (pd.Timestamp(window_end).normalize() - first_day).days + 1
    names = keys["key_name"].tolist()
    position = {name: i for i, name in enumerate(names)}
    hours = pd.to_datetime(facts.hourly["hour"])
    hourly = facts.hourly[(hours >= window_start) & (hours < window_end) & facts.hourly["key_name"].isin(position)]
    cube = _activity_cube(hourly, names, window_start, n_days, rules.shape_block_hours)
    # a day counts as active when the daily summary saw calls; keys without summary rows fall back to hourly
    active = cube.sum(axis=(2, 3)) > 0
    daily = facts.daily
    if not daily.empty:
        called = daily[(daily["calls"] > 0) & daily["key_name"].isin(position)]
        day_index = ((pd.to_datetime(called["day"]) - first_day) // pd.Timedelta(days=1)).to_numpy()
        inside = (day_index >= 0) & (day_index < n_days)
        from_summary = np.zeros_like(active)
        from_summary[called["key_name"].map(position).to_numpy()[inside], day_index[inside]] = True
        has_summary = np.isin(np.arange(len(names)), called["key_name"].map(position).to_numpy())
        active = np.where(has_summary[:, None], from_summary, active)
    active[:, 0] &= first_day >= pd.Timestamp(window_start)  # the window's first, partial day is left out
    has_traffic = cube.sum(axis=(1, 2, 3)) > 0
    env = keys["environment"].to_numpy()
    owners = keys["owner"].map(_text).to_numpy()
    covered = _covered_by_events(facts.event_coverage, names, window_start)
    prod = [i for i in range(len(names)) if env[i] == "prod" and has_traffic[i]]
    block = rules.shape_block_hours
    out = []
    for i in (i for i in range(len(names)) if env[i] == "staging" and has_traffic[i]):
        own = [j for j in prod if owners[i] is not None and owners[j] == owners[i]]
        comparators = own or prod
        days = active[i]
        if not comparators or days.sum() < rules.shape_min_active_days:
            continue
        comparator_names = [names[j] for j in comparators]
        source = 0 if covered[[i, *comparators]].all() else 1
        mine = cube[i][days][:, :, source].sum(axis=0)
        theirs = cube[comparators][:, days][:, :, :, source].sum(axis=(0, 1))
        if mine.sum() < rules.shape_min_observations or theirs.sum() < rules.shape_min_observations:
            continue
        p, q = mine / mine.sum(), theirs / theirs.sum()
        distance = profile_distance(p, q)
        if distance < rules.shape_max_distance:
            continue
        against = f"{owners[i]}'s prod keys" if own else "all prod keys"
        shown = ", ".join(comparator_names[:3]) + (f" +{len(comparators) - 3}" if len(comparators) > 3 else "")
        what = "calls" if source == 0 else "job submissions"
        out.append(
            _finding(
                names[i],
                "staging_shape_drift",
                f"weekly traffic profile is {distance:.2f} away from {against} ({shown}), threshold "
                f"{rules.shape_max_distance:g}: busiest {busiest_block(p, block)} vs {busiest_block(q, block)} "
                f"(hourly {what} on its {int(days.sum())} active days of the last {rules.shape_window_days})",
                window_start,
            )
        )
    return out


def inventory_findings(keys: pd.DataFrame, admin: pd.DataFrame) -> list[dict[str, Any]]:
    """unmanaged_key (upstream, not configured) and disabled_upstream (configured, disabled upstream)."""
    if admin.empty:
        return []
    out = []
    configured = dict(zip(keys["fingerprint"], keys["key_name"], strict=True)) if not keys.empty else {}
    names = set(keys["key_name"]) if not keys.empty else set()
    for row in admin.itertuples(index=False):
        enabled = None if pd.isna(row.enabled) else bool(row.enabled)
        key_name = configured.get(row.key_fingerprint)
        if key_name is None:
            label = _text(row.name) or _text(row.client_id) or str(row.key_fingerprint)
            created = _naive_utc(row.created_at)
            if label in names:
                detail = (
                    f"upstream key '{label}' has a different secret than the configured one "
                    "(config holds an old secret?)"
                )
            else:
                state = "enabled" if enabled is not False else "disabled"
                detail = (
                    f"exists upstream ({state}, client {_text(row.client_id) or '?'}, "
                    f"created {_fmt_time(created)}) but is not in the key config; adopt or delete it"
                )
            out.append(_finding(label, "unmanaged_key", detail, created))
        elif enabled is False:
            last = _naive_utc(row.last_used_at)
            out.append(
                _finding(
                    key_name,
                    "disabled_upstream",
                    f"disabled in the vendor's inventory (last used {_fmt_time(last)}); "
                    "calls with it fail: re-enable or remove it from the config",
                    last,
                )
            )
    return out


# -------------------------------------------------------------------------------------------- all rules


def evaluate(facts: KeyFacts, now: datetime, rules: Rules | None = None) -> pd.DataFrame:
    """Every finding for every key: one row {key_name, finding, detail, since}, sorted by key then FINDINGS order."""
    rules = rules or Rules()
    now = _naive_utc(now) or now
    rows: list[dict[str, Any]] = []
    for key in facts.keys.to_dict("records"):
        name, env = key["key_name"], key["environment"]
        created = key.get("created_at")
        if created is None or pd.isna(created):
            created = key.get("admin_created_at")
        stale = staleness_finding(
            name, env, created, now, rules, key.get("last_used_at"), key.get("last_job_at"), key.get("last_call_day")
        )
        rotation = rotation_finding(name, env, key.get("rotated_at"), created, now, rules)
        rows += [r for r in (stale, rotation) if r]
        rows += naming_findings(name, env, created, rules)
        rows += ownership_findings(name, env, key.get("owner"), key.get("owner_status"), created, rules)
    rows += sandbox_findings(facts.keys, facts.daily, now, rules)
    rows += shape_drift_findings(facts, now, rules)
    rows += inventory_findings(facts.keys, facts.admin)
    frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    order = {f: i for i, f in enumerate(FINDINGS)}
    frame = frame.assign(_order=frame["finding"].map(order)).sort_values(["key_name", "_order"], kind="stable")
    frame["since"] = pd.to_datetime(frame["since"])
    return frame.drop(columns="_order").reset_index(drop=True)


def deletion_candidates(keys: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """Stale keys (never used or inactive) with the evidence a reviewer needs to delete them."""
    stale = findings[findings["finding"].isin(STALE_FINDINGS)][["key_name", "finding", "detail", "since"]]
    others = (
        findings[~findings["finding"].isin(STALE_FINDINGS)]
        .groupby("key_name")["finding"]
        .agg(lambda s: ", ".join(s))
        .rename("other_findings")
    )
    out = stale.merge(keys, on="key_name", how="left").merge(others, on="key_name", how="left")
    out["other_findings"] = out["other_findings"].fillna("")
    return out.reset_index(drop=True)
