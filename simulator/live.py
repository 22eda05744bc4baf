"""What clients do to the stand-in at run time: jobs they create, files they upload, keys the admin API adds,
disables or enables. Deterministic in outcome (ids, charges, final states), accelerated in time."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .catalog import FORMATS, MODEL_RATES, MODELS

# Job time of a created job (ms): queued, then processing for about 0.8 s per second of video, then settled.
QUEUE_MS = 2_000
MIN_PROCESSING_MS = 3_000
UNREACHABLE_FAIL_MS = 3_000  # the download is given up this long after processing starts
# A created job's clock runs this many times faster than the wall clock (on top of any clock the tests move),
# so a smoke check of a 5 s clip settles in well under a second of real time.
DEFAULT_SPEED = 20.0
UNREACHABLE_ERROR = "input_unreachable: could not download source url"
UPLOAD_HOST = "https://uploads.removebgvideo.com"
BYTES_PER_VIDEO_SECOND = 250_000  # an upload's duration, from its size
_SECONDS_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)s\.[a-z0-9]+$", re.IGNORECASE)
# Known public clips (stand-in knowledge of what the real vendor would download).
KNOWN_CLIPS = {"flower.mp4": 5.0}


def _hex(*parts: object, size: int = 12) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=size).hexdigest()


def is_unreachable(url: str) -> bool:
    """A source the stand-in cannot download: a host under the reserved `.invalid` top-level domain (RFC 6761:
    it never resolves, so the real service fails on it too)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    return host == "invalid" or host.endswith(".invalid")


def clip_seconds(url: str, seed: int) -> float:
    """Seconds of video behind a URL: `…-5s.mp4` says 5 s, an upload its size, known clips their length,
    anything else 4–60 s from a hash of the URL."""
    path = urlsplit(url).path
    name = path.rsplit("/", 1)[-1]
    if name in KNOWN_CLIPS:
        return KNOWN_CLIPS[name]
    match = _SECONDS_IN_NAME.search(name)
    if match:
        return max(0.1, min(600.0, float(match.group(1))))
    return round(4.0 + int(_hex(seed, "clip", url, size=4), 16) % 561 / 10.0, 1)


@dataclass(frozen=True)
class LiveSettings:
    """`POST /_sim/live`: how created jobs behave (tests: a wrong charge, a missing output, the speed)."""

    speed: float = DEFAULT_SPEED
    charge_multiplier: float = 1.0  # 1.25 charges a quarter too much
    missing_output: bool = False  # completed jobs without an output URL
    key_name: str | None = None  # only this key's jobs (None: every key)

    def applies_to(self, key_name: str) -> bool:
        return self.key_name is None or self.key_name == key_name


@dataclass
class LiveJob:
    job_id: str
    uid: int
    key_name: str
    created_ms: int
    video_url: str
    model: int
    fmt: int
    duration: float
    fails: bool
    charged: float  # credits once settled (0 for a failed job)
    missing_output: bool
    speed: float
    output_base: str
    started_ms: int | None = None
    started_mono: float | None = None

    @property
    def processing_ms(self) -> int:
        if self.fails:
            return UNREACHABLE_FAIL_MS
        return max(MIN_PROCESSING_MS, int(self.duration * 800) + 2_000)

    def age_ms(self, now_ms: int, mono: float) -> float | None:
        """Job time since it was started (None while it waits for POST /start)."""
        if self.started_ms is None or self.started_mono is None:
            return None
        return max(0, now_ms - self.started_ms) + max(0.0, mono - self.started_mono) * 1000.0 * self.speed

    def status(self, now_ms: int, mono: float) -> tuple[str, int]:
        """(status, progress) as of now."""
        age = self.age_ms(now_ms, mono)
        if age is None or age < QUEUE_MS:
            return "pending", 0
        done = age - QUEUE_MS
        if done < self.processing_ms:
            return "processing", int(min(99, max(1, 100 * done // self.processing_ms)))
        return ("failed", 0) if self.fails else ("completed", 100)

    def view(self, now_ms: int, mono: float, iso_ms: Callable[[int], str]) -> dict:
        """The job as GET /v1/jobs/{id} shows it (the generated jobs' fields and order)."""
        status, progress = self.status(now_ms, mono)
        settled = status in ("completed", "failed")
        output = None
        if status == "completed" and not self.missing_output:
            output = f"{self.output_base}/cdn/out/{self.job_id}.{_OUTPUT_EXT[FORMATS[self.fmt]]}"
        return {
            "id": self.job_id,
            "status": status,
            "progress": progress,
            "output_url": output,
            "error": UNREACHABLE_ERROR if status == "failed" else None,
            "created_at": iso_ms(self.created_ms),
            "duration_seconds": None if self.fails else self.duration,
            "billing_status": ("not_charged" if self.fails else "charged") if settled else "pending",
            "model": MODELS[self.model],
            "output_format": FORMATS[self.fmt],
            "credits": self.charged if settled else 0.0,
        }


_OUTPUT_EXT = {"mp4": "mp4", "webm": "webm", "mov": "mov", "gif": "gif", "png_sequence": "zip"}


@dataclass
class LiveEvent:
    """A write call a client made (reads are not logged, as the generated world does not log the collector's)."""

    event_id: str
    uid: int
    t_ms: int
    seq: int
    endpoint: str
    method: str
    status_code: int
    request_id: str
    job_id: str | None = None
    model: int = -1


@dataclass
class Upload:
    upload_id: str
    uid: int
    filename: str
    size: int
    content_type: str
    video_url: str


@dataclass
class LiveState:
    """Everything clients changed, under one lock; read by the World when it renders a view."""

    seed: int
    mono: Callable[[], float] = time.monotonic
    settings: dict[str, LiveSettings] = field(default_factory=dict)  # "" = every key; else per key name
    jobs: dict[str, LiveJob] = field(default_factory=dict)
    jobs_by_key: dict[int, list[LiveJob]] = field(default_factory=dict)
    events_by_key: dict[int, list[LiveEvent]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    enabled: dict[int, bool] = field(default_factory=dict)  # admin overrides of the catalog's `enabled`
    disabled_hours: dict[int, list[list[int | None]]] = field(default_factory=dict)  # uid -> [[from, to|None]]
    created_keys: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)
    _seq: int = 0

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    def settings_for(self, key_name: str) -> LiveSettings:
        with self.lock:
            return self.settings.get(key_name) or self.settings.get("") or LiveSettings()

    def set_settings(self, chosen: list[LiveSettings]) -> None:
        with self.lock:
            self.settings = {(s.key_name or ""): s for s in chosen}

    def touches(self, uid: int) -> bool:
        """True when clients changed anything of this key (its views are then rendered afresh every time)."""
        return uid in self.jobs_by_key or uid in self.events_by_key or uid in self.disabled_hours

    def new_job(
        self,
        uid: int,
        key_name: str,
        now_ms: int,
        video_url: str,
        model: int,
        fmt: int,
        auto_start: bool,
        output_base: str,
    ) -> LiveJob:
        settings = self.settings_for(key_name)
        with self.lock:
            seq = self.next_seq()
            job_id = "job_" + _hex(self.seed, "live-job", seq, size=12)
            fails = is_unreachable(video_url)
            duration = clip_seconds(video_url, self.seed) if not fails else 0.0
            if video_url in (u.video_url for u in self.uploads.values()):
                upload = next(u for u in self.uploads.values() if u.video_url == video_url)
                duration = round(max(1.0, min(600.0, upload.size / BYTES_PER_VIDEO_SECOND)), 1)
            charged = 0.0 if fails else round(duration / 60.0 * MODEL_RATES[model] * settings.charge_multiplier, 2)
            job = LiveJob(
                job_id=job_id,
                uid=uid,
                key_name=key_name,
                created_ms=now_ms,
                video_url=video_url,
                model=model,
                fmt=fmt,
                duration=duration,
                fails=fails,
                charged=charged,
                missing_output=settings.missing_output,
                speed=settings.speed,
                output_base=output_base,
            )
            if auto_start:
                job.started_ms, job.started_mono = now_ms, self.mono()
            self.jobs[job_id] = job
            self.jobs_by_key.setdefault(uid, []).append(job)
            return job

    def start(self, job: LiveJob, now_ms: int) -> bool:
        """Start a job created with auto_start = false; False when it was already started."""
        with self.lock:
            if job.started_ms is not None:
                return False
            job.started_ms, job.started_mono = now_ms, self.mono()
            return True

    def log_call(
        self, uid: int, now_ms: int, method: str, endpoint: str, status: int, request_id: str, job: LiveJob | None
    ) -> None:
        with self.lock:
            seq = self.next_seq()
            event = LiveEvent(
                event_id="evt_" + _hex(self.seed, "live-evt", seq),
                uid=uid,
                t_ms=now_ms,
                seq=seq,
                endpoint=endpoint,
                method=method,
                status_code=status,
                request_id=request_id,
                job_id=job.job_id if job else None,
                model=job.model if job and endpoint == "/v1/jobs" else -1,
            )
            self.events_by_key.setdefault(uid, []).append(event)

    def new_upload(self, uid: int, filename: str, size: int, content_type: str) -> Upload:
        with self.lock:
            seq = self.next_seq()
            upload_id = "upl_" + _hex(self.seed, "upload", seq)
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:100] or "upload.mp4"
            upload = Upload(upload_id, uid, safe, size, content_type, f"{UPLOAD_HOST}/{upload_id}/{safe}")
            self.uploads[upload_id] = upload
            return upload

    def job_credits(self, job: LiveJob, now_ms: int) -> float:
        """Credits on the job's charge event as of now: its charge once it settled, 0 before."""
        status, _ = job.status(now_ms, self.mono())
        return job.charged if status in ("completed", "failed") else 0.0

    def set_enabled(self, uid: int, enabled: bool, now_ms: int, hour_ms: int) -> bool:
        """Record an admin enable/disable; True when it changed the key's state. Generated traffic stops from the
        next whole hour after a disable and resumes from the next whole hour after an enable."""
        with self.lock:
            spans = self.disabled_hours.setdefault(uid, [])
            hour = now_ms // hour_ms + 1
            open_span = spans[-1] if spans and spans[-1][1] is None else None
            if not enabled and open_span is None:
                spans.append([hour, None])
            elif enabled and open_span is not None:
                open_span[1] = max(hour, int(open_span[0] or 0))
            changed = self.enabled.get(uid) != enabled
            self.enabled[uid] = enabled
            return changed
