"""Async HTTP client for the API: bounded concurrency, timeouts, and the vendor's retry policy."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from untrusted import UnsafeURL, check_url

log = logging.getLogger("collectors.http")

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


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Building one reads the CA bundle (~0.1-1 s); every client of every run shares this one.
    return httpx.create_ssl_context()


# The transport type callers pass as the test seam (so they need not import httpx themselves).
AsyncTransport = httpx.AsyncBaseTransport


def _network_transport(concurrency: int) -> httpx.AsyncBaseTransport:
    """httpx's API over aiohttp's connection pool and C HTTP parser.

    Measured on 3,000 GETs of a 14 KB body at 32 in flight: httpx's own httpcore transport spends
    3 ms CPU per request (its pool rescans every connection on each request), this one 2 ms; the
    collector is CPU-bound at scale, so that is a third of its time.  README "Dependencies".
    """
    return AiohttpTransport(
        verify=_ssl_context(),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    """An AsyncClient that keeps no cookies: the API authenticates by header and sets none, and httpx's
    cookie-jar pass over every response costs ~0.2 ms of CPU, a sixth of the client's per request."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES


_NO_COOKIES = _NoCookies()


class ApiClient:
    """One httpx.AsyncClient with at most `concurrency` requests in flight; `transport` is the test seam."""

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
        self._transport = transport or _network_transport(concurrency)
        self._client = _CookielessClient(
            base_url=base_url,
            timeout=timeout,
            transport=self._transport,
            headers={"User-Agent": "rbv-key-monitor/1.0", "Accept": "application/json"},
        )
        # What the client would send with every GET, for `_get`.
        self._get_headers = self._client.headers.copy()
        self._get_extensions = {"timeout": timeout.as_dict()}
        self._in_flight = asyncio.Semaphore(concurrency)
        self._urls: dict[tuple[str, tuple[tuple[str, Any], ...]], httpx.URL] = {}
        self.retry = retry or RetryPolicy()
        self.stats = RequestStats()
        self._rng = random.Random(seed)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _url(self, path: str, params: dict[str, Any] | None) -> httpx.URL:
        """The absolute URL of a path and its query, built once: every key asks for the same few.

        httpx parses a relative URL three times per request (merge with base_url, then params); an
        absolute httpx.URL passes through untouched, a third of the client's CPU per request.
        """
        key = (path, tuple((params or {}).items()))
        try:
            return self._urls[key]
        except KeyError:
            url = self._urls[key] = self._client.build_request("GET", path, params=params).url
            return url
        except TypeError:  # an unhashable parameter value: build it every time
            return self._client.build_request("GET", path, params=params).url

    async def _get(self, url: httpx.URL, headers: Mapping[str, str] | None) -> httpx.Response:
        """One GET straight through the transport, read whole: what the client's `get` does for the API's
        requests, without its per-request passes for auth, redirects, cookies and hooks (none of which the
        API's GETs use; a redirect is not followed either way): a tenth of the collector's CPU in a 10,000-key
        first collection (py-spy)."""
        sent = httpx.Headers(self._get_headers)
        if headers:
            sent.update(headers)  # a caller's header replaces a default of the same name, whatever its case
        request = httpx.Request("GET", url, headers=sent, extensions=self._get_extensions)
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def get_json(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        label: str = "",
    ) -> ApiResponse:
        """GET and decode JSON, retrying 429/5xx/transport/malformed bodies with jittered backoff."""
        return await self.send("GET", path, params=params, headers=headers, label=label)

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        label: str = "",
        idempotent: bool | None = None,
    ) -> ApiResponse:
        """One request whose answer is JSON, under the retry policy.

        An idempotent request (GET, and writes that set a state, like disabling a key) is retried on 429, 5xx,
        transport errors and malformed bodies. One that creates something (a job, an upload, a key) is retried
        only on 429, which the API answers before doing anything: after a 5xx, a dropped connection or a cut
        body it may have been done, and doing it again would create (and charge, or leak) a second one.
        """
        safe = method == "GET" if idempotent is None else idempotent
        attempt = 0
        while True:
            attempt += 1
            outcome, retry_after, status, request_id, text = "", None, None, None, ""
            try:
                async with self._in_flight:
                    self.stats.requests += 1
                    if method == "GET":
                        response = await self._get(self._url(path, params), headers)
                    else:
                        response = await self._client.request(
                            method, self._url(path, params), headers=headers, json=json, files=files
                        )
                status = response.status_code
                # JSON is UTF-8 (RFC 8259); httpx's `.text` would first sniff the charset of every body.
                text = response.content.decode("utf-8", errors="replace")
                request_id = response.headers.get("x-request-id")
                retry_after = response.headers.get("retry-after")
                try:
                    body = orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    body = None
                    outcome = "malformed"
                if outcome == "" and status < 400:
                    self.stats.count(str(status))
                    log.debug("%s %s -> %s request_id=%s attempt=%d", label, path, status, request_id, attempt)
                    return ApiResponse(status, body, text, request_id, attempt)
                code, message, body_request_id = _error_fields(body)
                request_id = request_id or body_request_id
                if outcome == "" and (status not in RETRYABLE_STATUS or (not safe and status != 429)):
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
            except (httpx.TransportError, aiohttp.ClientError) as exc:
                # httpx_aiohttp maps most aiohttp errors to httpx's; the rest (a garbled status line) are as transient.
                outcome = f"transport:{type(exc).__name__}"
            self.stats.count(outcome)
            log.info(
                "%s %s attempt %d failed: %s status=%s request_id=%s", label, path, attempt, outcome, status, request_id
            )
            if attempt >= self.retry.max_attempts or (not safe and status != 429):
                self.stats.failures += 1
                raise ApiError(
                    outcome.split(":")[0],
                    f"gave up after {attempt} attempts ({outcome})" if safe else f"not retried ({outcome})",
                    status=status,
                    request_id=request_id,
                    attempts=attempt,
                    text=text or None,
                )
            self.stats.retries += 1
            await asyncio.sleep(self.retry.wait_seconds(attempt, retry_after, self._rng))

    async def probe(self, url: str, *, max_bytes: int = 64 * 1024) -> tuple[int | None, int, str | None]:
        """GET an absolute URL (a job's output) without the API's headers, reading at most `max_bytes`:
        (HTTP status or None, bytes read, error or None); 429, 5xx and transport errors are retried."""
        attempt = 0
        while True:
            attempt += 1
            status, error, retry_after, size = None, None, None, 0
            try:
                async with (
                    self._in_flight,
                    self._client.stream("GET", url, headers={"Range": f"bytes=0-{max_bytes - 1}"}) as response,
                ):
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size >= max_bytes:
                            break
                if status not in RETRYABLE_STATUS:
                    return status, size, None
                error = f"HTTP {status}"
            except (httpx.TransportError, aiohttp.ClientError) as exc:
                error = f"transport:{type(exc).__name__}"
            except httpx.HTTPError as exc:  # a URL that cannot be requested at all
                return None, 0, f"cannot request it ({type(exc).__name__})"
            if attempt >= self.retry.max_attempts:
                return status, size, f"gave up after {attempt} attempts ({error})"
            await asyncio.sleep(self.retry.wait_seconds(attempt, retry_after, self._rng))


class _HideSecretURLs(logging.Filter):
    """httpx logs every request's URL at INFO; a webhook URL is a secret, so its records name `<webhook>`."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls and isinstance(record.args, tuple):
            record.args = tuple("<webhook>" if str(a) in self.urls else a for a in record.args)
        return True


_SECRET_URLS = _HideSecretURLs()
logging.getLogger("httpx").addFilter(_SECRET_URLS)


@dataclass(frozen=True)
class PostOutcome:
    ok: bool
    attempts: int
    error: str | None  # never the URL: a webhook URL is a secret


def post_json(
    url: str,
    payload: Any,
    retry: RetryPolicy | None = None,
    *,
    timeout_s: float = 5.0,
    transport: httpx.BaseTransport | None = None,
    seed: int | None = None,
    headers: Mapping[str, str] | None = None,
    sign: Callable[[bytes], Mapping[str, str]] | None = None,
) -> PostOutcome:
    """POST `payload` as JSON (a webhook notification) under the same retry policy as the API's requests:
    429, 5xx and transport errors are retried with jittered backoff (Retry-After honoured), other 4xx are
    not, and redirects are not followed. Blocking: run it in the service's worker thread, never in a page.

    `headers` go with every attempt; `sign(body)` adds headers computed over the exact bytes sent, at each
    attempt (a signature's timestamp is then fresh on a retry)."""
    try:
        check_url(url, allow_link_local=True)  # the link-local rule was applied where the URL was configured
    except UnsafeURL as exc:
        reason = f"webhook URL {exc}; nothing was sent"
        log.warning("alert delivery not attempted: %s", reason)
        return PostOutcome(False, 0, reason)
    policy = retry or RetryPolicy(max_attempts=3)
    rng = random.Random(seed)
    _SECRET_URLS.urls.add(url)
    try:
        _SECRET_URLS.urls.add(str(httpx.URL(url)))  # the form httpx logs
    except httpx.InvalidURL:
        pass
    error: str | None = None
    attempt = 0
    body = orjson.dumps(payload)
    with httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=False) as client:
        while True:
            attempt += 1
            retry_after = None
            sent = {"Content-Type": "application/json", **(headers or {}), **(sign(body) if sign else {})}
            try:
                response = client.post(url, content=body, headers=sent)
                if response.status_code < 300:
                    return PostOutcome(True, attempt, None)
                error = f"webhook answered HTTP {response.status_code}"
                retry_after = response.headers.get("retry-after")
                if response.status_code not in RETRYABLE_STATUS:
                    log.warning("webhook delivery failed: %s (not retried)", error)
                    return PostOutcome(False, attempt, error)
            except httpx.InvalidURL:
                return PostOutcome(False, attempt, "webhook URL is not a valid http(s) URL")
            except httpx.TransportError as exc:
                error = f"webhook unreachable: {type(exc).__name__}"
            except httpx.HTTPError as exc:  # a URL httpx cannot use (scheme, host): its text would echo it
                return PostOutcome(False, attempt, f"webhook URL cannot be posted to ({type(exc).__name__})")
            log.warning("webhook delivery attempt %d/%d failed: %s", attempt, policy.max_attempts, error)
            if attempt >= policy.max_attempts:
                return PostOutcome(False, attempt, error)
            time.sleep(policy.wait_seconds(attempt, retry_after, rng))
