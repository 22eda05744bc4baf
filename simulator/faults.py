"""Fault injection: parse a fault spec and decide, per request, which fault (if any) to play."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields, replace

FAULT_KINDS = ("rate429", "rate5xx", "malformed", "drop", "timeout")


class FaultSpecError(ValueError):
    """The fault spec cannot be parsed; the message says what is wrong."""


@dataclass(frozen=True)
class FaultSpec:
    """Per-request probabilities of each fault, plus the knobs of the 429 and timeout faults."""

    rate429: float = 0.0
    rate5xx: float = 0.0
    malformed: float = 0.0
    drop: float = 0.0
    timeout: float = 0.0
    duplicated: float = 0.0  # per events response: repeat some items
    retry_after: int = 1  # seconds, sent with every 429
    timeout_s: float = 30.0  # how long a 'timeout' request sleeps before answering

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def any(self) -> bool:
        return any(getattr(self, kind) > 0 for kind in (*FAULT_KINDS, "duplicated"))


def _validated(spec: FaultSpec) -> FaultSpec:
    for kind in (*FAULT_KINDS, "duplicated"):
        value = getattr(spec, kind)
        if not 0.0 <= value <= 1.0:
            raise FaultSpecError(f"{kind}={value} is not a probability in [0, 1]")
    if sum(getattr(spec, kind) for kind in FAULT_KINDS) > 1.0:
        raise FaultSpecError("the fault probabilities add up to more than 1")
    if spec.retry_after < 0:
        raise FaultSpecError("retry_after must be >= 0 seconds")
    if spec.timeout_s < 0:
        raise FaultSpecError("timeout_s must be >= 0 seconds")
    return spec


def parse_faults(text: str | None, base: FaultSpec | None = None) -> FaultSpec:
    """Parse 'rate429=0.1,rate5xx=0.05,...' (empty or 'none' means no faults) over `base`."""
    spec = base or FaultSpec()
    if text is None or text.strip().lower() in ("", "none", "off"):
        return spec
    names = {f.name: f.type for f in fields(FaultSpec)}
    changes: dict[str, float | int] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep:
            raise FaultSpecError(f"'{part}' is not name=value")
        if name not in names:
            raise FaultSpecError(f"unknown fault '{name}' (known: {', '.join(names)})")
        try:
            changes[name] = int(raw) if name == "retry_after" else float(raw)
        except ValueError:
            raise FaultSpecError(f"'{raw.strip()}' is not a number (in '{part}')") from None
    return _validated(replace(spec, **changes))


def faults_from_mapping(data: dict, base: FaultSpec | None = None) -> FaultSpec:
    """Build a spec from JSON: {"spec": "rate429=0.1"} or {"rate429": 0.1, ...}."""
    if "spec" in data:
        return parse_faults(str(data["spec"]), base)
    text = ",".join(f"{k}={v}" for k, v in data.items())
    return parse_faults(text, base or FaultSpec()) if text else (base or FaultSpec())


class FaultInjector:
    """Seeded, thread-safe per-request fault decisions; the spec can change at runtime."""

    def __init__(self, spec: FaultSpec | None = None, seed: int = 7) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.spec = spec or FaultSpec()

    def set(self, spec: FaultSpec) -> None:
        with self._lock:
            self.spec = spec

    def decide(self) -> str | None:
        """One of FAULT_KINDS, or None for a normal answer."""
        with self._lock:
            spec = self.spec
            if not spec.any:
                return None
            u = self._rng.random()
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += getattr(spec, kind)
            if u < edge:
                return kind
        return None

    def duplicate_items(self, items: list) -> list:
        """Maybe repeat a few items next to themselves (the 'duplicated' fault)."""
        with self._lock:
            if self.spec.duplicated <= 0 or not items or self._rng.random() >= self.spec.duplicated:
                return items
            picks = {self._rng.randrange(len(items)) for _ in range(max(1, len(items) // 10))}
        out = []
        for i, item in enumerate(items):
            out.append(item)
            if i in picks:
                out.append(item)
        return out

    def choose(self, options: tuple) -> object:
        with self._lock:
            return self._rng.choice(options)
