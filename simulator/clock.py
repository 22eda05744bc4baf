"""The world clock: frozen at an instant (tests, demos) or following wall time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant ('Z' or offset allowed; naive means UTC) into an aware UTC datetime."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(value: datetime) -> str:
    """Format an aware datetime as UTC ISO-8601 with millisecond precision and a 'Z' suffix."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_ms(ms: int) -> str:
    """Format epoch milliseconds as UTC ISO-8601 with a 'Z' suffix."""
    seconds, millis = divmod(int(ms), 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


def to_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(round(value.timestamp() * 1000))


class Clock:
    """Thread-safe clock; frozen clocks can be set or advanced, wall clocks cannot."""

    def __init__(self, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen = frozen_at.astimezone(UTC) if frozen_at is not None else None

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
        return datetime.now(UTC)

    def set(self, value: datetime) -> datetime:
        with self._lock:
            if self._frozen is None:
                raise RuntimeError("the clock follows wall time; start with --now to freeze it")
            self._frozen = value.astimezone(UTC)
            return self._frozen

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            if self._frozen is None:
                raise RuntimeError("the clock follows wall time; start with --now to freeze it")
            self._frozen = self._frozen + timedelta(seconds=seconds)
            return self._frozen
