"""Async HTTP client for the API: bounded concurrency, timeouts, and the vendor's retry policy."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
import math
import random
import ssl
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("collectors.http")

# httpcore tries `import sniffio` on every request and falls back to asyncio when it is missing;
# a failed import is not cached, so each request scanned sys.path (a third of the client's CPU).
# Marking the absent module as absent makes that import fail at once, with the same fallback.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n waits 2^(n-1)..2^n seconds (capped at 8..16 s) times `scale`; Retry-After wins."""

    max_attempts: int = 5
    scale: float = 1.0

    def backoff_seconds(self, retry_number: int, rng: random.Random) -> float:
        low = min(2 ** (retry_number - 1), 8)
        return rng.uniform(low, 2 * low) * self.scale

    def wait_seconds(self, retry_number: int, retry_after: str | None, rng: random.Random) -> float:
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after)) * self.scale
            except ValueError:
                pass
        return self.backoff_seconds(retry_number, rng)


@dataclass
class ApiResponse:
    status: int
    body: Any
    text: str
    request_id: str | None
    attempts: int


class ApiError(Exception):
    """A request that failed for good: a non-retryable 4xx, or retries exhausted."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None,
        request_id: str | None,
        attempts: int,
        text: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.request_id = request_id
        self.attempts = attempts
        self.text = text


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    failures: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.by_status[outcome] = self.by_status.get(outcome, 0) + 1


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return err.get("code"), err.get("message"), err.get("request_id")
    return None, None, None


# httpcore scans every connection of its pool on each request (twice, with a syscall each), so one
# pool of `concurrency` connections costs O(concurrency) CPU per request; small pools keep it flat.
POOL_SIZE = 8


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Building one reads the CA bundle (~0.1-1 s); every client of every run shares this one.
    return httpx.create_ssl_context()


class ApiClient:
    """Pooled httpx.AsyncClients (one pool per POOL_SIZE slots); `transport` is the test seam."""

    def __init__(
        self,
        base_url: str,
        *,
        concurrency: int = 32,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        pools = 1 if transport is not None else math.ceil(concurrency / POOL_SIZE)
        per_pool = math.ceil(concurrency / pools)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        self._clients = [
            httpx.AsyncClient(
                base_url=base_url,
                timeout=timeout,
                limits=limits,
                transport=transport,
                verify=_ssl_context() if transport is None else True,
                headers={"User-Agent": "rbv-key-monitor/1.0", "Accept": "application/json"},
            )
            for _ in range(pools)
        ]
        # One slot per request allowed in flight, each bound to a pool that has a connection for it.
        self._slots: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for i in range(concurrency):
            self._slots.put_nowait(self._clients[i % pools])
        self.retry = retry or RetryPolicy()
        self.stats = RequestStats()
        self._rng = random.Random(seed)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def get_json(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        label: str = "",
    ) -> ApiResponse:
        """GET and decode JSON, retrying 429/5xx/transport/malformed bodies with jittered backoff."""
        attempt = 0
        while True:
            attempt += 1
            outcome, retry_after, status, request_id, text = "", None, None, None, ""
            try:
                client = await self._slots.get()
                try:
                    self.stats.requests += 1
                    response = await client.get(path, params=params, headers=headers)
                finally:
                    self._slots.put_nowait(client)
                status = response.status_code
                text = response.text
                request_id = response.headers.get("x-request-id")
                retry_after = response.headers.get("retry-after")
                try:
                    body = response.json()
                except (json.JSONDecodeError, UnicodeDecodeError):
                    body = None
                    outcome = "malformed"
                if outcome == "" and status < 400:
                    self.stats.count(str(status))
                    log.debug("%s %s -> %s request_id=%s attempt=%d", label, path, status, request_id, attempt)
                    return ApiResponse(status, body, text, request_id, attempt)
                code, message, body_request_id = _error_fields(body)
                request_id = request_id or body_request_id
                if outcome == "" and status not in RETRYABLE_STATUS:
                    self.stats.count(str(status))
                    self.stats.failures += 1
                    log.info("%s %s -> %s %s request_id=%s (not retried)", label, path, status, code, request_id)
                    raise ApiError(
                        code or f"http_{status}",
                        message or f"HTTP {status}",
                        status=status,
                        request_id=request_id,
                        attempts=attempt,
                        text=text,
                    )
                outcome = outcome or (code or f"http_{status}")
            except httpx.TransportError as exc:
                outcome = f"transport:{type(exc).__name__}"
            self.stats.count(outcome)
            log.info(
                "%s %s attempt %d failed: %s status=%s request_id=%s", label, path, attempt, outcome, status, request_id
            )
            if attempt >= self.retry.max_attempts:
                self.stats.failures += 1
                raise ApiError(
                    outcome.split(":")[0],
                    f"gave up after {attempt} attempts ({outcome})",
                    status=status,
                    request_id=request_id,
                    attempts=attempt,
                    text=text or None,
                )
            self.stats.retries += 1
            await asyncio.sleep(self.retry.wait_seconds(attempt, retry_after, self._rng))
