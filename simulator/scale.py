"""Scale generator: write a large, realistic collector database directly (no HTTP) for benchmarks and tests."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from private_files import restrict_umask
from store import StoreError
from store.bulk import bulk_load
from store.bulk import table_counts as _table_counts

from .catalog import _BASE, FORMATS, MODEL_RATES, MODELS, Catalog, IncidentSpec, build_catalog
from .clock import parse_instant
from .world import (
    _FMT_P,
    _OTHER_CODES,
    _OTHER_EP,
    _OTHER_EP_P,
    _OTHER_P,
    _OUTPUT_EXT,
    _POLL_CODES,
    _POLL_P,
    _SUB_CODES,
    _SUB_P,
    ENDPOINTS,
    ERRORS,
)

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# The collector is assumed to poll events every 5 minutes: that is when a call is first seen.
POLL_MS = 300_000
# 1000 keys x 90 days x 64 = 5.76 M calls, about a fifth of them jobs: the issue asks for >= 5 M and >= 1 M.
EVENTS_PER_KEY_DAY = 64.0
POLLS_MEAN = 1.2  # extra status polls per job beyond the first
SUBMIT_OK = float(_SUB_P[0])
# Expected events per successful job: its submit (plus the failed submits around it) and its polls.
EVENTS_PER_JOB = 1.0 / SUBMIT_OK + 1.0 + POLLS_MEAN
PER_KEY_ENDPOINTS = ("summary", "events", "jobs")
TABLES = (
    "key_registry",
    "usage_daily",
    "usage_event_log",
    "job_state",
    "job_status_log",
    "model_pricing",
    "admin_inventory",
    "sync_state",
    "run_log",
    "run_item_log",
    "raw_landing",
    "quarantine_log",
    "coverage_gap_log",
)


@dataclass
class Keys:
    """The key catalogue as columns (index = position), with the scale generator's volume model."""

    frame: pd.DataFrame  # identity columns for the registry and inventory
    managed: np.ndarray
    weight: np.ndarray
    tz: np.ndarray
    night: np.ndarray
    weekend: np.ndarray
    growth: np.ndarray
    fail_prob: np.ndarray
    model_cum: np.ndarray  # (K, 4) cumulative model probabilities
    job_share: np.ndarray
    from_h: np.ndarray
    until_h: np.ndarray


@dataclass
class Traffic:
    """Everything generated for a group of keys, as numpy columns; times are epoch milliseconds."""

    # events, sorted by key, then time
    ev_key: np.ndarray
    ev_seq: np.ndarray  # key << KEY_SHIFT | the key's running number: the id's sequence
    ev_t: np.ndarray
    ev_ep: np.ndarray
    ev_status: np.ndarray
    ev_job: np.ndarray  # the job's sequence number (orphan charges: past the key's jobs) or -1
    ev_model: np.ndarray
    ev_credits: np.ndarray
    ev_keep: np.ndarray  # False inside a coverage gap: the summary counted it, the event poll missed it
    # jobs, sorted by key, then creation time
    j_key: np.ndarray
    j_seq: np.ndarray
    j_t: np.ndarray
    j_model: np.ndarray
    j_fmt: np.ndarray
    j_dur: np.ndarray
    j_status: np.ndarray  # 0 pending, 1 processing, 2 completed, 3 failed (as of now)
    j_progress: np.ndarray
    j_credits: np.ndarray  # as listed now (0 until settled)
    j_billing: np.ndarray  # 0 charged, 1 refunded, 2 not_charged, 3 pending
    j_err: np.ndarray
    j_no_output: np.ndarray
    j_pending: np.ndarray
    j_settle: np.ndarray
    gaps: list[tuple[int, int, int, int]] = field(default_factory=list)  # key, start, end, detected (ms)
    injected: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScaleResult:
    db_path: Path
    rows: dict[str, int]
    bytes: int
    seconds: float

    def line(self) -> str:
        counts = ", ".join(f"{name} {count:,}" for name, count in self.rows.items())
        return f"scale: {counts}; {self.bytes / 1e6:,.1f} MB in {self.seconds:.1f} s -> {self.db_path}"


def _ms(value: datetime) -> int:
    return int(round(value.timestamp() * 1000))


def _naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def _pick(rng: np.random.Generator, values: np.ndarray, probs: np.ndarray, size: int) -> np.ndarray:
    cum = np.cumsum(probs)
    return values[np.minimum(np.searchsorted(cum, rng.random(size) * cum[-1], "right"), len(values) - 1)]


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_U64 = np.uint64


def _mix(values: np.ndarray, seed: int, tag: str) -> np.ndarray:
    """A 64-bit hash of each value with the seed and a tag (splitmix64): random-looking, reproducible."""
    salt = int.from_bytes(hashlib.sha256(f"{seed}:{tag}".encode()).digest()[:8], "little")
    with np.errstate(over="ignore"):
        x = values.astype(_U64) ^ _U64(salt)
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


# Each byte's two hex digits, so a column of numbers becomes text with a few whole-array operations.
_BYTE_HEX = np.frombuffer(b"".join(f"{b:02x}".encode() for b in range(256)), dtype=np.uint16)


def _hex_text(values: np.ndarray, width: int) -> pa.Array:
    """The low `width` (even) hex digits of each value, as Arrow text."""
    raw = np.ascontiguousarray(values.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - width // 2 :])
    return pa.array(_BYTE_HEX[raw].view(f"S{width}").ravel(), type=pa.binary()).cast(pa.string())


def _ids(seq: np.ndarray, seed: int, tag: str, prefix: str) -> pa.Array:
    """A 24-hex id like the stand-in's, but time-sortable: a sequence number, then a hash.

    Ids that arrive in order keep DuckDB's primary-key index (ART) and string compression cheap:
    loading random ids was five times slower and made a bigger file.
    """
    return pc.binary_join_element_wise(prefix, _hex_text(seq, 12), _hex_text(_mix(seq, seed, tag), 12), "")


def _small_id(seed: int, tag: str, text: str, prefix: str) -> str:
    """A random-looking 24-hex id for the few bookkeeping rows."""
    return prefix + hashlib.md5(f"{seed}:{tag}:{text}".encode()).hexdigest()[:24]


def _pick_text(values: tuple[str, ...] | list[str], index: np.ndarray) -> pa.Array:
    """values[index] as Arrow text; a negative index is null."""
    return pa.array(list(values), type=pa.string()).take(pa.array(index, mask=index < 0, type=pa.int64()))


def _times(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64), type=pa.timestamp("ms")).cast(pa.timestamp("us"))


# ------------------------------------------------------------------------------------------- the plan


def build_keys(catalog: Catalog, seed: int, start_h: int, now_h: int) -> Keys:
    """Catalogue keys plus a heavier-tailed volume model, extra stale keys and a few extra governance cases."""
    rng = np.random.default_rng([seed, 4242])
    n_base = len(_BASE)
    rows: list[dict[str, Any]] = []
    k = len(catalog.keys)
    weight, until_h = np.zeros(k), np.full(k, np.iinfo(np.int64).max // 4, dtype=np.int64)
    for i, spec in enumerate(catalog.keys):
        owner, owner_status = spec.owner, spec.owner_status
        if spec.uid < n_base:
            weight[i] = spec.base_rate
        else:
            # A few busy keys and many small ones: lognormal sizes with a long right tail.
            median, sigma = {"prod": (12.0, 1.2), "staging": (3.0, 0.9), "dev": (1.0, 1.0)}[spec.environment]
            weight[i] = min(float(rng.lognormal(np.log(median), sigma)), 400.0)
            roll = rng.random()
            quiet_from, quiet_to = start_h + (now_h - start_h) // 3, now_h - 24 * 8
            if roll < 0.015:
                weight[i] = 0.0  # never used
            elif roll < 0.06 and quiet_to > quiet_from:
                until_h[i] = int(rng.integers(quiet_from, quiet_to))  # went quiet: stale by every env's rule
            gov = rng.random()
            if gov < 0.02:
                owner = None
            elif gov < 0.05 and spec.environment == "dev":
                owner_status = "offboarded"
        if spec.active_until is not None:
            until_h[i] = _ms(spec.active_until) // HOUR_MS
        rows.append(
            {
                "idx": i,
                "key_name": spec.name,
                "environment": spec.environment,
                "owner": owner,
                "owner_status": owner_status,
                "fingerprint": spec.fingerprint,
                "masked_key": f"rbv_…{spec.secret[-4:]}",
                "client_id": spec.client_id,
                "note": spec.note,
                "enabled": spec.enabled,
                "managed": spec.managed,
                "created_at": _naive(spec.created_at),
                "rotated_at": _naive(spec.rotated_at),
            }
        )
    frame = pd.DataFrame(rows)
    frame["idx"] = frame["idx"].astype("int32")
    for col in ("created_at", "rotated_at"):
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[us]")
    specs = catalog.keys
    probs = np.array([s.model_probs for s in specs]).reshape(k, 4)
    return Keys(
        frame=frame,
        managed=np.array([s.managed for s in specs], dtype=bool),
        weight=weight,
        tz=np.array([s.tz_offset for s in specs], dtype=np.int64),
        night=np.array([s.shape == "night" for s in specs], dtype=bool),
        weekend=np.array([s.weekend for s in specs]),
        growth=np.array([s.growth for s in specs]),
        fail_prob=np.array([s.fail_prob for s in specs]),
        model_cum=np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1),
        job_share=rng.uniform(0.17, 0.23, k),
        from_h=np.array([_ms(s.active_from) // HOUR_MS for s in specs], dtype=np.int64),
        until_h=until_h,
    )


# One random stream per key and purpose: what a key draws never depends on which keys are drawn beside it,
# so the same seed gives the same database whatever the group size.
_TRAFFIC, _DAY_NOISE, _HISTORY, _SUMMARY = 5151, 5150, 6161, 7171
_MISTAKES, _ORPHANS, _GAP_KEYS, _SUMMARY_KEYS = 5155, 5156, 5157, 5158
# A key's events and jobs are numbered key << KEY_SHIFT | its own running number: ids stay unique and sorted
# (2^30 calls a key; 100,000 keys fit the id's 12 hex digits of sequence).
KEY_SHIFT = 30
RECENT_MS = 14 * DAY_MS  # coverage gaps are put in the last two weeks
GROUP_KEYS = 100  # keys generated and loaded together (memory grows with this, not with the fleet)


class _Streams:
    """One generator per key of a group; draws for key-major columns, each key from its own stream."""

    def __init__(self, seed: int, tag: int, lo: int, hi: int) -> None:
        self.rngs = [np.random.default_rng([seed, tag, k]) for k in range(lo, hi)]

    def rows(self, matrix: np.ndarray, draw: Callable[[np.random.Generator, np.ndarray], np.ndarray]) -> np.ndarray:
        """draw(rng, row) for each key's row of a (keys, n) matrix."""
        return np.stack([draw(rng, row) for rng, row in zip(self.rngs, matrix, strict=True)])

    def each(self, counts: np.ndarray, draw: Callable[[np.random.Generator, int], np.ndarray]) -> np.ndarray:
        """draw(rng, n) for each key's n rows of a key-major column, concatenated."""
        return np.concatenate([draw(rng, int(n)) for rng, n in zip(self.rngs, counts, strict=True)])


def _random(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n)


def _rank_in_runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Each row's position within its run of equal (sorted) keys."""
    return np.arange(len(sorted_keys), dtype=np.int64) - np.searchsorted(sorted_keys, sorted_keys, "left")


def _seq(key: np.ndarray, rank: np.ndarray) -> np.ndarray:
    return (key.astype(np.int64) << KEY_SHIFT) | rank.astype(np.int64)


@dataclass(frozen=True)
class Window:
    """The generated span: from the first day's midnight to now (epoch ms)."""

    start_ms: int
    now_ms: int

    @property
    def hours(self) -> np.ndarray:
        start_h, now_h = self.start_ms // HOUR_MS, self.now_ms // HOUR_MS
        return start_h + np.arange(now_h - start_h + 1, dtype=np.int64)

    @property
    def span_ms(self) -> np.ndarray:
        """Each hour's length: the current hour is only partly over."""
        return np.minimum(HOUR_MS, self.now_ms - self.hours * HOUR_MS)


@dataclass
class Fleet:
    """What is decided across the whole fleet before any key's traffic is drawn."""

    keys: Keys
    incidents: list[IncidentSpec]
    seed: int
    window: Window
    factor: float  # scales every key's rates to the requested volume, counted over the managed keys
    mistakes: np.ndarray  # (keys, 5): billing mistakes of each kind to put in the key's settled jobs
    orphan_key: np.ndarray  # charges for jobs never listed, in plan order
    orphan_t: np.ndarray
    orphan_model: np.ndarray
    orphan_credits: np.ndarray
    gap_keys: np.ndarray  # bool per key: its 100-event window overflows once in the last two weeks
    summary_keys: np.ndarray  # bool per key: the vendor's summary is off on one of its busy days


def _rates(
    keys: Keys, incidents: list[IncidentSpec], seed: int, window: Window, lo: int, hi: int
) -> tuple[np.ndarray, ...]:
    """Keys lo..hi-1: expected job submissions and other calls per hour, failure odds, and pro-model bursts."""
    hours, span_ms = window.hours, window.span_ms
    start_h, now_h, n_hours = hours[0], hours[-1], len(hours)
    sl = slice(lo, hi)
    # Seasonality in the team's local time: a business-hours (or night batch) curve and quieter weekends.
    local = hours[None, :] + keys.tz[sl, None]
    hod = (local % 24).astype(float)
    dow = ((local // 24) + 3) % 7  # epoch day 0 was a Thursday; Monday = 0
    business = 0.12 + 0.88 * np.exp(-0.5 * ((hod - 13.5) / 3.5) ** 2)
    dist = np.minimum(np.abs(hod - 2.0), 24 - np.abs(hod - 2.0))
    night = 0.08 + 0.92 * np.exp(-0.5 * (dist / 1.6) ** 2)
    activity = np.where(keys.night[sl, None], night, business)
    del local, hod, business, night, dist
    activity *= np.where(dow >= 5, keys.weekend[sl, None], 1.0)
    activity *= np.exp(keys.growth[sl, None] * (hours[None, :] - now_h) / 720.0)
    n_days = (n_hours + 23) // 24
    day_noise = np.stack(
        [np.random.default_rng([seed, _DAY_NOISE, k]).lognormal(0.0, 0.15, n_days) for k in range(lo, hi)]
    )
    activity *= day_noise[:, (hours - start_h) // 24]  # busy and slow days
    active = (hours[None, :] >= keys.from_h[sl, None]) & (hours[None, :] < keys.until_h[sl, None])
    activity *= keys.weight[sl, None] * active * (span_ms / HOUR_MS)[None, :]
    del active, dow

    lam_sub = activity * (keys.job_share[sl] / SUBMIT_OK)[:, None]
    lam_oth = activity * (1.0 - keys.job_share[sl] * EVENTS_PER_JOB)[:, None]
    del activity
    fail_p = np.broadcast_to(keys.fail_prob[sl, None], lam_sub.shape).copy()
    pro_burst = np.zeros(lam_sub.shape, dtype=bool)
    for inc in incidents:
        h0 = max(0, _ms(inc.start) // HOUR_MS - start_h)
        h1 = min(n_hours, _ms(inc.end) // HOUR_MS - start_h)
        if h1 <= h0 or not lo <= inc.uid < hi:
            continue
        k, hs = inc.uid - lo, slice(h0, h1)
        if inc.direction == "drop":
            lam_sub[k, hs] = 0.0
            lam_oth[k, hs] = 0.0
        elif inc.metric == "calls":
            total = lam_sub[k, hs] * SUBMIT_OK * EVENTS_PER_JOB + lam_oth[k, hs]
            lam_oth[k, hs] = total * inc.multiplier - lam_sub[k, hs] * SUBMIT_OK * EVENTS_PER_JOB
        elif inc.metric == "failed_jobs":
            fail_p[k, hs] = inc.multiplier
            lam_sub[k, hs] *= 3.0
        else:
            lam_sub[k, hs] *= 2.0
            pro_burst[k, hs] = True
    return lam_sub, lam_oth, fail_p, pro_burst


def plan_fleet(
    catalog: Catalog, keys: Keys, seed: int, window: Window, events_per_key_day: float, group_keys: int
) -> Fleet:
    """The fleet-wide decisions: the volume scale, and which keys get the injected mistakes, orphans and gaps.

    Reads every key's expected rates a group at a time (no draws), so it needs no more memory than a group.
    """
    n_keys = len(keys.weight)
    calls, jobs, recent = np.zeros(n_keys), np.zeros(n_keys), np.zeros(n_keys)
    is_recent = window.hours * HOUR_MS >= window.now_ms - RECENT_MS
    for lo in range(0, n_keys, group_keys):
        hi = min(n_keys, lo + group_keys)
        lam_sub, lam_oth, _, _ = _rates(keys, catalog.incidents, seed, window, lo, hi)
        expected = lam_sub * (SUBMIT_OK * EVENTS_PER_JOB) + lam_oth
        calls[lo:hi], recent[lo:hi] = expected.sum(axis=1), expected[:, is_recent].sum(axis=1)
        jobs[lo:hi] = lam_sub.sum(axis=1) * SUBMIT_OK
    managed = keys.managed
    target = events_per_key_day * int(managed.sum()) * (window.now_ms - window.start_ms) / DAY_MS
    expected_calls = float(calls[managed].sum())
    factor = target / expected_calls if expected_calls > 0 else 0.0

    # Billing mistakes the reconciliation must find: keys drawn in proportion to their jobs.
    n_each = max(2, n_keys // 40)
    mistakes = np.zeros((n_keys, 5), dtype=np.int64)
    billed = np.flatnonzero(managed & (jobs > 0))
    if len(billed):
        rng = np.random.default_rng([seed, _MISTAKES])
        chosen = rng.choice(billed, size=5 * n_each, p=jobs[billed] / jobs[billed].sum())
        np.add.at(mistakes, (chosen, np.repeat(np.arange(5), n_each)), 1)

    # Charges for jobs the list never shows, on keys the collector sees.
    rng = np.random.default_rng([seed, _ORPHANS])
    managed_keys = np.flatnonzero(managed & (keys.weight > 0))
    n_orphans = n_each if len(managed_keys) else 0
    orphan_key = rng.choice(managed_keys, n_orphans).astype(np.int32) if n_orphans else np.zeros(0, np.int32)
    orphan_t = np.maximum(window.start_ms, window.now_ms - rng.integers(10 * 60_000, 6 * HOUR_MS, n_orphans))
    orphan_model = rng.choice(np.array([0, 2]), n_orphans).astype(np.int8)
    orphan_credits = np.round(rng.uniform(60, 200, n_orphans) / 60.0 * np.array(MODEL_RATES)[orphan_model], 2)

    def some_busy(volume: np.ndarray, n: int, tag: int, enough: float) -> np.ndarray:
        """n of the busiest managed keys, at random, those with `enough` expected volume first."""
        busy = np.argsort(-np.where(managed, volume, 0.0), kind="stable")[: max(3 * n, 10)]
        busy = np.random.default_rng([seed, tag]).permutation(busy[volume[busy] > 0])
        ample = volume[busy] * factor >= enough
        picked = np.zeros(n_keys, dtype=bool)
        picked[np.concatenate([busy[ample], busy[~ample]])[:n]] = True
        return picked

    n_few = max(2, n_keys // 100)
    return Fleet(
        keys=keys,
        incidents=list(catalog.incidents),
        seed=seed,
        window=window,
        factor=factor,
        mistakes=mistakes,
        orphan_key=orphan_key,
        orphan_t=orphan_t,
        orphan_model=orphan_model,
        orphan_credits=orphan_credits,
        gap_keys=some_busy(recent, n_few, _GAP_KEYS, 3000.0),  # enough for > 100 calls inside 3 hours
        summary_keys=some_busy(jobs, n_few, _SUMMARY_KEYS, 0.0),
    )


def generate(fleet: Fleet, lo: int, hi: int) -> Traffic:
    """Draw every call and job of keys lo..hi-1: seasonal Poisson rates per key-hour, incidents, billing mistakes."""
    keys, seed, now_ms = fleet.keys, fleet.seed, fleet.window.now_ms
    hours, span_ms = fleet.window.hours, fleet.window.span_ms
    n_hours, g = len(hours), hi - lo
    lam_sub, lam_oth, fail_p, pro_burst = _rates(keys, fleet.incidents, seed, fleet.window, lo, hi)
    draws = _Streams(seed, _TRAFFIC, lo, hi)
    n_sub = draws.rows(lam_sub * fleet.factor, lambda r, lam: r.poisson(lam)).ravel()
    n_oth = draws.rows(lam_oth * fleet.factor, lambda r, lam: r.poisson(lam)).ravel()
    del lam_sub, lam_oth

    # Job submissions (key-major); the successful ones become jobs, numbered per key in time order.
    flat = np.repeat(np.arange(n_sub.size, dtype=np.int64), n_sub)
    s_key, s_h = (flat // n_hours).astype(np.int32), flat % n_hours
    del flat
    per_s = n_sub.reshape(g, n_hours).sum(axis=1)
    n_s = len(s_key)
    s_t = hours[s_h] * HOUR_MS + (draws.each(per_s, _random) * span_ms[s_h]).astype(np.int64)
    s_status = draws.each(per_s, lambda r, n: _pick(r, _SUB_CODES, _SUB_P, n)).astype(np.int16)
    s_model = np.minimum((draws.each(per_s, _random)[:, None] >= keys.model_cum[lo + s_key]).sum(axis=1), 3)
    burst = pro_burst[s_key, s_h]
    s_model = np.where(burst & (draws.each(per_s, _random) < 0.9), 2, s_model).astype(np.int8)
    ok = s_status == 200
    order = np.lexsort((s_t[ok], s_key[ok]))
    j_key, j_t, j_model = s_key[ok][order], s_t[ok][order], s_model[ok][order]
    j_burst = burst[ok][order]
    j_fail_p = fail_p[j_key, s_h[ok][order]]
    del fail_p, pro_burst, burst
    n_j = len(j_t)
    per_j = np.bincount(j_key, minlength=g)
    j_start = np.concatenate([[0], np.cumsum(per_j)]).astype(np.int64)
    j_seq = _seq(lo + j_key, np.arange(n_j) - j_start[j_key])

    def per_job(draw: Callable[[np.random.Generator, int], np.ndarray]) -> np.ndarray:
        return draws.each(per_j, draw)

    dur = np.clip(np.exp(per_job(lambda r, n: r.normal(np.log(40.0), 0.9, n))), 5, 600)
    long = np.clip(np.exp(per_job(lambda r, n: r.normal(np.log(330.0), 0.35, n))), 60, 600)
    j_dur = np.round(np.where(j_burst, long, dur), 1)
    del dur, long
    j_fail = per_job(_random) < j_fail_p
    j_fmt = per_job(lambda r, n: _pick(r, np.arange(len(FORMATS)), _FMT_P, n)).astype(np.int8)
    j_pending = per_job(lambda r, n: r.integers(3_000, 20_000, n)).astype(np.int64)
    j_settle = (np.clip(30 + j_dur * 0.8 + per_job(lambda r, n: r.uniform(0, 60, n)), 45, 590) * 1000).astype(np.int64)
    j_fail_progress = per_job(lambda r, n: r.integers(0, 95, n))
    j_err = per_job(lambda r, n: r.integers(0, len(ERRORS), n)).astype(np.int8)
    j_billing = np.where(j_fail, np.where(per_job(_random) < 0.5, 1, 2), 0).astype(np.int8)
    j_charged = np.where(j_fail, 0.0, np.round(j_dur / 60.0 * np.array(MODEL_RATES)[j_model], 2))
    j_no_output = np.zeros(n_j, dtype=bool)

    # Billing mistakes the plan gave these keys, on their settled jobs.
    picked: list[list[np.ndarray]] = [[] for _ in range(5)]
    over_by, under_by, late_by = [], [], []
    candidates = (now_ms - j_t > HOUR_MS) & keys.managed[lo + j_key] & ~j_fail
    for k in np.flatnonzero(fleet.mistakes[lo:hi].sum(axis=1)):
        rng, want = draws.rngs[k], fleet.mistakes[lo + k]
        own = j_start[k] + np.flatnonzero(candidates[j_start[k] : j_start[k + 1]])
        picks = rng.choice(own, size=min(len(own), int(want.sum())), replace=False).astype(np.int64)
        ends = np.cumsum(want)
        for kind in range(5):
            picked[kind].append(picks[ends[kind] - want[kind] : ends[kind]])
        over_by.append(rng.uniform(1.2, 1.5, len(picked[0][-1])))
        under_by.append(rng.uniform(0.5, 0.8, len(picked[1][-1])))
        late_by.append(rng.integers(20_000, 90_000, len(picked[4][-1])))
    over, under, failed_charged, missing, duplicate = (
        np.concatenate(p) if p else np.zeros(0, np.int64) for p in picked
    )
    expected_credits = np.round(j_dur / 60.0 * np.array(MODEL_RATES)[j_model], 2)
    if len(over):
        j_charged[over] = np.round(expected_credits[over] * np.concatenate(over_by), 2)
    if len(under):
        j_charged[under] = np.round(expected_credits[under] * np.concatenate(under_by), 2)
    j_fail[failed_charged] = True
    j_billing[failed_charged] = 0
    j_no_output[missing] = True
    injected = {
        "overcharged": len(over),
        "undercharged": len(under),
        "failed_but_charged": len(failed_charged),
        "missing_output": len(missing),
        "duplicate_charge": len(duplicate),
    }

    age = now_ms - j_t
    j_status = np.where(age < j_pending, 0, np.where(age < j_settle, 1, np.where(j_fail, 3, 2))).astype(np.int8)
    settled = j_status >= 2
    span = np.maximum(1, j_settle - j_pending)
    running = np.clip(100 * (age - j_pending) // span, 1, 99)
    j_progress = np.select([j_status == 0, j_status == 1, j_status == 2], [0, running, 100], j_fail_progress)
    j_credits = np.where(settled, j_charged, 0.0)
    j_billing = np.where(settled, j_billing, 3).astype(np.int8)

    # Events: every submit (failed ones carry no job), status polls of each job, and other calls.
    s_job = np.full(n_s, -1, dtype=np.int64)
    s_job[np.flatnonzero(ok)[order]] = np.arange(n_j)
    s_credits = np.zeros(n_s)
    s_credits[s_job >= 0] = j_credits[s_job[s_job >= 0]]
    s_job = np.where(s_job >= 0, j_seq[s_job], -1)
    n_polls = 1 + per_job(lambda r, n: r.poisson(POLLS_MEAN, n))
    p_job = np.repeat(np.arange(n_j, dtype=np.int64), n_polls)
    # Whole milliseconds, so each job's running sum is exact whatever came before it in the group.
    waits = draws.each(
        np.bincount(j_key, weights=n_polls, minlength=g).astype(np.int64), lambda r, n: r.integers(3_000, 30_000, n)
    )
    cum = np.cumsum(waits)
    first = np.concatenate([[0], np.cumsum(n_polls)[:-1]]).astype(np.int64)
    base = (cum[first] - waits[first]) if n_j else np.zeros(0, np.int64)
    p_t = j_t[p_job] + np.minimum(cum - np.repeat(base, n_polls), 350_000).astype(np.int64)
    del waits, cum, base
    p_seen = p_t <= now_ms
    p_job, p_t = p_job[p_seen], p_t[p_seen]
    n_p = len(p_t)
    per_p = np.bincount(j_key[p_job], minlength=g)
    flat = np.repeat(np.arange(n_oth.size, dtype=np.int64), n_oth)
    o_key, o_h = (flat // n_hours).astype(np.int32), flat % n_hours
    del flat
    per_o = n_oth.reshape(g, n_hours).sum(axis=1)
    n_o = len(o_key)
    o_t = hours[o_h] * HOUR_MS + (draws.each(per_o, _random) * span_ms[o_h]).astype(np.int64)

    # Duplicate charges (a second submit event for one job) and charges for jobs never listed.
    d_t = j_t[duplicate] + (np.concatenate(late_by) if late_by else np.zeros(0, np.int64))
    duplicate = duplicate[d_t <= now_ms]
    d_t = d_t[d_t <= now_ms]
    mine = np.flatnonzero((fleet.orphan_key >= lo) & (fleet.orphan_key < hi))
    mine = mine[np.argsort(fleet.orphan_key[mine], kind="stable")]
    orphan_key = fleet.orphan_key[mine] - lo
    orphan_seq = _seq(lo + orphan_key, per_j[orphan_key] + _rank_in_runs(orphan_key))
    orphan_model = fleet.orphan_model[mine]
    n_orphans = len(mine)

    ev_key = np.concatenate([s_key, j_key[p_job], o_key, j_key[duplicate], orphan_key])
    ev_t = np.concatenate([s_t, p_t, o_t, d_t, fleet.orphan_t[mine]])
    order = np.lexsort((ev_t, ev_key))
    ev_key, ev_t = ev_key[order], ev_t[order]
    ev_ep = np.concatenate(
        [
            np.zeros(n_s, np.int8),
            np.ones(n_p, np.int8),
            draws.each(per_o, lambda r, n: _pick(r, _OTHER_EP, _OTHER_EP_P, n)).astype(np.int8),
            np.zeros(len(duplicate) + n_orphans, np.int8),
        ]
    )[order]
    ev_status = np.concatenate(
        [
            s_status,
            draws.each(per_p, lambda r, n: _pick(r, _POLL_CODES, _POLL_P, n)).astype(np.int16),
            draws.each(per_o, lambda r, n: _pick(r, _OTHER_CODES, _OTHER_P, n)).astype(np.int16),
            np.full(len(duplicate) + n_orphans, 200, np.int16),
        ]
    )[order]
    ev_job = np.concatenate([s_job, j_seq[p_job], np.full(n_o, -1, np.int64), j_seq[duplicate], orphan_seq])[order]
    ev_model = np.concatenate([s_model, np.full(n_p + n_o, -1, np.int8), j_model[duplicate], orphan_model])[order]
    orphan_credits = fleet.orphan_credits[mine]
    ev_credits = np.concatenate([s_credits, np.zeros(n_p + n_o), j_credits[duplicate], orphan_credits])[order]
    del order, s_key, s_t, s_status, s_model, s_job, s_credits, p_job, p_t, o_key, o_t
    injected["orphan_charge"] = n_orphans

    traffic = Traffic(
        ev_key=(lo + ev_key).astype(np.int32),
        ev_seq=_seq(lo + ev_key, _rank_in_runs(ev_key)),
        ev_t=ev_t,
        ev_ep=ev_ep,
        ev_status=ev_status,
        ev_job=ev_job,
        ev_model=ev_model,
        ev_credits=ev_credits,
        ev_keep=np.ones(len(ev_t), dtype=bool),
        j_key=(lo + j_key).astype(np.int32),
        j_seq=j_seq,
        j_t=j_t,
        j_model=j_model,
        j_fmt=j_fmt,
        j_dur=j_dur,
        j_status=j_status,
        j_progress=j_progress.astype(np.float64),
        j_credits=j_credits,
        j_billing=j_billing,
        j_err=j_err,
        j_no_output=j_no_output,
        j_pending=j_pending,
        j_settle=j_settle,
        injected=injected,
    )
    for k in np.flatnonzero(fleet.gap_keys[lo:hi]):
        _add_coverage_gap(traffic, lo + k, draws.rngs[k], now_ms)
    return traffic


def _add_coverage_gap(traffic: Traffic, key: int, rng: np.random.Generator, now_ms: int) -> None:
    """A busy key whose 100-event window overflowed between two polls: the events in between are missing.

    A gap lasts 20 minutes to 3 hours (a collector outage) and holds more than 100 calls, or the
    poll after it would have reached back to the high-water mark and no gap would exist.
    """
    a, b = np.searchsorted(traffic.ev_key, [key, key + 1])
    idx = a + np.flatnonzero(traffic.ev_t[a:b] >= now_ms - RECENT_MS)
    times = traffic.ev_t[idx]
    for _ in range(20):
        if len(idx) < 200:
            return
        i = int(rng.integers(0, len(idx) - 1))
        j = int(np.searchsorted(times, times[i] + int(rng.integers(20, 180)) * 60_000))
        if j >= len(idx) or j - i - 1 <= 100 or times[j] <= times[i]:
            continue
        start, end = int(times[i]), int(times[j])
        traffic.ev_keep[idx[(times > start) & (times < end)]] = False
        traffic.gaps.append((key, start, end, min(now_ms, (end // POLL_MS + 1) * POLL_MS)))
        return


def status_history(traffic: Traffic, seed: int, now_ms: int, lo: int, hi: int) -> pd.DataFrame:
    """The statuses a 5-minute poller would have seen for each job, with when it saw them."""
    draws = _Streams(seed, _HISTORY, lo, hi)
    per_j = np.bincount(traffic.j_key - lo, minlength=hi - lo)
    t, status = traffic.j_t, traffic.j_status
    pending_seen = (status == 0) | (draws.each(per_j, _random) < 0.3)
    processing_seen = (status == 1) | ((status >= 2) & (draws.each(per_j, _random) < 0.6))
    settled = status >= 2
    pending_at = t + (draws.each(per_j, _random) * traffic.j_pending).astype(np.int64)
    processing_at = (
        t + traffic.j_pending + (draws.each(per_j, _random) * (traffic.j_settle - traffic.j_pending)).astype(np.int64)
    )
    settled_at = np.minimum(now_ms, ((t + traffic.j_settle) // POLL_MS + 1) * POLL_MS)
    seq = traffic.j_seq
    parts = [
        (seq[pending_seen], np.zeros(int(pending_seen.sum()), np.int8), pending_at[pending_seen]),
        (seq[processing_seen], np.ones(int(processing_seen.sum()), np.int8), processing_at[processing_seen]),
        (seq[settled], status[settled], settled_at[settled]),
    ]
    job = np.concatenate([p[0] for p in parts])
    code = np.concatenate([p[1] for p in parts]).astype(np.int8)
    order = np.lexsort((code, job))  # in primary-key order, which DuckDB's index loads fastest
    observed = np.minimum(np.concatenate([p[2] for p in parts]), now_ms)
    return pd.DataFrame({"job": job[order], "status": code[order], "observed": observed[order]})


def daily_frame(traffic: Traffic, fleet: Fleet, lo: int, hi: int) -> pd.DataFrame:
    """What /v1/usage/summary reports per key and day: every call (gaps included) and the day's jobs."""
    keys, window = fleet.keys, fleet.window
    first_day, today = window.start_ms // DAY_MS, window.now_ms // DAY_MS
    n_days, g = today - first_day + 1, hi - lo
    cell = (traffic.ev_key.astype(np.int64) - lo) * n_days + (traffic.ev_t // DAY_MS - first_day)
    calls = np.bincount(cell, minlength=g * n_days)
    credits = np.bincount(cell, weights=traffic.ev_credits, minlength=g * n_days)
    jcell = (traffic.j_key.astype(np.int64) - lo) * n_days + (traffic.j_t // DAY_MS - first_day)
    jobs = np.bincount(jcell, minlength=g * n_days)
    failed = np.bincount(jcell[traffic.j_status == 3], minlength=g * n_days)
    key_idx = np.repeat(np.arange(lo, hi, dtype=np.int32), n_days)
    day = np.tile(np.arange(first_day, today + 1, dtype=np.int64), g)
    created_day = (keys.frame["created_at"].to_numpy().astype("datetime64[ms]").astype(np.int64)) // DAY_MS
    keep = keys.managed[key_idx] & (day >= created_day[key_idx])
    key_idx, day = key_idx[keep], day[keep]
    credits = np.round(credits[keep], 2)
    # The vendor's summary disagrees with its own charges on one busy day of a few busy keys.
    for k in np.flatnonzero(fleet.summary_keys[lo:hi]) + lo:
        busy = np.flatnonzero((key_idx == k) & (credits > 50) & (day < today))
        if len(busy):
            rng = np.random.default_rng([fleet.seed, _SUMMARY, int(k)])
            row = int(rng.choice(busy))
            delta = float(rng.choice([-1, 1]) * rng.uniform(20, 60))
            credits[row] = round(max(0.0, float(credits[row]) + delta), 2)
    return pd.DataFrame(
        {
            "key": key_idx,
            "day": day.astype("datetime64[D]"),
            "calls": calls[keep],
            "jobs": jobs[keep],
            "credits": credits,
            "failed": failed[keep],
        }
    )


# ------------------------------------------------------------------------------------------- loading


def _group_tables(
    keys: Keys, traffic: Traffic, history: pd.DataFrame, daily: pd.DataFrame, seed: int, now: datetime
) -> dict[str, pa.Table]:
    """A group's events, jobs, status history and daily summary, in the collectors' columns."""
    now_ms = _ms(now.replace(tzinfo=UTC))
    key_names = pa.array(keys.frame["key_name"].to_numpy(dtype=object), type=pa.string())

    keep = np.flatnonzero(traffic.ev_keep & keys.managed[traffic.ev_key])
    job = traffic.ev_job[keep]
    ep = traffic.ev_ep[keep].astype(np.int64)
    has_job = job >= 0
    job_ids = _ids(np.where(has_job, job, 0), seed, "job", "job_")
    job_ids = pc.if_else(pa.array(has_job), job_ids, pa.nulls(len(job), pa.string()))
    paths = _pick_text([p for _, p in ENDPOINTS], ep)
    t = traffic.ev_t[keep]
    seq = traffic.ev_seq[keep]
    events = pa.table(
        {
            "event_id": _ids(seq, seed, "evt", "evt_"),
            "key_name": key_names.take(pa.array(traffic.ev_key[keep])),
            "occurred_at": _times(t),
            "endpoint": pc.if_else(
                pa.array((ep == 1) & has_job), pc.binary_join_element_wise("/v1/jobs/", job_ids, ""), paths
            ),
            "method": _pick_text([m for m, _ in ENDPOINTS], ep),
            "status_code": pa.array(traffic.ev_status[keep].astype(np.int32)),
            "request_id": _ids(seq, seed, "req", "req_"),
            "job_id": job_ids,
            "model": _pick_text(MODELS, traffic.ev_model[keep].astype(np.int64)),
            "credits": pa.array(traffic.ev_credits[keep].astype(np.float64)),
            "first_seen_at": _times(np.minimum((t // POLL_MS + 1) * POLL_MS, now_ms)),
        }
    )
    del job_ids, paths, seq

    jkeep = keys.managed[traffic.j_key]
    jobs_seq = traffic.j_seq[jkeep]
    history = history[keys.managed[(history["job"].to_numpy() >> KEY_SHIFT)]]
    seen = history.groupby("job")["observed"].agg(["min", "max"]).reindex(jobs_seq)
    status = traffic.j_status[jkeep].astype(np.int64)
    fmt = traffic.j_fmt[jkeep].astype(np.int64)
    ids = _ids(jobs_seq, seed, "job", "job_")
    with_output = (status == 2) & ~traffic.j_no_output[jkeep]
    output = pc.binary_join_element_wise(
        "https://cdn.removebgvideo.com/out/", ids, ".", _pick_text([_OUTPUT_EXT[f] for f in FORMATS], fmt), ""
    )
    jobs = pa.table(
        {
            "job_id": ids,
            "key_name": key_names.take(pa.array(traffic.j_key[jkeep])),
            "created_at": _times(traffic.j_t[jkeep]),
            "status": _pick_text(_STATUSES, status),
            "progress": pa.array(traffic.j_progress[jkeep].astype(np.float64)),
            "model": _pick_text(MODELS, traffic.j_model[jkeep].astype(np.int64)),
            "output_format": _pick_text(FORMATS, fmt),
            "duration_seconds": pa.array(traffic.j_dur[jkeep].astype(np.float64)),
            "credits_charged": pa.array(traffic.j_credits[jkeep].astype(np.float64)),
            "billing_status": _pick_text(_BILLING, traffic.j_billing[jkeep].astype(np.int64)),
            "output_url": pc.if_else(pa.array(with_output), output, pa.nulls(len(ids), pa.string())),
            "error": _pick_text(ERRORS, np.where(status == 3, traffic.j_err[jkeep], -1).astype(np.int64)),
            "first_seen_at": _times(seen["min"].to_numpy()),
            "last_seen_at": _times(seen["max"].to_numpy()),
        }
    )
    statuses = pa.table(
        {
            "job_id": _ids(history["job"].to_numpy(), seed, "job", "job_"),
            "status": _pick_text(_STATUSES, history["status"].to_numpy().astype(np.int64)),
            "observed_at": _times(history["observed"].to_numpy()),
        }
    )
    usage = pa.table(
        {
            "key_name": key_names.take(pa.array(daily["key"].to_numpy())),
            "day": pa.array(daily["day"].to_numpy().astype("datetime64[D]")),
            "calls": pa.array(daily["calls"].to_numpy().astype(np.int64)),
            "jobs": pa.array(daily["jobs"].to_numpy().astype(np.int64)),
            "credits": pa.array(daily["credits"].to_numpy().astype(np.float64)),
            "failed": pa.array(daily["failed"].to_numpy().astype(np.int64)),
            "fetched_at": pa.array(np.full(len(daily), np.datetime64(now, "us"))),
        }
    )
    return {"usage_event_log": events, "job_state": jobs, "job_status_log": statuses, "usage_daily": usage}


@dataclass
class FleetTotals:
    """What the bookkeeping rows need from every group: per-key first and last calls, jobs, gaps."""

    first: np.ndarray  # earliest call the event poll saw (ms), or int64 max
    last: np.ndarray  # latest call (ms), or -1
    jobs: np.ndarray
    gaps: list[tuple[int, int, int, int]] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, n_keys: int) -> FleetTotals:
        return cls(
            np.full(n_keys, np.iinfo(np.int64).max, dtype=np.int64),
            np.full(n_keys, -1, dtype=np.int64),
            np.zeros(n_keys, dtype=np.int64),
        )

    def add(self, traffic: Traffic) -> None:
        np.maximum.at(self.last, traffic.ev_key, traffic.ev_t)
        kept = traffic.ev_keep
        np.minimum.at(self.first, traffic.ev_key[kept], traffic.ev_t[kept])
        self.jobs += np.bincount(traffic.j_key, minlength=len(self.jobs))
        self.gaps.extend(traffic.gaps)
        for name, count in traffic.injected.items():
            self.injected[name] = self.injected.get(name, 0) + count


def write_database(path: Path, fleet: Fleet, now: datetime, group_keys: int, progress: Callable[[str], None]) -> None:
    """Bulk-load everything in the collectors' schema through the store (its migrations create the tables).

    Keys are drawn and loaded `group_keys` at a time, each group in one transaction, so memory is bounded
    by a group whatever the fleet.
    """
    keys, seed = fleet.keys, fleet.seed
    run_start = now - timedelta(minutes=4)
    managed = keys.frame[keys.managed].reset_index(drop=True)
    registry = managed[
        ["key_name", "environment", "owner", "owner_status", "fingerprint", "masked_key", "created_at", "rotated_at"]
    ].assign(configured=True, first_seen_at=pd.Timestamp(run_start), updated_at=pd.Timestamp(run_start))
    rates = pd.DataFrame(
        {"model": list(MODELS), "credits_per_minute": list(MODEL_RATES), "fetched_at": pd.Timestamp(run_start)}
    )
    bulk_load(path, {"key_registry": registry, "model_pricing": rates})
    progress("keys and pricing")

    n_keys = len(keys.weight)
    totals = FleetTotals.empty(n_keys)
    for lo in range(0, n_keys, group_keys):
        hi = min(n_keys, lo + group_keys)
        traffic = generate(fleet, lo, hi)
        history = status_history(traffic, seed, fleet.window.now_ms, lo, hi)
        daily = daily_frame(traffic, fleet, lo, hi)
        loaded = bulk_load(path, _group_tables(keys, traffic, history, daily, seed, now)).rows
        totals.add(traffic)
        del traffic, history, daily
        progress(
            f"keys {lo}-{hi - 1}: {loaded['usage_event_log']:,} events, {loaded['job_state']:,} jobs, "
            f"{loaded['job_status_log']:,} status rows, {loaded['usage_daily']:,} daily rows"
        )
    bulk_load(path, _bookkeeping_tables(keys, totals, seed, now, run_start))
    _load_run(path, keys, seed, now, run_start, totals.jobs)
    progress("inventory, cursors, run log")


_STATUSES = ("pending", "processing", "completed", "failed")
_BILLING = ("charged", "refunded", "not_charged", "pending")


def _ts(ms: int) -> datetime | None:
    if ms < 0 or ms == np.iinfo(np.int64).max:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def _bookkeeping_tables(
    keys: Keys, totals: FleetTotals, seed: int, now: datetime, run_start: datetime
) -> dict[str, pd.DataFrame]:
    """Admin inventory, cursors, coverage gaps and a few quarantined records."""
    rng = np.random.default_rng([seed, 8181])
    now_ms = _ms(now.replace(tzinfo=UTC))
    n_keys = len(keys.weight)
    first, last, job_totals = totals.first, totals.last, totals.jobs
    frame = keys.frame

    inventory = frame[frame["created_at"] <= pd.Timestamp(now)][
        ["idx", "fingerprint", "client_id", "key_name", "note", "enabled", "created_at"]
    ].copy()
    # Keys that went quiet before the window still have a last use upstream: the inventory knows it.
    quiet = (last < 0) & (keys.until_h < now_ms // HOUR_MS) & (keys.weight > 0)
    last_used = np.where(quiet, keys.until_h * HOUR_MS - rng.integers(60_000, HOUR_MS, n_keys), last)
    inventory["last_used_at"] = [_ts(int(last_used[i])) for i in inventory["idx"]]
    inventory["last_used_at"] = pd.to_datetime(inventory["last_used_at"]).astype("datetime64[us]")
    inventory["fetched_at"] = pd.Timestamp(run_start + timedelta(seconds=5))
    inventory = inventory.drop(columns="idx").rename(columns={"fingerprint": "key_fingerprint", "key_name": "name"})

    managed = frame[keys.managed]
    today = now.date().isoformat()
    cursors = []
    for i, name in zip(managed["idx"], managed["key_name"], strict=True):
        if last[i] >= 0:
            events_cursor = {
                "covered_since": _ts(int(first[i])).isoformat(),
                "newest_at": _ts(int(last[i])).isoformat(),
            }
        else:
            events_cursor = {"covered_since": run_start.isoformat(timespec="seconds")}
        for endpoint, cursor in (
            ("summary", {"last_day": today}),
            ("events", events_cursor),
            ("jobs", {"complete": True, "total": int(job_totals[i])}),
        ):
            cursors.append((name, endpoint, json.dumps(cursor, sort_keys=True, default=str), now))
    cursor_frame = pd.DataFrame(cursors, columns=["key_name", "endpoint", "cursor", "updated_at"])
    cursor_frame["updated_at"] = pd.to_datetime(cursor_frame["updated_at"]).astype("datetime64[us]")

    names = frame["key_name"].to_numpy()
    gaps = pd.DataFrame(
        [(str(names[k]), "events", _ts(a), _ts(b), _ts(d)) for k, a, b, d in totals.gaps],
        columns=["key_name", "endpoint", "gap_start", "gap_end", "detected_at"],
    )
    reasons = (
        ("events", "event id missing", {"created_at": "2026-01-01T00:00:00Z", "endpoint": "/v1/jobs"}),
        ("jobs", "unknown job status 'queued'", {"id": "job_unknownstatus", "status": "queued"}),
        ("events", "credits is not a number: 'n/a'", {"id": "evt_badcredits", "credits": "n/a"}),
        ("summary", "date missing or not text: None", {"calls": 12, "jobs": 1}),
        ("jobs", "created_at: not a timestamp: 'yesterday'", {"id": "job_badtime", "created_at": "yesterday"}),
    )
    quarantined = []
    for n in range(max(3, n_keys // 100)):
        endpoint, reason, record = reasons[n % len(reasons)]
        name = str(managed["key_name"].iloc[int(rng.integers(0, len(managed)))]) if len(managed) else None
        fetched = _ts(now_ms - int(rng.integers(0, 7 * DAY_MS)))
        quarantined.append((endpoint, name, fetched, f"req_q{n:04d}", reason, json.dumps(dict(record, n=n))))
    quarantine = pd.DataFrame(
        quarantined, columns=["endpoint", "key_name", "fetched_at", "request_id", "reason", "record"]
    )
    return {
        "admin_inventory": inventory,
        "sync_state": cursor_frame,
        "coverage_gap_log": gaps,
        "quarantine_log": quarantine,
    }


def _load_run(path: Path, keys: Keys, seed: int, now: datetime, run_start: datetime, job_totals: np.ndarray) -> None:
    """The one collector run that 'wrote' all this, its per key and endpoint items and raw landings."""
    managed = keys.frame[keys.managed]
    items = [(name, endpoint) for name in managed["key_name"] for endpoint in PER_KEY_ENDPOINTS]
    n_items = len(items) + 2
    run = pd.DataFrame(
        [
            {
                "started_at": run_start,
                "finished_at": now,
                "status": "ok",
                "mode": "once",
                "endpoints": "pricing,admin,summary,events,jobs",
                "keys_total": len(managed),
                "keys_ok": len(managed),
                "requests": n_items + int(job_totals.sum() // 100),
                "retries": 3,
                "rows_written": 0,
                "message": "synthetic run written by simulator.scale",
            }
        ]
    )
    run_id = bulk_load(path, {"run_log": run}).ids["run_log"][0]
    step = (now - run_start) / max(1, n_items)
    rows = [("*", "pricing", run_start + step), ("*", "admin", run_start + 2 * step)]
    rows += [(name, endpoint, run_start + (3 + n) * step) for n, (name, endpoint) in enumerate(items)]
    item_frame = pd.DataFrame(rows, columns=["key_name", "endpoint", "finished_at"])
    item_frame["finished_at"] = pd.to_datetime(item_frame["finished_at"]).astype("datetime64[us]")
    request_ids = [
        _small_id(seed, "run", k + e, "req_")
        for k, e in zip(item_frame["key_name"], item_frame["endpoint"], strict=True)
    ]
    item_frame = item_frame.assign(run_id=run_id, status="ok", attempts=1, request_id=request_ids)
    fingerprint = dict(zip(managed["key_name"], managed["fingerprint"], strict=True))
    landings = item_frame.iloc[2:].assign(
        key_fingerprint=lambda f: f["key_name"].map(fingerprint),
        fetched_at=lambda f: f["finished_at"],
        http_status=200,
        body=lambda f: [
            json.dumps({"synthetic": True, "key": k, "endpoint": e, "note": "written by scale"})
            for k, e in zip(f["key_name"], f["endpoint"], strict=True)
        ],
    )
    landings["body_sha256"] = [hashlib.sha256(b.encode()).hexdigest() for b in landings["body"]]
    landings = landings[
        ["endpoint", "key_name", "key_fingerprint", "fetched_at", "request_id", "http_status", "body_sha256", "body"]
    ]
    bulk_load(path, {"run_item_log": item_frame, "raw_landing": landings})


def table_counts(path: Path) -> dict[str, int]:
    return _table_counts(path)


# ------------------------------------------------------------------------------------------- entry


def build(
    db_path: str | Path,
    n_keys: int = 1000,
    days: int = 90,
    seed: int = 7,
    now: datetime | None = None,
    events_per_key_day: float = EVENTS_PER_KEY_DAY,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    group_keys: int = GROUP_KEYS,
) -> ScaleResult:
    """Generate the database at `db_path` (written beside it first, so a failure leaves nothing half-made)."""
    began = time.monotonic()
    say = progress or (lambda message: None)

    def step(message: str) -> None:
        say(f"[{time.monotonic() - began:6.1f}s] {message}")

    target = Path(db_path)
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists (use --force to replace it)")
    now_aware = (now or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)).astimezone(UTC)
    now_naive = now_aware.replace(tzinfo=None)
    start_day = now_aware.date() - timedelta(days=days - 1)
    world_start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
    start_ms, now_ms = _ms(world_start), _ms(now_aware)

    catalog = build_catalog(seed, n_keys, now_aware, world_start)
    keys = build_keys(catalog, seed, start_ms // HOUR_MS, now_ms // HOUR_MS)
    fleet = plan_fleet(catalog, keys, seed, Window(start_ms, now_ms), events_per_key_day, group_keys)
    step(f"plan: {n_keys} keys, {len(catalog.incidents)} incidents, groups of {group_keys} keys")

    building = target.with_name(target.name + ".building")
    for leftover in (building, building.with_name(building.name + ".wal")):
        leftover.unlink(missing_ok=True)
    try:
        write_database(building, fleet, now_naive, group_keys, step)
        rows = table_counts(building)
        target.unlink(missing_ok=True)
        target.with_name(target.name + ".wal").unlink(missing_ok=True)
        os.replace(building, target)
    finally:
        for leftover in (building, building.with_name(building.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return ScaleResult(target, rows, target.stat().st_size, time.monotonic() - began)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulator.scale", description="Write a large, realistic collector database directly."
    )
    p.add_argument("--keys", type=int, default=1000, help="number of keys (default 1000)")
    p.add_argument("--days", type=int, default=90, help="days of history ending now (default 90)")
    p.add_argument("--db", required=True, help="DuckDB file to write")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--now", default=None, help="the instant the data ends at (ISO, UTC; default: this hour)")
    p.add_argument("--events-per-key-day", type=float, default=EVENTS_PER_KEY_DAY, help="average calls per key-day")
    p.add_argument(
        "--group-keys",
        type=int,
        default=GROUP_KEYS,
        help=f"keys generated and loaded at a time: memory grows with this, not with --keys (default {GROUP_KEYS})",
    )
    p.add_argument("--force", action="store_true", help="replace the file if it exists")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    restrict_umask()  # a database like the collectors': owner-only

    def fail(message: str) -> int:
        print(f"simulator.scale: error: {message}", file=sys.stderr)
        return 2

    if not 1 <= args.keys <= 100_000 or not 1 <= args.days <= 3650:
        return fail("--keys must be in 1..100000 and --days in 1..3650")
    if not 0 < args.events_per_key_day <= 10_000:
        return fail("--events-per-key-day must be in (0, 10000]")
    if not 1 <= args.group_keys <= 100_000:
        return fail("--group-keys must be in 1..100000")
    try:
        now = parse_instant(args.now) if args.now else None
    except ValueError:
        return fail(f"bad --now: {args.now!r} is not an ISO-8601 instant")
    progress = None if args.quiet else (lambda message: print(message, flush=True))
    try:
        result = build(
            args.db,
            args.keys,
            args.days,
            args.seed,
            now,
            args.events_per_key_day,
            args.force,
            progress,
            group_keys=args.group_keys,
        )
    except (FileExistsError, StoreError, OSError) as exc:
        return fail(str(exc))
    print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
