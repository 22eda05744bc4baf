"""The seeded world: per-key hourly traffic, events and jobs generated lazily per UTC day, plus truth."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import orjson

from .catalog import (
    FORMATS,
    MODEL_RATES,
    MODELS,
    Catalog,
    InjectedJob,
    KeySpec,
    build_catalog,
)
from .clock import Clock, iso, iso_ms, to_ms
from .live import LiveEvent, LiveJob, LiveSettings, LiveState

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# event kinds and endpoints
SUBMIT, POLL, OTHER = 0, 1, 2
ENDPOINTS = (
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs"),
    ("POST", "/v1/uploads"),
    ("GET", "/v1/usage/summary"),
    ("GET", "/v1/usage/events"),
    ("GET", "/v1/account"),
)
_OTHER_EP = np.array([2, 3, 4, 5, 6])
_OTHER_EP_P = np.array([0.3, 0.3, 0.12, 0.08, 0.2])
_SUB_CODES = np.array([200, 400, 402, 429, 500, 503])
_SUB_P = np.array([0.925, 0.02, 0.01, 0.025, 0.012, 0.008])
_POLL_CODES = np.array([200, 404, 429, 500])
_POLL_P = np.array([0.97, 0.005, 0.02, 0.005])
_OTHER_CODES = np.array([200, 400, 404, 429, 500, 502])
_OTHER_P = np.array([0.955, 0.01, 0.005, 0.02, 0.007, 0.003])
_FMT_P = np.array([0.55, 0.2, 0.12, 0.05, 0.08])
_RATES = np.array(MODEL_RATES)
_OUTPUT_EXT = {"mp4": "mp4", "webm": "webm", "mov": "mov", "gif": "gif", "png_sequence": "zip"}
ERRORS = (
    "decode_failed: unsupported codec",
    "processing_timeout: video exceeded processing time limit",
    "input_unreachable: could not download source url",
    "no_subject_detected: no foreground subject found",
    "internal_error: worker crashed, please retry",
)
# job billing codes
CHARGED, REFUNDED, NOT_CHARGED = 0, 1, 2
_BILLING = ("charged", "refunded", "not_charged")
SETTLE_MARGIN_MS = 15 * 60 * 1000  # every job settles within 10 minutes of creation
INJECTED_SETTLE_MS = 120_000  # an injected billing job settles this long after creation
BODY_CACHE_BYTES = 256 << 20  # rendered bodies kept (a warmed first collection of 1,000 keys is ~60 MB)
JOB_STATUSES = ("pending", "processing", "completed", "failed")


def _pick(rng: np.random.Generator, values: np.ndarray, probs: np.ndarray, size: int) -> np.ndarray:
    """Like rng.choice(values, p=probs, size=size), several times faster for small draws."""
    cum = np.cumsum(probs)
    return values[np.minimum(np.searchsorted(cum, rng.random(size) * cum[-1], "right"), len(values) - 1)]


_MODEL_IDX = np.arange(4)
_FMT_IDX = np.arange(5)


_EPOCH = datetime(1970, 1, 1)


def _iso_ms(ms: int) -> str:
    """clock.iso_ms, without the time zone round trip and strftime (same text for years 1000..9999)."""
    return (_EPOCH + timedelta(milliseconds=int(ms))).isoformat(timespec="milliseconds") + "Z"


def _iso_list(ms: np.ndarray) -> list[str]:
    """_iso_ms of every element, formatted by numpy in one call."""
    return [text + "Z" for text in np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms").tolist()]


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=4096)
def _day_iso(day: int) -> str:
    """YYYY-MM-DD of an epoch day (every summary row names its day; a few hundred distinct days)."""
    return date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


def _environment_of(name: str) -> str:
    """The environment a key's name says (`-prod`, `staging-`, …); dev when it says none."""
    aliases = {"prod": "prod", "production": "prod", "prd": "prod", "staging": "staging", "stg": "staging",
               "stage": "staging", "dev": "dev", "development": "dev", "local": "dev", "sandbox": "dev"}  # fmt: skip
    for token in reversed(name.lower().replace("_", "-").split("-")):
        if token in aliases:
            return aliases[token]
    return "dev"


def _hex(*parts: object, size: int = 12) -> str:
    return _blake("|".join(map(str, parts)), size)


def _blake(text: str, size: int = 12) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def json_bytes(obj: object) -> bytes:
    """The wire encoding of every JSON body the stand-in sends: orjson (the stdlib's encoder was a fifth of the
    stand-in's CPU serving a 10,000-key first collection, py-spy), or the stdlib's for what orjson refuses
    (integers past 64 bits, keys that are not text)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class DayData:
    """Everything one key did during one UTC day (all 24 hours, independent of `now`)."""

    day: int  # epoch day
    # events, sorted by time
    ev_t: np.ndarray  # int64 ms
    ev_kind: np.ndarray
    ev_ep: np.ndarray
    ev_status: np.ndarray
    ev_job: np.ndarray  # index into jobs (sorted order) or -1
    ev_model: np.ndarray  # -1 when not a submit
    ev_orphan: np.ndarray  # index into orphan_ids or -1
    ev_orphan_credit: np.ndarray
    orphan_ids: list[str]
    # jobs, sorted by (created, id)
    j_id: list[str]
    j_t: np.ndarray
    j_model: np.ndarray
    j_fmt: np.ndarray
    j_dur: np.ndarray
    j_fail: np.ndarray
    j_pending_ms: np.ndarray
    j_settle_ms: np.ndarray
    j_fail_progress: np.ndarray
    j_err: np.ndarray
    j_billing: np.ndarray
    j_charged: np.ndarray
    j_no_output: np.ndarray
    j_injected: np.ndarray  # index into catalog.injected_jobs or -1
    _index: dict[str, int] | None = None
    _job_table: tuple[np.ndarray, np.ndarray] | None = None
    _final_codes: np.ndarray | None = None

    def job_index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {job_id: i for i, job_id in enumerate(self.j_id)}
        return self._index

    def job_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The job columns as two row-major tables, so a page of jobs is two gathers rather than
        one per column: (created, format, pending, settle, fail progress, no output, error,
        billing, model) as integers, and (duration, charged) as floats."""
        if self._job_table is None:
            ints = [self.j_t, self.j_fmt, self.j_pending_ms, self.j_settle_ms, self.j_fail_progress,
                    self.j_no_output, self.j_err, self.j_billing, self.j_model]  # fmt: skip
            self._job_table = (np.column_stack(ints).astype(np.int64), np.column_stack([self.j_dur, self.j_charged]))
        return self._job_table

    def status_codes(self, now_ms: int) -> np.ndarray:
        """Per job status as of now: 0 pending, 1 processing, 2 completed, 3 failed."""
        if (self.day + 1) * DAY_MS + SETTLE_MARGIN_MS <= now_ms:
            # Every job of the day has settled (see SETTLE_MARGIN_MS): the codes no longer change.
            if self._final_codes is None:
                codes = np.where(self.j_fail, 3, 2)
                codes.flags.writeable = False  # shared by every caller from now on
                self._final_codes = codes
            return self._final_codes
        age = now_ms - self.j_t
        final = np.where(self.j_fail, 3, 2)
        return np.where(age < self.j_pending_ms, 0, np.where(age < self.j_settle_ms, 1, final))

    def event_credits(self, now_ms: int) -> np.ndarray:
        credits = self.ev_orphan_credit.copy()
        mask = (self.ev_kind == SUBMIT) & (self.ev_job >= 0)
        jobs = self.ev_job[mask]
        settled = self.j_t[jobs] + self.j_settle_ms[jobs] <= now_ms
        credits[mask] = np.where(settled, self.j_charged[jobs], 0.0)
        return credits


@dataclass
class DayAgg:
    calls: int
    jobs: int
    failed: int
    completed: int
    credits: float


@dataclass
class _JobDraws:
    """The draws every day starts with, in draw order (see World._draw_jobs)."""

    rng: np.random.Generator
    hours: np.ndarray
    n_oth: np.ndarray  # other calls per hour
    s_hour: np.ndarray  # submissions
    s_t: np.ndarray
    s_status: np.ndarray
    s_model: np.ndarray
    ok: np.ndarray
    j_t: np.ndarray  # jobs (the successful submissions)
    j_model: np.ndarray
    dur: np.ndarray
    j_fail: np.ndarray
    j_fmt: np.ndarray
    j_pending: np.ndarray
    j_settle: np.ndarray
    j_fail_progress: np.ndarray
    j_err: np.ndarray
    j_billing: np.ndarray
    j_charged: np.ndarray
    n_polls: np.ndarray


@dataclass
class Extras:
    """Calls added at runtime by /_sim/burst, kept sorted by time."""

    t: np.ndarray
    ep: np.ndarray
    status: np.ndarray
    ids: list[str]


# What a vendor's daily usage summary might leave out of its credits (World(summary_excludes=...)).
SUMMARY_EXCLUDABLE = ("duplicate_charge", "orphan_charge", "failed_but_charged")


class World:
    """A deterministic function of (seed, n_keys, days, anchor) and the clock.

    `now` may be a datetime (frozen clock at that instant), a Clock, or None (wall clock;
    the anchor is the wall time at construction floored to the hour).
    """

    def __init__(
        self,
        seed: int = 7,
        n_keys: int = 30,
        days: int = 90,
        now: datetime | Clock | None = None,
        cache_days: int = 20_000,
        summary_excludes: frozenset[str] | tuple[str, ...] = (),
    ) -> None:
        """`summary_excludes` (of SUMMARY_EXCLUDABLE): charges the usage summary's daily credits leave out,
        as a vendor may (the default counts every charge); the charges themselves stay in events and jobs."""
        if isinstance(now, Clock):
            self.clock = now
        elif isinstance(now, datetime):
            self.clock = Clock(now)
        else:
            self.clock = Clock(None)
        current = self.clock.now()
        self.anchor = current if self.clock.frozen else current.replace(minute=0, second=0, microsecond=0)
        self.seed = int(seed)
        self.n_keys = int(n_keys)
        self.days = int(days)
        start_day = self.anchor.date() - timedelta(days=self.days - 1)
        self.world_start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=UTC)
        self.catalog: Catalog = build_catalog(self.seed, self.n_keys, self.anchor, self.world_start)
        self._keys = {k.name: k for k in self.catalog.keys}
        self._by_secret = {k.secret: k for k in self.catalog.keys}
        self._anchor_hour = to_ms(self.anchor.replace(minute=0, second=0, microsecond=0)) // HOUR_MS
        self._incidents: dict[int, list] = {}
        for inc in self.catalog.incidents:
            self._incidents.setdefault(inc.uid, []).append(inc)
        self._injected: dict[tuple[int, int], list[InjectedJob]] = {}
        for job in self.catalog.injected_jobs:
            self._injected.setdefault((job.uid, job.created_ms // DAY_MS), []).append(job)
        self._orphans: dict[tuple[int, int], list] = {}
        for orphan in self.catalog.orphans:
            self._orphans.setdefault((orphan.uid, orphan.created_ms // DAY_MS), []).append(orphan)
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[int, int], DayData] = OrderedDict()
        self._cache_days = cache_days
        self._agg: dict[tuple[int, int], DayAgg] = {}
        self._extras: dict[int, Extras] = {}
        self._bodies: OrderedDict[tuple, tuple[int, Extras | None, bytes]] = OrderedDict()
        self._body_bytes = 0
        self._bursts: list[dict] = []
        self._billing_truth: list[dict] | None = None
        self.ledger_truth: list[dict] | None = None
        unknown = set(summary_excludes) - set(SUMMARY_EXCLUDABLE)
        if unknown:
            raise ValueError(f"summary_excludes: unknown {', '.join(sorted(unknown))}")
        self.summary_excludes = frozenset(summary_excludes)
        self.live = LiveState(seed=self.seed)

    # ------------------------------------------------------------------ keys

    def now(self) -> datetime:
        return self.clock.now()

    def keys(self) -> list[KeySpec]:
        return list(self.catalog.keys)

    def key(self, name: str) -> KeySpec:
        return self._keys[name]

    def key_by_secret(self, secret: str) -> KeySpec | None:
        return self._by_secret.get(secret)

    def is_enabled(self, spec: KeySpec) -> bool:
        """The catalog's state, unless the admin API changed it."""
        return self.live.enabled.get(spec.uid, spec.enabled)

    def key_by_fingerprint(self, fingerprint: str) -> KeySpec | None:
        return next((k for k in self.catalog.keys if k.fingerprint == fingerprint), None)

    # -------------------------------------------------------------- generation

    def _hour_params(self, spec: KeySpec, hours: np.ndarray):
        local = hours + spec.tz_offset
        hod = (local % 24).astype(float)
        dow = ((local // 24) + 3) % 7  # epoch day 0 was a Thursday; Monday = 0
        if spec.shape == "night":
            dist = np.minimum(np.abs(hod - 2.0), 24 - np.abs(hod - 2.0))
            shape = 0.08 + 0.92 * np.exp(-0.5 * (dist / 1.6) ** 2)
        else:
            shape = 0.12 + 0.88 * np.exp(-0.5 * ((hod - 13.5) / 3.5) ** 2)
        week = np.where(dow >= 5, spec.weekend, 1.0)
        growth = np.exp(spec.growth * (hours - self._anchor_hour) / 720.0)
        base = spec.base_rate * shape * week * growth
        active = hours >= to_ms(spec.active_from) // HOUR_MS
        if spec.active_until is not None:
            active &= hours < to_ms(spec.active_until) // HOUR_MS
        for start, end in self.live.disabled_hours.get(spec.uid, ()):  # disabled through the admin API
            active &= ~((hours >= start) & (hours < (end if end is not None else hours[-1] + 1)))
        base = np.where(active, base, 0.0)
        share = spec.submit_share
        job_calls = min(0.6, share * 3.3)
        lam_sub = base * share
        lam_other = base * (1.0 - job_calls)
        fail_p = np.full(len(hours), spec.fail_prob)
        pro_burst = np.zeros(len(hours), dtype=bool)
        for inc in self._incidents.get(spec.uid, ()):
            h0, h1 = to_ms(inc.start) // HOUR_MS, to_ms(inc.end) // HOUR_MS
            inside = (hours >= h0) & (hours < h1)
            if not inside.any():
                continue
            if inc.direction == "drop":
                lam_sub = np.where(inside, 0.0, lam_sub)
                lam_other = np.where(inside, 0.0, lam_other)
            elif inc.metric == "calls":
                factor = (inc.multiplier - job_calls) / (1.0 - job_calls)
                lam_other = np.where(inside, lam_other * factor, lam_other)
            elif inc.metric == "failed_jobs":
                fail_p = np.where(inside, inc.multiplier, fail_p)
                lam_sub = np.where(inside, lam_sub * 3.0, lam_sub)
            elif inc.metric == "credits":
                lam_sub = np.where(inside, lam_sub * 2.0, lam_sub)
                pro_burst |= inside
        return lam_sub, lam_other, fail_p, pro_burst

    def _job_id(self, spec: KeySpec, day: int, tag: object) -> str:
        head = _hex(self.seed, spec.uid, day, tag, "job", size=10)
        mask = int(_hex(self.seed, spec.uid, head, size=2), 16)
        return f"job_{head}{(day ^ mask) & 0xFFFF:04x}"

    def _job_day(self, spec: KeySpec, job_id: str) -> int | None:
        if not job_id.startswith("job_") or len(job_id) != 28:
            return None
        head, tail = job_id[4:24], job_id[24:]
        try:
            code = int(tail, 16)
        except ValueError:
            return None
        mask = int(_hex(self.seed, spec.uid, head, size=2), 16)
        return code ^ mask

    def _draw_jobs(self, spec: KeySpec, day: int) -> _JobDraws:
        """The first draws of a day (calls per hour, submissions, jobs, polls per job).

        Shared by `_generate` and `_final_agg`, so both see the same random sequence: the
        aggregates of a past day need only these, not the events and ids `_generate` builds.
        """
        rng = np.random.default_rng([self.seed, spec.uid, day, 3])
        hours = np.arange(day * 24, day * 24 + 24, dtype=np.int64)
        lam_sub, lam_other, fail_p, pro_burst = self._hour_params(spec, hours)
        n_sub = rng.poisson(lam_sub)
        n_oth = rng.poisson(lam_other)
        # job submissions
        s_hour = np.repeat(np.arange(24), n_sub)
        n_s = len(s_hour)
        s_t = hours[s_hour] * HOUR_MS + (rng.random(n_s) * 3_240_000).astype(np.int64)
        s_status = _pick(rng, _SUB_CODES, _SUB_P, n_s)
        s_model = _pick(rng, _MODEL_IDX, np.array(spec.model_probs), n_s)
        burst = pro_burst[s_hour]
        s_model = np.where(burst & (rng.random(n_s) < 0.9), 2, s_model)
        ok = s_status == 200
        j_t = s_t[ok]
        j_model = s_model[ok]
        j_hour = s_hour[ok]
        n_j = len(j_t)
        dur = np.exp(rng.normal(np.log(40.0), 0.9, n_j))
        long = np.exp(rng.normal(np.log(330.0), 0.35, n_j))
        dur = np.where(burst[ok], np.clip(long, 60, 600), np.clip(dur, 5, 600))
        dur = np.round(dur, 1)
        j_fail = rng.random(n_j) < fail_p[j_hour]
        j_fmt = _pick(rng, _FMT_IDX, _FMT_P, n_j)
        j_pending = rng.integers(3_000, 20_000, n_j).astype(np.int64)
        j_settle = (np.clip(30 + dur * 0.8 + rng.uniform(0, 60, n_j), 45, 590) * 1000).astype(np.int64)
        j_fail_progress = rng.integers(0, 95, n_j)
        j_err = rng.integers(0, len(ERRORS), n_j)
        j_billing = np.where(j_fail, np.where(rng.random(n_j) < 0.5, REFUNDED, NOT_CHARGED), CHARGED)
        j_charged = np.where(j_fail, 0.0, np.round(dur / 60.0 * _RATES[j_model], 2))
        n_polls = 1 + rng.poisson(1.5, n_j)
        return _JobDraws(
            rng=rng, hours=hours, n_oth=n_oth, s_hour=s_hour, s_t=s_t, s_status=s_status, s_model=s_model,
            ok=ok, j_t=j_t, j_model=j_model, dur=dur, j_fail=j_fail, j_fmt=j_fmt, j_pending=j_pending,
            j_settle=j_settle, j_fail_progress=j_fail_progress, j_err=j_err, j_billing=j_billing,
            j_charged=j_charged, n_polls=n_polls,
        )  # fmt: skip

    def _generate(self, spec: KeySpec, day: int) -> DayData:
        d = self._draw_jobs(spec, day)
        rng, hours, n_oth, s_t, s_status, s_model, ok = d.rng, d.hours, d.n_oth, d.s_t, d.s_status, d.s_model, d.ok
        j_t, j_model, dur, j_fail, j_fmt, n_polls = d.j_t, d.j_model, d.dur, d.j_fail, d.j_fmt, d.n_polls
        j_pending, j_settle, j_fail_progress, j_err = d.j_pending, d.j_settle, d.j_fail_progress, d.j_err
        j_billing, j_charged = d.j_billing, d.j_charged
        n_s, n_j = len(s_t), len(j_t)
        j_no_output = np.zeros(n_j, dtype=bool)
        j_injected = np.full(n_j, -1)
        tags: list[object] = list(range(n_j))
        # polls
        p_job = np.repeat(np.arange(n_j), n_polls)
        gaps = rng.uniform(3_000, 30_000, len(p_job))
        cum = np.cumsum(gaps)
        starts = np.concatenate([[0], np.cumsum(n_polls)[:-1]]).astype(np.int64)
        base = cum[starts] - gaps[starts] if n_j else np.zeros(0)
        offsets = np.minimum(cum - np.repeat(base, n_polls), 350_000).astype(np.int64)
        p_t = j_t[p_job] + offsets
        p_status = _pick(rng, _POLL_CODES, _POLL_P, len(p_job))
        # other calls
        o_hour = np.repeat(np.arange(24), n_oth)
        o_t = hours[o_hour] * HOUR_MS + (rng.random(len(o_hour)) * HOUR_MS).astype(np.int64)
        o_ep = _pick(rng, _OTHER_EP, _OTHER_EP_P, len(o_hour))
        o_status = _pick(rng, _OTHER_CODES, _OTHER_P, len(o_hour))

        # submit events of the successful jobs reference job index; failed submits reference none
        s_job = np.full(n_s, -1)
        s_job[ok] = np.arange(n_j)
        ev = {
            "t": [s_t, p_t, o_t],
            "kind": [np.full(n_s, SUBMIT), np.full(len(p_t), POLL), np.full(len(o_t), OTHER)],
            "ep": [np.zeros(n_s, dtype=np.int64), np.ones(len(p_t), dtype=np.int64), o_ep],
            "status": [s_status, p_status, o_status],
            "job": [s_job, p_job, np.full(len(o_t), -1)],
            "model": [s_model, np.full(len(p_t), -1), np.full(len(o_t), -1)],
            "orphan": [np.full(n_s + len(p_t) + len(o_t), -1)],
            "credit": [np.zeros(n_s + len(p_t) + len(o_t))],
        }
        job_cols = {
            "t": [j_t], "model": [j_model], "fmt": [j_fmt], "dur": [dur], "fail": [j_fail],
            "pending": [j_pending], "settle": [j_settle], "fprog": [j_fail_progress],
            "err": [j_err], "billing": [j_billing], "charged": [j_charged],
            "noout": [j_no_output], "inj": [j_injected],
        }  # fmt: skip

        # injected billing mistakes
        n_total = n_j
        for inj in self._injected.get((spec.uid, day), ()):
            idx = n_total
            n_total += 1
            tags.append(f"inj{inj.k}")
            values = {
                "t": inj.created_ms, "model": inj.model, "fmt": inj.fmt, "dur": inj.duration,
                "fail": inj.failed, "pending": 5_000, "settle": INJECTED_SETTLE_MS, "fprog": 40, "err": 1,
                "billing": CHARGED, "charged": inj.charged, "noout": inj.missing_output,
                "inj": self.catalog.injected_jobs.index(inj),
            }  # fmt: skip
            for col, value in values.items():
                job_cols[col].append(np.array([value]))
            times = [inj.created_ms, inj.created_ms + 8_000, inj.created_ms + 30_000, inj.created_ms + 140_000]
            kinds = [SUBMIT, POLL, POLL, POLL]
            if inj.duplicate_after_ms is not None:
                times.append(inj.created_ms + inj.duplicate_after_ms)
                kinds.append(SUBMIT)
            count = len(times)
            ev["t"].append(np.array(times, dtype=np.int64))
            ev["kind"].append(np.array(kinds))
            ev["ep"].append(np.array([0 if k == SUBMIT else 1 for k in kinds]))
            ev["status"].append(np.full(count, 200))
            ev["job"].append(np.full(count, idx))
            ev["model"].append(np.array([inj.model if k == SUBMIT else -1 for k in kinds]))
            ev["orphan"].append(np.full(count, -1))
            ev["credit"].append(np.zeros(count))
        orphan_ids: list[str] = []
        for orphan in self._orphans.get((spec.uid, day), ()):
            orphan_ids.append(self._job_id(spec, day, f"orphan{orphan.k}"))
            ev["t"].append(np.array([orphan.created_ms], dtype=np.int64))
            ev["kind"].append(np.array([SUBMIT]))
            ev["ep"].append(np.array([0]))
            ev["status"].append(np.array([200]))
            ev["job"].append(np.array([-1]))
            ev["model"].append(np.array([orphan.model]))
            ev["orphan"].append(np.array([len(orphan_ids) - 1]))
            ev["credit"].append(np.array([orphan.credits]))

        cols = {name: np.concatenate(parts) for name, parts in job_cols.items()}
        ids = [self._job_id(spec, day, tag) for tag in tags]
        order = np.lexsort((np.array(ids, dtype=object) if ids else np.zeros(0), cols["t"]))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        evc = {name: np.concatenate(parts) for name, parts in ev.items()}
        ev_job = np.where(evc["job"] >= 0, rank[np.maximum(evc["job"], 0)] if len(rank) else -1, -1)
        ev_order = np.argsort(evc["t"], kind="stable")
        return DayData(
            day=day,
            ev_t=evc["t"][ev_order].astype(np.int64),
            ev_kind=evc["kind"][ev_order].astype(np.int8),
            ev_ep=evc["ep"][ev_order].astype(np.int8),
            ev_status=evc["status"][ev_order].astype(np.int16),
            ev_job=ev_job[ev_order].astype(np.int64),
            ev_model=evc["model"][ev_order].astype(np.int8),
            ev_orphan=evc["orphan"][ev_order].astype(np.int64),
            ev_orphan_credit=evc["credit"][ev_order].astype(float),
            orphan_ids=orphan_ids,
            j_id=[ids[i] for i in order],
            j_t=cols["t"][order].astype(np.int64),
            j_model=cols["model"][order].astype(np.int8),
            j_fmt=cols["fmt"][order].astype(np.int8),
            j_dur=cols["dur"][order].astype(float),
            j_fail=cols["fail"][order].astype(bool),
            j_pending_ms=cols["pending"][order].astype(np.int64),
            j_settle_ms=cols["settle"][order].astype(np.int64),
            j_fail_progress=cols["fprog"][order].astype(np.int64),
            j_err=cols["err"][order].astype(np.int64),
            j_billing=cols["billing"][order].astype(np.int8),
            j_charged=cols["charged"][order].astype(float),
            j_no_output=cols["noout"][order].astype(bool),
            j_injected=cols["inj"][order].astype(np.int64),
        )

    def day_data(self, spec: KeySpec, day: int) -> DayData:
        key = (spec.uid, day)
        with self._lock:
            data = self._cache.get(key)
            if data is not None:
                self._cache.move_to_end(key)
                return data
        data = self._generate(spec, day)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self._cache_days:
                self._cache.popitem(last=False)
        return data

    # ------------------------------------------------------------ day ranges

    def _first_day(self, spec: KeySpec) -> int:
        return to_ms(spec.active_from) // DAY_MS

    def _summary_first_day(self, spec: KeySpec) -> int:
        return max(to_ms(spec.created_at) // DAY_MS, to_ms(self.world_start) // DAY_MS)

    def _days_with_traffic(self, spec: KeySpec, now_ms: int) -> range:
        """Epoch days that may hold this key's calls, newest first."""
        last = now_ms // DAY_MS
        if spec.active_until is not None:
            last = min(last, (to_ms(spec.active_until) - 1) // DAY_MS)
        first = self._first_day(spec)
        if spec.never_used:
            # injected items only (none on never-used keys by design)
            return range(last, last)
        return range(last, first - 1, -1)

    def _extras_for(self, spec: KeySpec) -> Extras | None:
        return self._extras.get(spec.uid)

    def _day_agg(self, spec: KeySpec, day: int, now_ms: int) -> DayAgg:
        """Aggregates of the generated traffic of one day as of now (burst extras excluded)."""
        final = (day + 1) * DAY_MS + SETTLE_MARGIN_MS <= now_ms
        key = (spec.uid, day)
        if final:
            agg = self._agg.get(key)
            if agg is not None:
                return agg
        if spec.never_used or day < self._first_day(spec) or day * DAY_MS > now_ms:
            agg = DayAgg(0, 0, 0, 0, 0.0)
        elif final and (spec.uid, day) not in self._cache:
            agg = self._final_agg(spec, day)
        else:
            data = self.day_data(spec, day)
            ev_seen = data.ev_t <= now_ms
            jobs_seen = data.j_t <= now_ms
            status = data.status_codes(now_ms)
            credits = float(np.round(data.event_credits(now_ms)[ev_seen].sum(), 2))
            agg = DayAgg(
                calls=int(ev_seen.sum()),
                jobs=int(jobs_seen.sum()),
                failed=int((jobs_seen & (status == 3)).sum()),
                completed=int((jobs_seen & (status == 2)).sum()),
                credits=credits,
            )
        if final:
            self._agg[key] = agg
        return agg

    def _final_agg(self, spec: KeySpec, day: int) -> DayAgg:
        """`_day_agg` of a settled past day from the first draws only (no events, ids or sorting).

        Every call, job and charge of the day is visible once it settled, so counts are array
        lengths and credits the sum of charged jobs, each submit event charging its job once
        (an injected duplicate charge twice), plus orphan charges; test_simulator checks that
        this equals the aggregate of the fully generated day.
        """
        d = self._draw_jobs(spec, day)
        charges = [d.j_charged]
        jobs, failed = len(d.j_t), int(d.j_fail.sum())
        calls = len(d.s_t) + int(d.n_polls.sum()) + int(d.n_oth.sum())
        for inj in self._injected.get((spec.uid, day), ()):
            submits = 1 if inj.duplicate_after_ms is None else 2
            calls += 3 + submits
            jobs += 1
            failed += bool(inj.failed)
            charges.append(np.full(submits, inj.charged))
        for orphan in self._orphans.get((spec.uid, day), ()):
            calls += 1
            charges.append(np.array([orphan.credits]))
        credits = float(np.round(np.concatenate(charges).sum(), 2))
        return DayAgg(calls=calls, jobs=jobs, failed=failed, completed=jobs - failed, credits=credits)

    def _extra_calls(self, spec: KeySpec, start_ms: int, end_ms: int) -> int:
        """Burst calls with start <= t < end."""
        extras = self._extras_for(spec)
        if extras is None:
            return 0
        return int(np.searchsorted(extras.t, end_ms, "left") - np.searchsorted(extras.t, start_ms, "left"))

    # ------------------------------------------------------------ API views

    def _resolve_now(self, now: datetime | None) -> datetime:
        return self.clock.now() if now is None else now.astimezone(UTC)

    def daily_usage(self, key_name: str, now: datetime | None = None, reported: bool = True) -> list[dict]:
        """Per-day usage since the key's creation (or the world start), oldest first.

        reported=True gives what /v1/usage/summary returns (including injected
        summary_mismatch days); reported=False gives the sum of the day's charge events.
        """
        spec = self._keys[key_name]
        now_dt = self._resolve_now(now)
        now_ms = to_ms(now_dt)
        first = self._summary_first_day(spec)
        return [self._usage_row(spec, day, now_ms, reported) for day in range(first, now_ms // DAY_MS + 1)]

    def _left_out(self, spec: KeySpec, day: int, now_ms: int) -> float:
        """Credits of a day's charges seen by now that the reported summary leaves out (summary_excludes)."""
        excludes, out = self.summary_excludes, 0.0
        if not excludes:
            return 0.0
        for inj in self._injected.get((spec.uid, day), ()):
            if inj.created_ms + INJECTED_SETTLE_MS > now_ms:
                continue  # an unsettled job's charge events carry no credits yet (DayData.event_credits)
            submits = [inj.created_ms]
            if inj.duplicate_after_ms is not None:
                submits.append(inj.created_ms + inj.duplicate_after_ms)
            seen = sum(t <= now_ms for t in submits)
            if inj.failed and "failed_but_charged" in excludes:
                out += inj.charged * seen
            elif "duplicate_charge" in excludes and seen > 1:
                out += inj.charged * (seen - 1)
        if "orphan_charge" in excludes:
            out += sum(o.credits for o in self._orphans.get((spec.uid, day), ()) if o.created_ms <= now_ms)
        return out

    def _usage_row(self, spec: KeySpec, day: int, now_ms: int, reported: bool) -> dict:
        agg = self._day_agg(spec, day, now_ms)
        day_iso = _day_iso(day)
        calls = agg.calls + self._extra_calls(spec, day * DAY_MS, min((day + 1) * DAY_MS, now_ms + 1))
        credits = agg.credits
        jobs, failed = agg.jobs, agg.failed
        if self.live.touches(spec.uid):
            live_calls, live_jobs, live_failed, live_credits = self._live_day(spec, day, now_ms)
            calls, jobs, failed = calls + live_calls, jobs + live_jobs, failed + live_failed
            credits = round(credits + live_credits, 2)
        if reported:
            if self.summary_excludes:
                credits = round(max(0.0, credits - self._left_out(spec, day, now_ms)), 2)
            delta = self.catalog.summary_mismatch.get((spec.name, day_iso))
            if delta is not None and (day + 1) * DAY_MS <= now_ms:
                credits = round(max(0.0, credits + delta), 2)
        return {"date": day_iso, "calls": calls, "jobs": jobs, "credits": credits, "failed": failed}

    def _live_day(self, spec: KeySpec, day: int, now_ms: int) -> tuple[int, int, int, float]:
        """Calls, jobs, failed jobs and credits that clients' own calls added to one day, as of now."""
        lo, hi = day * DAY_MS, min((day + 1) * DAY_MS, now_ms + 1)
        calls = credits = 0.0
        for event in self.live.events_by_key.get(spec.uid, ()):
            if lo <= event.t_ms < hi:
                calls += 1
                if event.endpoint == "/v1/jobs" and event.job_id:
                    credits += self.live.job_credits(self.live.jobs[event.job_id], now_ms)
        jobs = failed = 0
        mono = self.live.mono()
        for job in self.live.jobs_by_key.get(spec.uid, ()):
            if lo <= job.created_ms < hi:
                jobs += 1
                failed += job.status(now_ms, mono)[0] == "failed"
        return int(calls), jobs, failed, credits

    def summary(self, key_name: str, days: int = 7, now: datetime | None = None) -> dict:
        """The body of GET /v1/usage/summary?days=N for this key."""
        spec = self._keys[key_name]
        now_ms = to_ms(self._resolve_now(now))
        today = now_ms // DAY_MS
        first = max(today - days + 1, self._summary_first_day(spec))
        daily = [self._usage_row(spec, day, now_ms, True) for day in range(first, today + 1)]
        totals = {
            "calls": sum(r["calls"] for r in daily),
            "jobs": sum(r["jobs"] for r in daily),
            "credits": round(sum(r["credits"] for r in daily), 2),
            "failed": sum(r["failed"] for r in daily),
        }
        return {"days": days, "totals": totals, "daily": daily}

    def _day_events(self, spec: KeySpec, data: DayData, lo: int, hi: int, credits: np.ndarray) -> list[tuple]:
        """Events lo..hi-1 of a day, newest first, as (t, 0, event dict).

        Columns are sliced and converted to Python values once per slice: reading numpy scalars
        item by item cost more than building the dicts.
        """
        rows = slice(lo, hi)
        stamps = _iso_list(data.ev_t[rows])
        columns = (data.ev_t, data.ev_ep, data.ev_status, data.ev_job, data.ev_orphan, data.ev_model, credits)
        t, ep, status, job, orphan, model, credit = (col[rows].tolist() for col in columns)
        prefix = f"{self.seed}|{spec.uid}|{data.day}|"  # the leading parts of _hex(seed, uid, day, seq, tag)
        out = []
        for k in range(hi - lo - 1, -1, -1):
            seq = lo + k
            method, path = ENDPOINTS[ep[k]]
            job_id: str | None = None
            if job[k] >= 0:
                job_id = data.j_id[job[k]]
            elif orphan[k] >= 0:
                job_id = data.orphan_ids[orphan[k]]
            if ep[k] == 1 and job_id is not None:
                path = f"/v1/jobs/{job_id}"
            event = {
                "id": "evt_" + _blake(f"{prefix}{seq}|evt"),
                "created_at": stamps[k],
                "endpoint": path,
                "method": method,
                "status_code": status[k],
                "request_id": "req_" + _blake(f"{prefix}{seq}|req"),
                "job_id": job_id,
                "model": MODELS[model[k]] if model[k] >= 0 else None,
                "credits": credit[k],
            }
            out.append((t[k], 0, event))
        return out

    def _extra_dict(self, extras: Extras, i: int) -> dict:
        method, path = ENDPOINTS[int(extras.ep[i])]
        return {
            "id": "evt_" + extras.ids[i],
            "created_at": _iso_ms(extras.t[i]),
            "endpoint": path,
            "method": method,
            "status_code": int(extras.status[i]),
            "request_id": "req_" + _hex(extras.ids[i], "req"),
            "job_id": None,
            "model": None,
            "credits": 0.0,
        }

    def _live_event_dict(self, event: LiveEvent, now_ms: int) -> dict:
        job = self.live.jobs.get(event.job_id) if event.job_id else None
        charge = job is not None and event.endpoint == "/v1/jobs"
        return {
            "id": event.event_id,
            "created_at": _iso_ms(event.t_ms),
            "endpoint": event.endpoint,
            "method": event.method,
            "status_code": event.status_code,
            "request_id": event.request_id,
            "job_id": event.job_id,
            "model": MODELS[event.model] if event.model >= 0 else None,
            "credits": self.live.job_credits(job, now_ms) if charge and job is not None else 0.0,
        }

    def recent_events(self, key_name: str, limit: int = 20, now: datetime | None = None) -> list[dict]:
        """The body items of GET /v1/usage/events?limit=N: newest first, at most `limit`."""
        spec = self._keys[key_name]
        now_ms = to_ms(self._resolve_now(now))
        return self._events(spec, None, now_ms, limit)

    def events(self, key_name: str, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
        """All events with since <= created_at <= until (default: world start .. now), newest first."""
        spec = self._keys[key_name]
        until_ms = to_ms(self._resolve_now(until))
        since_ms = to_ms(since) if since is not None else None
        return self._events(spec, since_ms, until_ms, None)

    def _events(self, spec: KeySpec, since_ms: int | None, until_ms: int, limit: int | None) -> list[dict]:
        found: list[tuple[int, int, dict]] = []  # (t, tiebreak, event)
        for day in self._days_with_traffic(spec, until_ms):
            if since_ms is not None and (day + 1) * DAY_MS <= since_ms:
                break
            data = self.day_data(spec, day)
            hi = int(np.searchsorted(data.ev_t, until_ms, "right"))
            lo = 0 if since_ms is None else int(np.searchsorted(data.ev_t, since_ms, "left"))
            if limit is not None:
                lo = max(lo, hi - (limit - len(found)))
            if hi > lo:
                found.extend(self._day_events(spec, data, lo, hi, data.event_credits(until_ms)))
            if limit is not None and len(found) >= limit:
                break
        extras = self._extras_for(spec)
        if extras is not None:
            hi = int(np.searchsorted(extras.t, until_ms, "right"))
            lo = 0 if since_ms is None else int(np.searchsorted(extras.t, since_ms, "left"))
            if limit is not None:
                lo = max(lo, hi - limit)
            for i in range(hi - 1, lo - 1, -1):
                found.append((int(extras.t[i]), 1, self._extra_dict(extras, i)))
        live = self.live.events_by_key.get(spec.uid)
        if live:
            for event in live:
                if event.t_ms <= until_ms and (since_ms is None or event.t_ms >= since_ms):
                    found.append((event.t_ms, 2 + event.seq, self._live_event_dict(event, until_ms)))
        if extras is not None or live:
            found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        items = [event for _, _, event in found]
        return items[:limit] if limit is not None else items

    def body(self, view: str, key_name: str, args: tuple, now: datetime | None = None) -> bytes:
        """The JSON body of a per-key view as of now, rendered once per world state.

        view is "summary" (days,), "events" (limit,) or "jobs" (limit, offset, status). A view is a
        function of the key, args, now to the millisecond and the key's burst calls only, so with a
        frozen clock a repeat is a lookup, while a moved clock or a new burst renders afresh. A wall
        clock never asks for the same millisecond twice, so its bodies are not kept.
        """
        spec = self._keys[key_name]
        now_dt = self._resolve_now(now)
        now_ms = to_ms(now_dt)
        if self.live.touches(spec.uid):  # created jobs progress with the wall clock: never a kept body
            return json_bytes(self._view(view, key_name, args, now_dt))
        cache_key = (view, spec.uid, args)
        with self._lock:
            # Read before rendering: a burst landing meanwhile leaves a stale tag, hence a miss, never a stale hit.
            extras = self._extras.get(spec.uid)
            kept = self._bodies.get(cache_key)
            if kept is not None and kept[0] == now_ms and kept[1] is extras:
                self._bodies.move_to_end(cache_key)
                return kept[2]
        body = json_bytes(self._view(view, key_name, args, now_dt))
        if self.clock.frozen:
            self._keep_body(cache_key, (now_ms, extras, body))
        return body

    def _view(self, view: str, key_name: str, args: tuple, now: datetime) -> dict:
        if view == "summary":
            return self.summary(key_name, *args, now)
        if view == "events":
            return {"items": self.recent_events(key_name, *args, now)}
        if view == "jobs":
            return self.jobs_page(key_name, *args, now)
        raise ValueError(f"unknown view {view!r}")

    def _keep_body(self, cache_key: tuple, entry: tuple[int, Extras | None, bytes]) -> None:
        with self._lock:
            old = self._bodies.pop(cache_key, None)
            if old is not None:
                self._body_bytes -= len(old[2])
            self._bodies[cache_key] = entry
            self._body_bytes += len(entry[2])
            while self._body_bytes > BODY_CACHE_BYTES:
                self._body_bytes -= len(self._bodies.popitem(last=False)[1][2])

    def _job_at(self, data: DayData, i: int, status: int, now_ms: int) -> dict:
        return self._jobs_at(data, np.array([i]), np.array([status]), now_ms)[0]

    def _jobs_at(self, data: DayData, idx: np.ndarray, statuses: np.ndarray, now_ms: int) -> list[dict]:
        """The jobs idx of a day as of now, given their status codes.

        Rows are gathered and converted to Python values in one go per call: reading numpy
        scalars item by item cost more than building the dicts.
        """
        ints, floats = data.job_table()
        stamps = _iso_list(data.j_t[idx])
        out = []
        rows = zip(idx.tolist(), statuses.tolist(), ints[idx].tolist(), floats[idx].tolist(), stamps, strict=True)
        for i, status, row, (duration, charged), stamp in rows:
            t, fmt_code, pending, settle, fail_progress, no_output, err, billing, model = row
            job_id = data.j_id[i]
            fmt = FORMATS[fmt_code]
            settled = status >= 2
            if status == 0:
                progress = 0
            elif status == 1:
                progress = min(99, max(1, 100 * (now_ms - t - pending) // max(1, settle - pending)))
            elif status == 2:
                progress = 100
            else:
                progress = fail_progress
            output = None
            if status == 2 and not no_output:
                output = f"https://cdn.removebgvideo.com/out/{job_id}.{_OUTPUT_EXT[fmt]}"
            out.append(
                {
                    "id": job_id,
                    "status": JOB_STATUSES[status],
                    "progress": progress,
                    "output_url": output,
                    "error": ERRORS[err] if status == 3 else None,
                    "created_at": stamp,
                    "duration_seconds": duration,
                    "billing_status": _BILLING[billing] if settled else "pending",
                    "model": MODELS[model],
                    "output_format": fmt,
                    "credits": charged if settled else 0.0,
                }
            )
        return out

    def _jobs_of_day(
        self, data: DayData, now_ms: int, status: str | None, codes: np.ndarray | None = None
    ) -> np.ndarray:
        """Indices of the day's jobs created by now (with that status, if given), newest first."""
        codes = data.status_codes(now_ms) if codes is None else codes
        mask = data.j_t <= now_ms
        if status is not None:
            mask &= codes == JOB_STATUSES.index(status)
        return np.flatnonzero(mask)[::-1]

    def _job_count(self, spec: KeySpec, day: int, now_ms: int, status: str | None) -> int:
        agg = self._day_agg(spec, day, now_ms)
        if status is None:
            return agg.jobs
        if (day + 1) * DAY_MS + SETTLE_MARGIN_MS <= now_ms:
            return {"completed": agg.completed, "failed": agg.failed}.get(status, 0)
        return len(self._jobs_of_day(self.day_data(spec, day), now_ms, status))

    def jobs_page(
        self,
        key_name: str,
        limit: int = 20,
        offset: int = 0,
        status: str | None = None,
        now: datetime | None = None,
    ) -> dict:
        """The body of GET /v1/jobs: newest first by (created_at, id), with the total."""
        spec = self._keys[key_name]
        now_ms = to_ms(self._resolve_now(now))
        live = self._live_jobs(spec, now_ms, status)
        if not live:
            return self._generated_jobs_page(spec, limit, offset, status, now_ms)
        # Created jobs take their place among the generated ones by (created_at, id): each one's position is the
        # number of jobs newer than it, and the generated jobs fill the positions in between, in their order.
        positions = [self._generated_newer(spec, job, now_ms, status) + k for k, (job, _) in enumerate(live)]
        at = dict(zip(positions, live, strict=True))
        total = self._generated_jobs_page(spec, 1, 0, status, now_ms)["total"] + len(live)
        wanted = range(offset, min(offset + limit, total))
        generated = [p - sum(q < p for q in positions) for p in wanted if p not in at]
        page = iter(
            self._generated_jobs_page(spec, generated[-1] - generated[0] + 1, generated[0], status, now_ms)["items"]
            if generated
            else ()
        )
        items = [at[p][1] if p in at else next(page) for p in wanted]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    def _live_jobs(self, spec: KeySpec, now_ms: int, status: str | None) -> list[tuple[LiveJob, dict]]:
        """The key's created jobs (created by now, with that status if given) and their views, newest first."""
        jobs = self.live.jobs_by_key.get(spec.uid)
        if not jobs:
            return []
        mono = self.live.mono()
        out = []
        for job in sorted(jobs, key=lambda j: (j.created_ms, j.job_id), reverse=True):
            if job.created_ms > now_ms:
                continue
            view = job.view(now_ms, mono, _iso_ms)
            if status is None or view["status"] == status:
                out.append((job, view))
        return out

    def _generated_newer(self, spec: KeySpec, job: LiveJob, now_ms: int, status: str | None) -> int:
        """How many generated jobs (with that status) list before a created job: newer by (created_at, id)."""
        job_day = job.created_ms // DAY_MS
        count = 0
        for day in self._days_with_traffic(spec, now_ms):
            if day > job_day:
                count += self._job_count(spec, day, now_ms, status)
                continue
            if day == job_day:
                data = self.day_data(spec, day)
                for i in self._jobs_of_day(data, now_ms, status):
                    if (int(data.j_t[i]), data.j_id[i]) <= (job.created_ms, job.job_id):
                        break
                    count += 1
            break
        return count

    def _generated_jobs_page(self, spec: KeySpec, limit: int, offset: int, status: str | None, now_ms: int) -> dict:
        days = list(self._days_with_traffic(spec, now_ms))
        counts = [self._job_count(spec, day, now_ms, status) for day in days]
        items: list[dict] = []
        skip = offset
        for day, count in zip(days, counts, strict=True):
            if len(items) >= limit:
                break
            if skip >= count:
                skip -= count
                continue
            data = self.day_data(spec, day)
            codes = data.status_codes(now_ms)
            chosen = self._jobs_of_day(data, now_ms, status, codes)[skip : skip + limit - len(items)]
            skip = 0
            items.extend(self._jobs_at(data, chosen, codes[chosen], now_ms))
        return {"items": items, "total": int(sum(counts)), "limit": limit, "offset": offset}

    def jobs(self, key_name: str, now: datetime | None = None) -> list[dict]:
        """Truth: every job of the key created up to now, with its state as of now, newest first."""
        spec = self._keys[key_name]
        now_ms = to_ms(self._resolve_now(now))
        out: list[dict] = []
        for day in self._days_with_traffic(spec, now_ms):
            data = self.day_data(spec, day)
            codes = data.status_codes(now_ms)
            chosen = self._jobs_of_day(data, now_ms, None, codes)
            out.extend(self._jobs_at(data, chosen, codes[chosen], now_ms))
        live = self._live_jobs(spec, now_ms, None)
        if live:
            out = sorted(out + [view for _, view in live], key=lambda j: (j["created_at"], j["id"]), reverse=True)
        return out

    def job(self, key_name: str, job_id: str, now: datetime | None = None) -> dict | None:
        """One job of this key as of now, or None (unknown, another key's, or created after now)."""
        spec = self._keys[key_name]
        now_ms = to_ms(self._resolve_now(now))
        created = self.live.jobs.get(job_id)
        if created is not None:
            if created.uid != spec.uid or created.created_ms > now_ms:
                return None
            return created.view(now_ms, self.live.mono(), _iso_ms)
        day = self._job_day(spec, job_id)
        if day is None or day > now_ms // DAY_MS or day < self._first_day(spec):
            return None
        data = self.day_data(spec, day)
        i = data.job_index().get(job_id)
        if i is None or data.j_t[i] > now_ms:
            return None
        return self._job_at(data, i, int(data.status_codes(now_ms)[i]), now_ms)

    def last_used(self, key_name: str, now: datetime | None = None) -> datetime | None:
        """Time of the key's newest call at or before now, or None if it never made one."""
        spec = self._keys[key_name]
        now_ms = to_ms(self._resolve_now(now))
        best: int | None = None
        extras = self._extras_for(spec)
        if extras is not None:
            hi = int(np.searchsorted(extras.t, now_ms, "right"))
            if hi:
                best = int(extras.t[hi - 1])
        for event in self.live.events_by_key.get(spec.uid, ()):
            if event.t_ms <= now_ms and (best is None or event.t_ms > best):
                best = event.t_ms
        for day in self._days_with_traffic(spec, now_ms):
            if best is not None and (day + 1) * DAY_MS <= best:
                break
            data = self.day_data(spec, day)
            hi = int(np.searchsorted(data.ev_t, now_ms, "right"))
            if hi:
                best = max(best or 0, int(data.ev_t[hi - 1]))
                break
        return None if best is None else datetime.fromtimestamp(best / 1000, UTC)

    def admin_keys(self, now: datetime | None = None) -> list[dict]:
        """The body items of GET /v1/admin/keys (the upstream inventory, managed or not)."""
        now_dt = self._resolve_now(now)
        out = []
        for spec in sorted(self.catalog.keys, key=lambda k: (k.created_at, k.name)):
            if spec.created_at > now_dt:
                continue
            out.append(self._inventory_item(spec, now_dt))
        return out

    def warm(self, page_size: int = 100, now: datetime | None = None) -> int:
        """Precompute what a first collection reads: every day's aggregates, the days behind each
        key's newest events and first jobs page, and (frozen clock) the rendered bodies of its
        90-day summary, 100 newest events and first jobs page; returns the key-days computed.

        A benchmark serving thousands of keys warms first, so it times the collector rather than
        the stand-in's generation (the real API answers from stored aggregates). The day cache
        grows to hold everything warmed.
        """
        now_dt = self._resolve_now(now)
        now_ms = to_ms(now_dt)
        done = 0
        # Lift the LRU cap while warming: at the default cap a large world evicted its own warmed days
        # (then regenerated them per request, ~15 ms of stand-in CPU per request at 1,000 keys).
        with self._lock:
            cap, self._cache_days = self._cache_days, sys.maxsize
        # A wall clock keeps no bodies (see body): warm only the days behind them.
        render = self.body if self.clock.frozen else self._view
        try:
            for spec in self.catalog.keys:
                for day in self._days_with_traffic(spec, now_ms):
                    self._day_agg(spec, day, now_ms)
                    done += 1
                render("summary", spec.name, (90,), now_dt)
                render("events", spec.name, (100,), now_dt)
                render("jobs", spec.name, (page_size, 0, None), now_dt)
        finally:
            with self._lock:
                self._cache_days = max(cap, len(self._cache))
        return done

    # --------------------------------------------------------------- runtime

    def burst(self, key_name: str, calls: int, now: datetime | None = None) -> dict:
        """Add `calls` extra calls spread over (last call, now]; returns what was added."""
        spec = self._keys[key_name]
        now_dt = self._resolve_now(now)
        now_ms = to_ms(now_dt)
        last = self.last_used(key_name, now_dt)
        start_ms = to_ms(last) if last is not None else now_ms - HOUR_MS
        with self._lock:
            n = len(self._bursts)
            rng = np.random.default_rng([self.seed, spec.uid, 900, n])
            t = np.sort(start_ms + 1 + (rng.random(calls) * max(1, now_ms - start_ms)).astype(np.int64))
            t = np.minimum(t, now_ms)
            ep = rng.choice(np.array([1, 2, 4, 6]), p=np.array([0.4, 0.3, 0.15, 0.15]), size=calls)
            status = np.where(rng.random(calls) < 0.97, 200, 429)
            ids = [_hex(self.seed, spec.uid, "burst", n, i) for i in range(calls)]
            old = self._extras.get(spec.uid)
            if old is not None:
                all_t = np.concatenate([old.t, t])
                order = np.argsort(all_t, kind="stable")
                merged = Extras(
                    all_t[order],
                    np.concatenate([old.ep, ep])[order],
                    np.concatenate([old.status, status])[order],
                    [(old.ids + ids)[i] for i in order],
                )
            else:
                merged = Extras(t, ep, status, ids)
            self._extras[spec.uid] = merged
            record = {"key_name": key_name, "calls": calls, "from": iso_ms(start_ms), "to": iso_ms(now_ms)}
            self._bursts.append(record)
        return record

    # ------------------------------------------------------- clients' writes

    def create_job(
        self,
        key_name: str,
        video_url: str,
        model: str,
        output_format: str,
        auto_start: bool,
        request_id: str,
        output_base: str,
    ) -> dict:
        """POST /v1/jobs: a job that progresses from now (accelerated) and is charged billed minutes × the
        model's rate when it completes; a source under `.invalid` fails without a charge."""
        spec = self._keys[key_name]
        now_ms = to_ms(self.now())
        job = self.live.new_job(
            spec.uid, key_name, now_ms, video_url, MODELS.index(model), FORMATS.index(output_format),
            auto_start, output_base,
        )  # fmt: skip
        self.live.log_call(spec.uid, now_ms, "POST", "/v1/jobs", 201, request_id, job)
        return job.view(now_ms, self.live.mono(), _iso_ms)

    def start_job(self, key_name: str, job_id: str, request_id: str) -> dict | None:
        """POST /v1/jobs/{id}/start: None for a job this key did not create; ValueError when already started."""
        spec = self._keys[key_name]
        job = self.live.jobs.get(job_id)
        if job is None or job.uid != spec.uid:
            return None
        now_ms = to_ms(self.now())
        if not self.live.start(job, now_ms):
            raise ValueError(f"job {job_id} was already started")
        self.live.log_call(spec.uid, now_ms, "POST", f"/v1/jobs/{job_id}/start", 200, request_id, job)
        return job.view(now_ms, self.live.mono(), _iso_ms)

    def upload(self, key_name: str, filename: str, size: int, content_type: str, request_id: str) -> dict:
        """POST /v1/uploads: a video URL a job can be created from (its duration follows from its size)."""
        spec = self._keys[key_name]
        now_ms = to_ms(self.now())
        upload = self.live.new_upload(spec.uid, filename, size, content_type)
        self.live.log_call(spec.uid, now_ms, "POST", "/v1/uploads", 201, request_id, None)
        return {
            "upload_id": upload.upload_id,
            "video_url": upload.video_url,
            "filename": upload.filename,
            "size_bytes": upload.size,
            "content_type": upload.content_type,
        }

    def created_output(self, job_id: str) -> bytes | None:
        """The bytes behind a created job's output URL, once it completed with one."""
        job = self.live.jobs.get(job_id)
        if job is None:
            return None
        view = job.view(to_ms(self.now()), self.live.mono(), _iso_ms)
        if not view["output_url"]:
            return None
        return b"\x00\x00\x00\x18ftypmp42" + hashlib.blake2b(job_id.encode(), digest_size=32).digest() * 16

    def admin_create_key(self, client_id: str, note: str, name: str | None) -> dict:
        """POST /v1/admin/keys: a new enabled key, named `name`, else as a note `<name>: …` says, else after its
        client; the answer is the only place its secret ever appears."""
        with self.live.lock:
            self.live.created_keys += 1
            n = self.live.created_keys
            now_dt = self.now()
            secret = "rbv_" + _blake(f"{self.seed}|admin-key|{n}", 16)
            named = re.match(r"([a-z0-9][a-z0-9._-]{0,99}): ", note)  # the product's notes start `<name>: …`
            label = name or (named.group(1) if named else f"{client_id}-{n}")
            if label in self._keys:
                raise ValueError(f"a key named {label!r} exists")
            spec = KeySpec(
                uid=100_000 + n, name=label, environment=_environment_of(label), owner=None, owner_status=None,
                secret=secret, fingerprint=hashlib.sha256(secret.encode()).hexdigest()[:16], client_id=client_id,
                created_at=now_dt, rotated_at=None, enabled=True, managed=False, note=note, findings=frozenset(),
                base_rate=0.0, tz_offset=0, shape="business", weekend=1.0, growth=0.0, submit_share=0.1,
                fail_prob=0.0, model_probs=(1.0, 0.0, 0.0, 0.0), active_from=now_dt, active_until=None,
            )  # fmt: skip
            self.catalog.keys.append(spec)
            self._keys[spec.name] = spec
            self._by_secret[secret] = spec
        return {**self._inventory_item(spec, now_dt), "secret": secret}

    def admin_set_enabled(self, fingerprint: str, enabled: bool) -> dict | None:
        """POST /v1/admin/keys/disable|enable: None for an unknown fingerprint. A disabled key answers
        invalid_api_key, and its generated traffic stops from the next whole hour."""
        spec = self.key_by_fingerprint(fingerprint)
        if spec is None:
            return None
        now_dt = self.now()
        now_ms = to_ms(now_dt)
        with self._lock:
            self.live.set_enabled(spec.uid, enabled, now_ms, HOUR_MS)
            # Days from the change on are generated again with the key's new state.
            first_day = (now_ms // HOUR_MS + 1) * HOUR_MS // DAY_MS
            for cache in (self._cache, self._agg):
                for key in [k for k in cache if k[0] == spec.uid and k[1] >= first_day]:
                    del cache[key]
            for key in [k for k in self._bodies if k[1] == spec.uid]:
                self._body_bytes -= len(self._bodies.pop(key)[2])
        return self._inventory_item(spec, now_dt)

    def admin_config(self) -> dict:
        """GET /v1/admin/config: the account's key settings (what an admin token may see)."""
        return {
            "key_prefix": "rbv_",
            "keys": len(self.catalog.keys),
            "enabled_keys": sum(self.is_enabled(k) for k in self.catalog.keys),
            "max_keys": 1000,
            "secrets_shown_once": True,
            "models": list(MODELS),
            "output_formats": list(FORMATS),
        }

    def _inventory_item(self, spec: KeySpec, now_dt: datetime) -> dict:
        last = self.last_used(spec.name, now_dt)
        return {
            "client_id": spec.client_id,
            "name": spec.name,
            "key_fingerprint": spec.fingerprint,
            "note": spec.note,
            "enabled": self.is_enabled(spec),
            "created_at": iso(spec.created_at),
            "last_used_at": iso(last) if last else None,
        }

    def set_live_settings(self, chosen: list[LiveSettings]) -> None:
        """How jobs created from now on behave (POST /_sim/live replaces the set)."""
        for item in chosen:
            if item.key_name is not None and item.key_name not in self._keys:
                raise ValueError(f"unknown key_name {item.key_name!r}")
        self.live.set_settings(chosen)

    # ----------------------------------------------------------------- truth

    def incidents(self) -> list[dict]:
        """Labelled anomalies: {key_name, metric, direction, start, end} (hour-aligned UTC ISO)."""
        return [inc.as_dict() for inc in self.catalog.incidents]

    def billing_issues(self) -> list[dict]:
        """Injected billing mistakes: {category, key_name, job_id, day, expected_credits, charged_credits, event_id}."""
        if self._billing_truth is not None:
            return [dict(item) for item in self._billing_truth]
        out: list[dict] = []
        for inj in self.catalog.injected_jobs:
            spec = self._keys[inj.key_name]
            day = inj.created_ms // DAY_MS
            data = self.day_data(spec, day)
            k = self.catalog.injected_jobs.index(inj)
            i = int(np.flatnonzero(data.j_injected == k)[0])
            job_id = data.j_id[i]
            day_iso = iso_ms(inj.created_ms)[:10]
            charge_events = np.flatnonzero((data.ev_job == i) & (data.ev_kind == SUBMIT))
            for category in inj.categories:
                item = {
                    "category": category,
                    "key_name": inj.key_name,
                    "job_id": job_id,
                    "day": day_iso,
                    "expected_credits": round(inj.expected, 2),
                    "charged_credits": inj.charged,
                    "event_id": None,
                }
                if category == "failed_but_charged":
                    item["expected_credits"] = 0.0
                elif category == "missing_output":
                    item["charged_credits"] = inj.charged
                elif category == "duplicate_charge":
                    item["expected_credits"] = inj.charged
                    item["charged_credits"] = round(inj.charged * len(charge_events), 2)
                    item["event_id"] = "evt_" + _hex(self.seed, spec.uid, day, int(charge_events[-1]), "evt")
                out.append(item)
        for orphan in self.catalog.orphans:
            spec = self._keys[orphan.key_name]
            day = orphan.created_ms // DAY_MS
            data = self.day_data(spec, day)
            i = int(np.flatnonzero((data.ev_orphan >= 0) & (data.ev_t == orphan.created_ms))[0])
            out.append(
                {
                    "category": "orphan_charge",
                    "key_name": orphan.key_name,
                    "job_id": data.orphan_ids[int(data.ev_orphan[i])],
                    "day": iso_ms(orphan.created_ms)[:10],
                    "expected_credits": 0.0,
                    "charged_credits": orphan.credits,
                    "event_id": "evt_" + _hex(self.seed, spec.uid, day, i, "evt"),
                }
            )
        for (key_name, day_iso), delta in sorted(self.catalog.summary_mismatch.items()):
            spec = self._keys[key_name]
            day = date.fromisoformat(day_iso).toordinal() - date(1970, 1, 1).toordinal()
            settled_ms = (day + 2) * DAY_MS
            # What the summary would say without the injected mismatch (it may leave some charges out).
            true = round(self._day_agg(spec, day, settled_ms).credits - self._left_out(spec, day, settled_ms), 2)
            out.append(
                {
                    "category": "summary_mismatch",
                    "key_name": key_name,
                    "job_id": None,
                    "day": day_iso,
                    "expected_credits": true,
                    "charged_credits": round(max(0.0, true + delta), 2),
                    "event_id": None,
                }
            )
        self._billing_truth = out
        return [dict(item) for item in out]

    def governance_truth(self, now: datetime | None = None) -> set[tuple[str, str]]:
        """The (key_name, finding) pairs the world was designed to have.

        Designed around the anchor with margins of at least 5 days, so it holds for any
        `now` within a few days after the anchor.
        """
        return {(spec.name, finding) for spec in self.catalog.keys for finding in spec.findings}

    def ledger_issues(self, now: datetime | None = None, days: int = 30) -> list[dict]:
        """Issues injected into the team ledger built for (now, days); see simulator.ledger."""
        from .ledger import build_ledger

        return build_ledger(self, self._resolve_now(now), days)[1]

    def truth(self, now: datetime | None = None) -> dict:
        """A JSON-able summary of the ground truth (no secrets)."""
        now_dt = self._resolve_now(now)
        keys = []
        for spec in self.catalog.keys:
            last = self.last_used(spec.name, now_dt)
            keys.append(
                {
                    "name": spec.name,
                    "environment": spec.environment,
                    "owner": spec.owner,
                    "owner_status": spec.owner_status,
                    "fingerprint": spec.fingerprint,
                    "created_at": iso(spec.created_at),
                    "rotated_at": iso(spec.rotated_at) if spec.rotated_at else None,
                    "enabled": self.is_enabled(spec),
                    "managed": spec.managed,
                    "findings": sorted(spec.findings),
                    "last_used_at": iso(last) if last else None,
                }
            )
        out = {
            "seed": self.seed,
            "n_keys": self.n_keys,
            "days": self.days,
            "anchor": iso(self.anchor),
            "world_start": iso(self.world_start),
            "now": iso(now_dt),
            "clock_frozen": self.clock.frozen,
            "keys": keys,
            "incidents": self.incidents(),
            "billing_issues": self.billing_issues(),
            "governance": sorted([list(pair) for pair in self.governance_truth(now_dt)]),
            "bursts": list(self._bursts),
        }
        if self.ledger_truth is not None:
            out["ledger_issues"] = self.ledger_truth
        if self.live.jobs:
            now_ms, mono = to_ms(now_dt), self.live.mono()
            out["created_jobs"] = [
                {"key_name": job.key_name, "video_url": job.video_url, **job.view(now_ms, mono, _iso_ms)}
                for job in self.live.jobs.values()
                if job.created_ms <= now_ms
            ]
        return out
