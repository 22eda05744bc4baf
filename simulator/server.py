"""HTTP front of the stand-in: routes, auth, validation and faults over a World.

A small HTTP/1.1 keep-alive server on asyncio streams (stdlib), run on its own thread and event
loop: latency and injected timeouts are sleeps on the loop, not parked threads, so a thousand
connections cost no more than one."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

from . import shapes as wire
from .catalog import FORMATS, MODELS
from .clock import iso, parse_instant
from .faults import FaultInjector, FaultSpec, FaultSpecError, faults_from_mapping
from .live import LiveSettings
from .world import JOB_STATUSES, World, json_bytes

DEFAULT_ADMIN_TOKEN = "sim-admin-token"
_JOB_PATH = re.compile(r"^/v1/jobs/([^/]+)$")
_JOB_START = re.compile(r"^/v1/jobs/([^/]+)/start$")
_OUTPUT_PATH = re.compile(r"^/cdn/out/([A-Za-z0-9_]+)\.[a-z0-9]+$")
MAX_BODY_BYTES = 64 << 20  # an upload larger than this is refused before it is read
MAX_METADATA_BYTES = 4096


class ApiError(Exception):
    """An error answer: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class App:
    """Shared state of one running stand-in."""

    world: World
    faults: FaultInjector
    latency_ms: float = 0.0
    admin_token: str = DEFAULT_ADMIN_TOKEN
    # record kind -> wire shape (simulator.shapes); kinds not named answer in the canonical shape
    shapes: dict[str, str] = field(default_factory=dict)
    base_url: str = ""  # where created jobs' outputs are served (set once the port is bound)
    stopping: threading.Event = field(default_factory=threading.Event)
    _counter: itertools.count = field(default_factory=itertools.count)

    _loop: asyncio.AbstractEventLoop | None = None
    _stop_event: asyncio.Event | None = None

    def request_id(self) -> str:
        n = next(self._counter)
        return "req_" + hashlib.blake2b(f"{self.world.seed}|live|{n}".encode(), digest_size=12).hexdigest()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._stop_event = loop, asyncio.Event()
        if self.stopping.is_set():
            self._stop_event.set()

    def stop(self) -> None:
        self.stopping.set()
        if self._loop is not None and self._stop_event is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:
                pass

    async def wait_stopping(self, seconds: float) -> bool:
        """Sleep up to `seconds` (an injected timeout); True when the stand-in is stopping meanwhile."""
        assert self._stop_event is not None
        try:
            await asyncio.wait_for(self._stop_event.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _int_param(query: dict, name: str, default: int, lo: int, hi: int | None) -> int:
    values = query.get(name)
    if not values or values[-1] == "":
        return default
    raw = values[-1]
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_request", f"'{name}' must be an integer, got '{raw}'") from None
    if value < lo or (hi is not None and value > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ApiError(400, "invalid_request", f"'{name}' must be in {bounds}, got {value}")
    return value


_REASONS = {status.value: status.phrase for status in HTTPStatus}
_MAX_HEAD = 64 * 1024
IDLE_TIMEOUT_S = 120.0  # idle keep-alive connections are closed after this many seconds
SERVER_NAME = "removebgvideo-api/1.0"
_date: tuple[int, str] = (0, "")  # (epoch second, its Date header value)


def _http_date() -> str:
    """The Date header value, formatted once per second rather than once per answer."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


class _Request:
    """One parsed HTTP/1.1 request: method, path, query, headers (lower-cased names), body."""

    __slots__ = ("method", "path", "query", "headers", "body")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        path, _, query = target.partition("?")
        self.path = path.rstrip("/") or "/"
        self.query = parse_qs(query, keep_blank_values=True) if query else {}
        self.headers = headers
        self.body = body


class _BadRequest(Exception):
    pass


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise _BadRequest("bad request line") from None
    if not version.startswith("HTTP/1."):
        raise _BadRequest("unsupported HTTP version")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest("bad header line")
        headers[name.strip().lower()] = value.strip()
    if not target.startswith("/"):  # absolute form: keep path and query
        parts = urlsplit(target)
        target = parts.path + ("?" + parts.query if parts.query else "")
    return method, target, version, headers


class _Connection:
    """Serves one keep-alive connection on the event loop; every answer has Content-Length and X-Request-Id."""

    def __init__(self, app: App, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.app, self.reader, self.writer = app, reader, writer

    async def serve(self) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(IDLE_TIMEOUT_S):
                        head = await self.reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                    return
                try:
                    method, target, version, headers = _parse_head(head[:-4])
                    length = int(headers.get("content-length") or 0)
                except (_BadRequest, ValueError) as exc:
                    self._error(ApiError(400, "invalid_request", str(exc)), self.app.request_id(), True)
                    return
                if length > MAX_BODY_BYTES:
                    too_big = ApiError(413, "invalid_request", f"body larger than {MAX_BODY_BYTES >> 20} MB")
                    self._error(too_big, self.app.request_id(), True)
                    return
                body = await self.reader.readexactly(length) if length > 0 else b""
                close = headers.get("connection", "").lower() == "close" or (
                    version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive"
                )
                if not await self._dispatch(_Request(method, target, headers, body), close) or close:
                    return
                await self.writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.writer.close()

    def _write(
        self,
        status: int,
        body: bytes,
        request_id: str,
        headers: dict,
        close: bool = False,
        content_type: str = "application/json",
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}",
            f"Server: {SERVER_NAME}",
            f"Date: {_http_date()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"X-Request-Id: {request_id}",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if close:
            lines.append("Connection: close")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _error(self, err: ApiError, request_id: str, close: bool) -> None:
        body = {"error": {"code": err.code, "message": err.message, "request_id": request_id}}
        self._write(err.status, json_bytes(body), request_id, err.headers, close)

    async def _dispatch(self, req: _Request, close: bool) -> bool:
        """Answer one request; False when the connection must close without (or after) an answer."""
        app = self.app
        request_id = app.request_id()
        try:
            if req.path.startswith("/_sim/"):
                status, payload = _route_sim(app, req)
                self._write(status, json_bytes(payload), request_id, {}, close)
                return True
            if req.path.startswith("/cdn/"):  # created jobs' outputs: another service, without the API's faults
                _only(req.method, "GET")
                match = _OUTPUT_PATH.match(req.path)
                data = app.world.created_output(match.group(1)) if match else None
                if data is None:
                    raise ApiError(404, "not_found", "No such output")
                self._write(200, data, request_id, {}, close, content_type="video/mp4")
                return True
            if app.latency_ms > 0:
                await asyncio.sleep(app.latency_ms / 1000.0)
            fault = app.faults.decide()
            if fault == "drop":
                return False
            if fault == "timeout":
                if await app.wait_stopping(app.faults.spec.timeout_s):
                    return False
            elif fault == "rate429":
                raise ApiError(
                    429,
                    "rate_limited",
                    "Too many requests, slow down",
                    {"Retry-After": app.faults.spec.retry_after},
                )
            elif fault == "rate5xx":
                status = int(app.faults.choose((500, 502, 503)))  # type: ignore[call-overload]
                raise ApiError(status, "internal_error", "Internal error, please retry")
            status, payload = _route(app, req, request_id)
            raw = payload if isinstance(payload, bytes) else json_bytes(payload)
            if fault == "malformed":
                raw = raw[: max(1, len(raw) // 2)]
            self._write(status, raw, request_id, {}, close)
        except ApiError as err:
            self._error(err, request_id, close)
        except Exception:  # a bug in the stand-in: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            self._error(ApiError(500, "internal_error", "stand-in failure"), request_id, close)
        return True


# ------------------------------------------------------------------ routes


def _only(method: str, allowed: str) -> None:
    if method not in allowed.split(", "):
        raise ApiError(405, "method_not_allowed", f"Use {allowed}", {"Allow": allowed})


def _json_body(req: _Request) -> dict:
    try:
        data = json.loads(req.body or b"{}")
    except ValueError:
        raise ApiError(400, "invalid_request", "body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    return data


def _text(data: dict, name: str, limit: int, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, "invalid_request", f"'{name}' is required")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ApiError(400, "invalid_request", f"'{name}' must be text of 1 to {limit} characters")
    return value.strip()


def _http_url(data: dict, name: str, required: bool) -> str | None:
    value = _text(data, name, 2048, required)
    if value is not None:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
            raise ApiError(400, "invalid_request", f"'{name}' must be an http(s) URL")
    return value


def _create_job(app: App, req: _Request, spec, request_id: str) -> dict:
    """POST /v1/jobs {video_url, model, bg_type, output_format, auto_start, webhook_url, metadata}."""
    data = _json_body(req)
    video_url = _http_url(data, "video_url", required=True)
    model = data.get("model", "original")
    if model not in MODELS:
        raise ApiError(400, "invalid_request", f"'model' must be one of {', '.join(MODELS)}")
    output_format = data.get("output_format", "mp4")
    if output_format not in FORMATS:
        raise ApiError(400, "invalid_request", f"'output_format' must be one of {', '.join(FORMATS)}")
    _text(data, "bg_type", 64)
    _http_url(data, "webhook_url", required=False)  # accepted; the stand-in posts no webhooks
    auto_start = data.get("auto_start", True)
    if not isinstance(auto_start, bool):
        raise ApiError(400, "invalid_request", "'auto_start' must be true or false")
    metadata = data.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(json_bytes(metadata)) > MAX_METADATA_BYTES):
        raise ApiError(400, "invalid_request", f"'metadata' must be an object of at most {MAX_METADATA_BYTES} bytes")
    return app.world.create_job(spec.name, video_url, model, output_format, auto_start, request_id, app.base_url)


def _upload(app: App, req: _Request, spec, request_id: str) -> dict:
    """POST /v1/uploads: multipart/form-data with a `file` part."""
    content_type = req.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise ApiError(400, "invalid_request", "send multipart/form-data with a 'file' part")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True) or b""
            if not payload:
                raise ApiError(400, "invalid_request", "the 'file' part is empty")
            name = part.get_filename() or "upload.mp4"
            return app.world.upload(spec.name, name, len(payload), part.get_content_type(), request_id)
    raise ApiError(400, "invalid_request", "no 'file' part in the form")


def _route_admin(app: App, req: _Request) -> tuple[int, object]:
    """The admin API (X-Admin-Token): the key inventory, creating, disabling and enabling keys, the config."""
    world, method, path = app.world, req.method, req.path
    if req.headers.get("x-admin-token") != app.admin_token:
        raise ApiError(401, "invalid_admin_token", "Missing or invalid X-Admin-Token")
    if path == "/v1/admin/keys":
        _only(method, "GET, POST")
        if method == "GET":
            return 200, {"items": world.admin_keys(world.now())}
        data = _json_body(req)
        client_id = _text(data, "client_id", 100, required=True)
        note = _text(data, "note", 500) or ""
        try:
            return 201, world.admin_create_key(str(client_id), note, _text(data, "name", 100))
        except ValueError as exc:
            raise ApiError(409, "invalid_request", str(exc)) from None
    if path in ("/v1/admin/keys/disable", "/v1/admin/keys/enable"):
        _only(method, "POST")
        fingerprint = _text(_json_body(req), "key_fingerprint", 64, required=True)
        item = world.admin_set_enabled(str(fingerprint), path.endswith("/enable"))
        if item is None:
            raise ApiError(404, "not_found", f"No key with fingerprint {fingerprint}")
        return 200, item
    if path == "/v1/admin/config":
        _only(method, "GET")
        return 200, world.admin_config()
    raise ApiError(404, "not_found", f"No route for {method} {path}")


def _authenticate(app: App, req: _Request):
    secret = req.headers.get("x-api-key")
    if not secret:
        raise ApiError(401, "invalid_api_key", "Missing X-Api-Key header")
    spec = app.world.key_by_secret(secret.strip())
    if spec is None:
        raise ApiError(401, "invalid_api_key", "Invalid API key")
    if not app.world.is_enabled(spec):
        raise ApiError(401, "invalid_api_key", "API key is disabled")
    return spec


def _route(app: App, req: _Request, request_id: str = "") -> tuple[int, object]:
    """(status, payload): a JSON-able object, or bytes already rendered (the per-key views)."""
    world, method, path, query = app.world, req.method, req.path, req.query
    if path == "/health":
        _only(method, "GET")
        return 200, {"status": "ok", "time": iso(world.now())}
    if path == "/api/pricing":
        _only(method, "GET")
        status, body = wire.pricing(app.shapes.get("pricing", "canonical"))
        if status != 200:
            raise ApiError(status, "not_found", "No route for GET /api/pricing")
        return status, body
    if path.startswith("/v1/admin/"):
        return _route_admin(app, req)
    if path == "/v1/uploads":
        _only(method, "POST")
        return 201, _upload(app, req, _authenticate(app, req), request_id)
    start_match = _JOB_START.match(path) if path.endswith("/start") else None
    if start_match:
        _only(method, "POST")
        spec = _authenticate(app, req)
        job_id = unquote(start_match.group(1))
        try:
            started = world.start_job(spec.name, job_id, request_id)
        except ValueError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        if started is None:
            raise ApiError(404, "not_found", f"No job {job_id} waiting to start")
        return 200, started
    if path == "/v1/jobs" and method == "POST":
        return 201, _create_job(app, req, _authenticate(app, req), request_id)
    job_match = _JOB_PATH.match(path) if path.startswith("/v1/jobs/") else None
    if path in ("/v1/usage/summary", "/v1/usage/events", "/v1/jobs") or job_match:
        _only(method, "GET, POST" if path == "/v1/jobs" else "GET")
        spec = _authenticate(app, req)
        now = world.now()
        if path == "/v1/usage/summary":
            days = _int_param(query, "days", 7, 1, 90)
            return 200, _shaped(app, "summary", world.body("summary", spec.name, (days,), now))
        if path == "/v1/usage/events":
            limit = _int_param(query, "limit", 20, 1, 100)
            if app.faults.spec.duplicated <= 0:
                return 200, _shaped(app, "events", world.body("events", spec.name, (limit,), now))
            # The duplicated fault edits the items (and draws from the fault RNG): no kept body.
            items = app.faults.duplicate_items(world.recent_events(spec.name, limit, now))
            return 200, _shaped(app, "events", {"items": items})
        if path == "/v1/jobs":
            limit = _int_param(query, "limit", 20, 1, 100)
            offset = _int_param(query, "offset", 0, 0, None)
            status = (query.get("status") or [""])[-1] or None
            if status is not None and status not in JOB_STATUSES:
                raise ApiError(400, "invalid_request", f"'status' must be one of {', '.join(JOB_STATUSES)}")
            return 200, _shaped(app, "jobs", world.body("jobs", spec.name, (limit, offset, status), now))
        job_id = unquote(job_match.group(1))  # type: ignore[union-attr]
        job = world.job(spec.name, job_id, now)
        if job is None:
            raise ApiError(404, "not_found", f"No job {job_id}")
        return 200, _shaped(app, "jobs", job, detail=True)
    raise ApiError(404, "not_found", f"No route for {method} {path}")


def _shaped(app: App, kind: str, body: bytes | dict, detail: bool = False) -> bytes | object:
    """A canonical body in the wire shape chosen for its kind (the canonical bytes untouched)."""
    shape = app.shapes.get(kind, "canonical")
    if shape == "canonical":
        return body
    payload = json.loads(body) if isinstance(body, bytes) else body
    return wire.reshape("job" if detail else kind, payload, shape)


def _route_sim(app: App, req: _Request) -> tuple[int, object]:
    world, method, path = app.world, req.method, req.path
    data: dict = {}
    if method == "POST" and req.body:
        try:
            data = json.loads(req.body)
        except ValueError:
            raise ApiError(400, "invalid_request", "body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_request", "body must be a JSON object")
    if path == "/_sim/truth":
        return 200, world.truth(world.now())
    if path == "/_sim/clock":
        if method == "POST":
            try:
                if "now" in data:
                    world.clock.set(parse_instant(str(data["now"])))
                elif "advance_seconds" in data:
                    world.clock.advance(float(data["advance_seconds"]))
                else:
                    raise ApiError(400, "invalid_request", "give 'now' or 'advance_seconds'")
            except RuntimeError as exc:
                raise ApiError(409, "clock_not_frozen", str(exc)) from None
            except ValueError as exc:
                raise ApiError(400, "invalid_request", str(exc)) from None
        return 200, {"now": iso(world.now()), "frozen": world.clock.frozen}
    if path == "/_sim/burst":
        _only(method, "POST")
        name = data.get("key_name")
        calls = data.get("calls", 500)
        if name not in {k.name for k in world.keys()}:
            raise ApiError(404, "not_found", f"unknown key_name {name!r}")
        if not isinstance(calls, int) or not 1 <= calls <= 100_000:
            raise ApiError(400, "invalid_request", "'calls' must be an integer in 1..100000")
        return 200, world.burst(name, calls, world.now())
    if path == "/_sim/shapes":
        if method == "POST":
            try:
                chosen = wire.parse_shapes(str(data["spec"])) if "spec" in data else dict(data)
                for kind, shape in chosen.items():
                    wire.check(str(kind), str(shape))
            except wire.ShapeError as exc:
                raise ApiError(400, "invalid_request", str(exc)) from None
            app.shapes = {str(k): str(v) for k, v in chosen.items()}
        return 200, {kind: app.shapes.get(kind, "canonical") for kind in wire.KINDS}
    if path == "/_sim/live":
        if method == "POST":
            try:
                items = data.get("items", [data]) if data else []
                chosen = [_live_settings(item) for item in items]
                world.set_live_settings(chosen)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, "invalid_request", str(exc)) from None
        return 200, {"items": [vars(item) for item in world.live.settings.values()]}
    if path == "/_sim/faults":
        if method == "POST":
            try:
                app.faults.set(faults_from_mapping(data, FaultSpec()))
            except FaultSpecError as exc:
                raise ApiError(400, "invalid_request", str(exc)) from None
        return 200, app.faults.spec.as_dict()
    raise ApiError(404, "not_found", f"No route for {method} {path}")


def _live_settings(item: object) -> LiveSettings:
    if not isinstance(item, dict):
        raise ValueError("each setting must be an object")
    unknown = set(item) - {"speed", "charge_multiplier", "missing_output", "key_name"}
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}")
    speed = float(item.get("speed", LiveSettings.speed))
    multiplier = float(item.get("charge_multiplier", 1.0))
    if not (0 < speed <= 10_000 and 0 <= multiplier <= 100):
        raise ValueError("'speed' must be in (0, 10000] and 'charge_multiplier' in [0, 100]")
    name = item.get("key_name")
    return LiveSettings(speed, multiplier, bool(item.get("missing_output", False)), str(name) if name else None)


class _Server:
    """The listening socket and event loop of one stand-in, run on a background thread."""

    def __init__(self, app: App, port: int) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
            self.sock.listen(1024)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.server_address = self.sock.getsockname()
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        self.app.bind_loop(self.loop)
        server = await asyncio.start_server(self._client, sock=self.sock, limit=_MAX_HEAD, backlog=1024)
        self._ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
        # Let the connection tasks see their aborted transports and finish.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        try:
            await _Connection(self.app, reader, writer).serve()
        finally:
            self._writers.discard(writer)

    def shutdown(self) -> None:
        if self._stopped is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:  # the loop already finished
                pass


@dataclass
class ServerHandle:
    """A running stand-in: its address, world and faults; stop() shuts it down."""

    server: _Server
    thread: threading.Thread
    app: App

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def world(self) -> World:
        return self.app.world

    @property
    def faults(self) -> FaultInjector:
        return self.app.faults

    def stop(self) -> None:
        self.app.stop()
        self.server.shutdown()
        self.thread.join(timeout=5)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    world: World,
    port: int = 0,
    faults: FaultSpec | FaultInjector | None = None,
    latency_ms: float = 0.0,
    admin_token: str = DEFAULT_ADMIN_TOKEN,
    shapes: dict[str, str] | None = None,
) -> ServerHandle:
    """Serve `world` on 127.0.0.1:`port` (0 = a free port) from a background thread, answering each record
    kind in the wire shape `shapes` names for it (simulator.shapes; default canonical)."""
    injector = faults if isinstance(faults, FaultInjector) else FaultInjector(faults, seed=world.seed)
    for kind, shape in (shapes or {}).items():
        wire.check(kind, shape)
    app = App(world=world, faults=injector, latency_ms=latency_ms, admin_token=admin_token, shapes=dict(shapes or {}))
    server = _Server(app, port)
    app.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.run, daemon=True, name=f"stand-in-api:{server.server_address[1]}")
    thread.start()
    server._ready.wait(timeout=30)
    return ServerHandle(server, thread, app)
