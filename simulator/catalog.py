"""The designed cast of the world: keys (with their governance cases), incidents and billing mistakes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

MODELS = ("original", "light", "pro", "human")
MODEL_RATES = (60.0, 45.0, 180.0, 45.0)  # credits per minute of video
FORMATS = ("mp4", "webm", "mov", "gif", "png_sequence")

FINDINGS = (
    "never_used",
    "inactive",
    "bad_name",
    "generic_name",
    "missing_owner",
    "env_mismatch",
    "rotation_due",
    "rotation_overdue",
    "sandbox_in_prod",
    "staging_shape_drift",
    "unmanaged_key",
    "disabled_upstream",
    "owner_offboarded",
)

TEAM_TZ = {
    "platform-team": -5,
    "billing-team": 0,
    "media-team": 1,
    "payments-team": -8,
    "mobile-team": -8,
    "web-team": -8,
    "analytics-team": 0,
    "search-team": 1,
    "ml-team": -5,
    "growth-team": -5,
    "data-team": 1,
}


@dataclass(frozen=True)
class KeySpec:
    """One API key: what the config and admin inventory say, plus how it behaves."""

    uid: int
    name: str
    environment: str  # as configured (or, for unmanaged keys, as the name says)
    owner: str | None
    owner_status: str | None
    secret: str = field(repr=False)
    fingerprint: str
    client_id: str
    created_at: datetime
    rotated_at: datetime | None
    enabled: bool
    managed: bool
    note: str
    findings: frozenset[str]
    # behaviour
    base_rate: float  # expected calls per hour at the weekday peak, at the anchor
    tz_offset: int  # hours east of UTC of the team using the key
    shape: str  # business | night
    weekend: float  # weekend multiplier
    growth: float  # relative growth per 30 days
    submit_share: float  # share of calls that are POST /v1/jobs
    fail_prob: float  # base probability that a job fails
    model_probs: tuple[float, float, float, float]
    active_from: datetime  # first instant the key can make calls
    active_until: datetime | None  # went quiet / disabled at this instant

    @property
    def never_used(self) -> bool:
        return self.base_rate <= 0


@dataclass(frozen=True)
class IncidentSpec:
    """A labelled anomaly: hour-aligned [start, end) on one key and metric."""

    key_name: str
    uid: int
    metric: str  # calls | failed_jobs | credits
    direction: str  # spike | drop
    start: datetime
    end: datetime
    multiplier: float

    def as_dict(self) -> dict:
        from .clock import iso

        return {
            "key_name": self.key_name,
            "metric": self.metric,
            "direction": self.direction,
            "start": iso(self.start),
            "end": iso(self.end),
        }


@dataclass(frozen=True)
class InjectedJob:
    """A job placed on purpose to carry a billing mistake."""

    key_name: str
    uid: int
    k: int  # index among injected jobs (part of its id derivation)
    categories: tuple[str, ...]
    created_ms: int
    model: int
    fmt: int
    duration: float
    failed: bool
    charged: float
    missing_output: bool
    duplicate_after_ms: int | None  # extra charge event this long after the submit

    @property
    def expected(self) -> float:
        return self.duration / 60.0 * MODEL_RATES[self.model]


@dataclass(frozen=True)
class InjectedOrphan:
    """A charge event whose job the jobs list never shows."""

    key_name: str
    uid: int
    k: int
    created_ms: int
    model: int
    credits: float


@dataclass(frozen=True)
class Catalog:
    keys: list[KeySpec]
    incidents: list[IncidentSpec]
    injected_jobs: list[InjectedJob]
    orphans: list[InjectedOrphan]
    summary_mismatch: dict[tuple[str, str], float]  # (key_name, YYYY-MM-DD) -> delta credits


# name, env, owner, owner_status, created (days ago), rotated (days ago | None), rate, team tz,
# shape, weekend, managed, disabled (days ago | None), quiet (days ago | None), findings, incidents
# incidents: (metric, direction, days ago, hours, multiplier)
_BASE: list[dict] = [
    dict(name="api-gateway-prod", env="prod", owner="platform-team", created=400, rotated=12,
         rate=200, incidents=[("calls", "spike", 40, 3, 5.0), ("calls", "drop", 25, 5, 0.0)]),
    dict(name="dev-alice", env="dev", owner="alice", created=150, rotated=None, rate=150,
         tz=-5, findings={"sandbox_in_prod"}, note="personal sandbox"),
    dict(name="billing-worker-prod", env="prod", owner="billing-team", created=300, rotated=45,
         rate=60, findings={"rotation_due"}, incidents=[("credits", "spike", 18, 4, 8.0)]),
    dict(name="prod-main", env="prod", owner="platform-team", created=500, rotated=120, rate=140,
         findings={"rotation_overdue"},
         incidents=[("failed_jobs", "spike", 33, 3, 0.8), ("calls", "spike", 3, 2, 6.0)]),
    dict(name="staging-main", env="staging", owner="platform-team", created=250, rotated=30,
         rate=10, findings={"rotation_due"}),
    dict(name="search-staging", env="prod", owner="search-team", created=200, rotated=10, rate=25,
         findings={"env_mismatch"}, incidents=[("calls", "spike", 12, 2, 8.0)]),
    dict(name="dev-local", env="dev", owner="bob", created=180, rotated=None, rate=4, tz=-5),
    dict(name="test1", env="dev", owner="dave", created=120, rotated=None, rate=1.5, tz=-5,
         findings={"generic_name"}),
    dict(name="partner-sync-prod", env="prod", owner=None, created=220, rotated=None, rate=25,
         tz=0, managed=False, findings={"unmanaged_key"}, note="created in console by partner"),
    dict(name="checkout-prod", env="prod", owner="payments-team", created=260, rotated=20,
         rate=40, disabled=2, findings={"disabled_upstream"},
         incidents=[("credits", "spike", 45, 3, 6.0)]),
    dict(name="reports-prod", env="prod", owner="analytics-team", created=300, rotated=18,
         rate=12, quiet=20, findings={"inactive"}),
    dict(name="BillingWorker_Prod", env="prod", owner="billing-team", created=160, rotated=8,
         rate=15, findings={"bad_name"}),
    dict(name="export-service-prod", env="prod", owner=None, created=210, rotated=15, rate=30,
         tz=1, findings={"missing_owner"}, incidents=[("failed_jobs", "spike", 70, 5, 0.8)]),
    dict(name="billing-worker-staging", env="staging", owner="billing-team", created=280,
         rotated=5, rate=12, shape="night", weekend=1.0, findings={"staging_shape_drift"}),
    dict(name="key-new", env="dev", owner="eve", created=20, rotated=None, rate=0, tz=-5,
         findings={"generic_name", "never_used"}),
    dict(name="dev-carol", env="dev", owner="carol", owner_status="offboarded", created=200,
         rotated=None, rate=3, tz=1, findings={"owner_offboarded"}),
    dict(name="webhooks-prod", env="prod", owner="platform-team", created=200, rotated=None,
         rate=10, findings={"rotation_overdue"}),
    dict(name="video-pipeline-prod", env="prod", owner="media-team", created=350, rotated=20,
         rate=100, incidents=[("credits", "spike", 60, 3, 10.0), ("calls", "drop", 5, 4, 0.0)]),
    dict(name="frontend-dev", env="dev", owner="web-team", created=240, rotated=None, rate=3,
         quiet=45, findings={"inactive"}),
    dict(name="video-pipeline-staging", env="staging", owner="media-team", created=300,
         rotated=5, rate=8, quiet=25, findings={"inactive"}),
    dict(name="temp", env="dev", owner=None, created=150, rotated=None, rate=1.0, tz=-5,
         findings={"generic_name", "missing_owner"}),
    dict(name="legacykey", env="prod", owner="platform-team", created=700, rotated=10, rate=5,
         findings={"bad_name"}),
    dict(name="ml-experiments-dev", env="dev", owner="ml-team", created=40, rotated=None, rate=0,
         findings={"never_used"}),
    dict(name="api-gateway-staging", env="staging", owner="platform-team", created=75, rotated=7,
         rate=15, incidents=[("failed_jobs", "spike", 50, 4, 0.8)]),
    dict(name="mobile-app-dev", env="dev", owner="mobile-team", created=190, rotated=None, rate=5,
         incidents=[("calls", "spike", 20, 1, 10.0)]),
    dict(name="thumbnailer-prod", env="prod", owner="media-team", created=330, rotated=5, rate=30),
    dict(name="analytics-export-prod", env="prod", owner=None, created=365, rotated=None, rate=8,
         tz=0, managed=False, findings={"unmanaged_key"}, note="legacy export job"),
    dict(name="notifications-prod", env="prod", owner="platform-team", created=280, rotated=22,
         rate=20),
    dict(name="image-resizer-staging", env="staging", owner="media-team", created=210, rotated=3,
         rate=6),
    dict(name="admin-portal-dev", env="dev", owner="web-team", created=170, rotated=None, rate=2),
]  # fmt: skip

# (categories, key, days ago | None, minutes ago | None)
_BILLING: list[tuple[tuple[str, ...], str, int | None, int | None]] = [
    (("overcharged",), "billing-worker-prod", 30, None),
    (("overcharged",), "video-pipeline-prod", 15, None),
    (("overcharged",), "api-gateway-prod", 55, None),
    (("undercharged",), "prod-main", 22, None),
    (("undercharged",), "search-staging", 40, None),
    (("failed_but_charged",), "export-service-prod", 10, None),
    (("failed_but_charged",), "api-gateway-staging", 35, None),
    (("failed_but_charged",), "dev-local", 28, None),
    (("missing_output",), "video-pipeline-prod", 8, None),
    (("missing_output",), "thumbnailer-prod", 26, None),
    (("missing_output",), "billing-worker-prod", 62, None),
    (("duplicate_charge",), "webhooks-prod", None, 75),
    (("duplicate_charge",), "legacykey", None, 50),
    (("failed_but_charged", "duplicate_charge"), "mobile-app-dev", None, 95),
]
_ORPHANS: list[tuple[str, int]] = [("dev-local", 40), ("api-gateway-staging", 65)]
_MISMATCH: list[tuple[str, int, float]] = [("staging-main", 12, 42.0), ("prod-main", 19, -35.5)]

_SERVICES = (
    "auth", "search-api", "uploads", "media-encoder", "thumbnails", "payments", "catalog",
    "recommendations", "analytics", "reporting", "ingest", "transcoder", "editor", "preview",
    "scheduler", "exports", "imports", "moderation", "captions", "subtitles", "clips",
    "highlights", "avatar", "greenscreen", "studio", "mobile-api", "web-app", "partner-api",
    "crm-sync", "cms", "storefront", "marketing-site", "support-portal", "ads", "feeds", "live",
    "archive", "gallery", "onboarding", "social-share",
)  # fmt: skip
_REGIONS = ("", "eu", "us", "apac", "east", "west")
_GENERIC_TEAMS = tuple(TEAM_TZ)


def _digest(*parts: object, size: int = 16) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=size).hexdigest()


def fingerprint(secret: str) -> str:
    """The key fingerprint the admin inventory shows: sha256(secret)[:16]."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def _floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(value: datetime) -> datetime:
    floor = _floor_hour(value)
    return floor if floor == value else floor + timedelta(hours=1)


def _generated_names(seed: int, count: int, taken: set[str]) -> list[tuple[str, str, str]]:
    """Deterministic `<service>-<env>` names beyond the designed base set: (name, service, env)."""
    rng = np.random.default_rng([seed, 99])
    out: list[tuple[str, str, str]] = []
    round_no = 0
    while len(out) < count:
        combos = []
        for service in _SERVICES:
            for region in _REGIONS:
                svc = service if not region else f"{service}-{region}"
                if round_no:
                    svc = f"{svc}-{round_no + 1}"
                for env in ("prod", "staging", "dev"):
                    combos.append((f"{svc}-{env}", svc, env, region))
        rank = rng.permutation(len(combos))
        # shuffled, but plain service names before regional ones
        order = sorted(range(len(combos)), key=lambda i: (combos[i][3] != "", int(rank[i])))
        for i in order:
            name, svc, env, _ = combos[i]
            if name in taken:
                continue
            taken.add(name)
            out.append((name, svc, env))
            if len(out) == count:
                break
        round_no += 1
    return out


# A labelled calls spike is one worth paging someone for: on a quiet key it adds at least this many calls
# an hour at its peak (three jobs with their status polls).  Fewer is one person trying the API, and the
# detector is required not to alarm on that ("a key going from 0 to 3 calls is not an alarm").
MIN_SPIKE_EXTRA_CALLS = 40.0


def _business_start(day: datetime, tz: int, local_hour: int) -> datetime:
    """UTC instant of `local_hour` local time on the weekday nearest before `day`."""
    local_day = (day + timedelta(hours=tz)).replace(hour=0, minute=0, second=0, microsecond=0)
    while local_day.weekday() >= 5:
        local_day -= timedelta(days=1)
    return local_day + timedelta(hours=local_hour - tz)


def build_catalog(seed: int, n_keys: int, anchor: datetime, world_start: datetime) -> Catalog:
    """Lay out keys, incidents and injected billing mistakes for a world anchored at `anchor`."""
    anchor_hour = _floor_hour(anchor)
    keys: list[KeySpec] = []
    incidents: list[IncidentSpec] = []
    base = _BASE[: max(0, n_keys)]
    designs = list(base)
    for name, svc, env in _generated_names(seed, max(0, n_keys - len(base)), {d["name"] for d in _BASE}):
        designs.append({"name": name, "env": env, "generated": True, "service": svc})

    for uid, design in enumerate(designs):
        rng = np.random.default_rng([seed, uid, 11])
        name = design["name"]
        secret = "rbv_" + _digest(seed, name, "secret")
        if design.get("generated"):
            env = design["env"]
            owner = str(_GENERIC_TEAMS[int(rng.integers(len(_GENERIC_TEAMS)))])
            created_days = float(rng.uniform(100, 500)) if rng.random() < 0.85 else float(rng.uniform(25, 80))
            rotated = {"prod": rng.uniform(2, 25), "staging": rng.uniform(1, 10)}.get(env)
            rate = {
                "prod": float(np.clip(rng.lognormal(np.log(15), 0.7), 2, 80)),
                "staging": float(np.clip(rng.lognormal(np.log(4), 0.6), 1, 15)),
                "dev": float(np.clip(rng.lognormal(np.log(1.5), 0.6), 0.3, 6)),
            }[env]
            design = dict(
                design, owner=owner, created=created_days, rotated=rotated, rate=rate,
                tz=TEAM_TZ[owner], findings=set(), incidents=[],
            )  # fmt: skip
        owner = design.get("owner")
        tz = design.get("tz", TEAM_TZ.get(owner or "", 0))
        created_at = anchor_hour - timedelta(days=design["created"], hours=int(rng.integers(1, 20)))
        created_at = created_at.replace(minute=int(rng.integers(0, 60)), second=int(rng.integers(0, 60)))
        rotated_at = None
        if design.get("rotated") is not None:
            rotated_at = anchor_hour - timedelta(days=float(design["rotated"]), hours=int(rng.integers(0, 6)))
            rotated_at = rotated_at.replace(minute=int(rng.integers(0, 60)), second=0, microsecond=0)
        until = None
        if design.get("quiet") is not None:
            until = _floor_hour(anchor_hour - timedelta(days=design["quiet"], hours=int(rng.integers(0, 12))))
        if design.get("disabled") is not None:
            until = _floor_hour(anchor_hour - timedelta(days=design["disabled"], hours=int(rng.integers(0, 6))))
        active_from = max(_ceil_hour(created_at), world_start)
        probs = rng.dirichlet(np.array([45.0, 25.0, 15.0, 15.0]))
        managed = design.get("managed", True)
        enabled = design.get("disabled") is None
        note = design.get("note") or (f"{owner} service key" if owner else "")
        spec = KeySpec(
            uid=uid,
            name=name,
            environment=design["env"],
            owner=owner,
            owner_status=design.get("owner_status"),
            secret=secret,
            fingerprint=fingerprint(secret),
            client_id="cli_" + _digest(seed, name, "client", size=8),
            created_at=created_at,
            rotated_at=rotated_at,
            enabled=enabled,
            managed=managed,
            note=note,
            findings=frozenset(design.get("findings", set())),
            base_rate=float(design["rate"]),
            tz_offset=int(tz),
            shape=design.get("shape", "business"),
            weekend=float(design.get("weekend", round(float(rng.uniform(0.25, 0.45)), 3))),
            growth=float(rng.uniform(0.0, 0.05)),
            submit_share=float(rng.uniform(0.06, 0.09)),
            fail_prob=float(rng.uniform(0.01, 0.05)),
            model_probs=tuple(float(p) for p in probs),  # type: ignore[arg-type]
            active_from=active_from,
            active_until=until,
        )
        keys.append(spec)

        planned = list(design.get("incidents", []))
        if design.get("generated") and rng.random() < 0.3:
            choices = ["calls:spike"]
            if spec.base_rate >= 10:
                choices += ["calls:drop", "failed_jobs:spike", "credits:spike"]
            metric, direction = str(rng.choice(choices)).split(":")
            history = (anchor_hour - (active_from + timedelta(days=14))).days
            if history > 10:
                days_ago = int(rng.integers(9, history))
                mult = {"calls": float(rng.uniform(3, 10)), "failed_jobs": 0.8, "credits": float(rng.uniform(5, 10))}
                mult["calls"] = max(mult["calls"], 1.0 + MIN_SPIKE_EXTRA_CALLS / spec.base_rate)
                planned.append(
                    (metric, direction, days_ago, int(rng.integers(1, 7)), 0.0 if direction == "drop" else mult[metric])
                )
        for metric, direction, days_ago, hours, mult in planned:
            jitter = int(rng.integers(-1, 2))
            day = anchor_hour - timedelta(days=days_ago + jitter)
            start = _business_start(day, spec.tz_offset, int(rng.integers(10, 14)))
            end = start + timedelta(hours=hours)
            if start < active_from + timedelta(days=14) or end > anchor_hour - timedelta(hours=1):
                continue
            if until is not None and end > until:
                continue
            incidents.append(IncidentSpec(name, uid, metric, direction, start, end, mult))

    by_name = {k.name: k for k in keys}
    injected: list[InjectedJob] = []
    for k, (categories, key_name, days_ago, minutes_ago) in enumerate(_BILLING):
        spec = by_name.get(key_name)
        if spec is None:
            continue
        rng = np.random.default_rng([seed, spec.uid, 500 + k])
        if days_ago is not None:
            start = _business_start(anchor_hour - timedelta(days=days_ago), spec.tz_offset, 11)
            created = start + timedelta(seconds=float(rng.uniform(60, 3000)))
        else:
            created = anchor - timedelta(minutes=minutes_ago) + timedelta(seconds=float(rng.uniform(0, 50)))
        model = int(rng.choice([0, 2, 1]))
        duration = round(float(rng.uniform(70, 240)), 1)
        expected = duration / 60.0 * MODEL_RATES[model]
        charged = round(expected, 2)
        if "overcharged" in categories:
            charged = round(expected * float(rng.uniform(1.2, 1.5)), 2)
        if "undercharged" in categories:
            charged = round(expected * float(rng.uniform(0.5, 0.8)), 2)
        injected.append(
            InjectedJob(
                key_name=key_name,
                uid=spec.uid,
                k=k,
                categories=categories,
                created_ms=int(created.timestamp() * 1000),
                model=model,
                fmt=int(rng.integers(0, 3)),
                duration=duration,
                failed="failed_but_charged" in categories,
                charged=charged,
                missing_output="missing_output" in categories,
                duplicate_after_ms=int(rng.uniform(20, 90) * 1000) if "duplicate_charge" in categories else None,
            )
        )
    orphans: list[InjectedOrphan] = []
    for k, (key_name, minutes_ago) in enumerate(_ORPHANS):
        spec = by_name.get(key_name)
        if spec is None:
            continue
        rng = np.random.default_rng([seed, spec.uid, 700 + k])
        created = anchor - timedelta(minutes=minutes_ago) + timedelta(seconds=float(rng.uniform(0, 50)))
        model = int(rng.choice([0, 2]))
        credits = round(float(rng.uniform(60, 200)) / 60.0 * MODEL_RATES[model], 2)
        orphans.append(InjectedOrphan(key_name, spec.uid, k, int(created.timestamp() * 1000), model, credits))
    mismatch: dict[tuple[str, str], float] = {}
    for key_name, days_ago, delta in _MISMATCH:
        if key_name in by_name:
            day = (anchor_hour - timedelta(days=days_ago)).astimezone(UTC).date().isoformat()
            mismatch[(key_name, day)] = delta
    return Catalog(keys, incidents, injected, orphans, mismatch)
