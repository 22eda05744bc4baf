"""HTTP front of the stand-in: routes, auth, validation and faults over a World (stdlib server)."""

from __future__ import annotations

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .catalog import MODEL_RATES, MODELS
from .clock import iso, parse_instant
from .faults import FaultInjector, FaultSpec, FaultSpecError, faults_from_mapping
from .world import JOB_STATUSES, World

DEFAULT_ADMIN_TOKEN = "sim-admin-token"
_JOB_PATH = re.compile(r"^/v1/jobs/([^/]+)$")


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
    stopping: threading.Event = field(default_factory=threading.Event)
    _counter: itertools.count = field(default_factory=itertools.count)

    def request_id(self) -> str:
        n = next(self._counter)
        return "req_" + hashlib.blake2b(f"{self.world.seed}|live|{n}".encode(), digest_size=12).hexdigest()


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


class Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 keep-alive, every answer carries Content-Length and X-Request-Id."""

    protocol_version = "HTTP/1.1"
    server_version = "removebgvideo-api/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    app: App  # set by start_server on a subclass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    # ------------------------------------------------------------ plumbing

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, body: bytes, request_id: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(body)

    @staticmethod
    def _json(obj: object) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def _error(self, err: ApiError, request_id: str) -> None:
        body = {"error": {"code": err.code, "message": err.message, "request_id": request_id}}
        self._send(err.status, self._json(body), request_id, err.headers)

    def _dispatch(self, method: str) -> None:
        app = self.app
        request_id = app.request_id()
        try:
            body = self._read_body()
            parts = urlsplit(self.path)
            path = parts.path.rstrip("/") or "/"
            query = parse_qs(parts.query, keep_blank_values=True)
            if path.startswith("/_sim/"):
                status, payload = self._route_sim(method, path, body)
                self._send(status, self._json(payload), request_id)
                return
            if app.latency_ms > 0:
                time.sleep(app.latency_ms / 1000.0)
            fault = app.faults.decide()
            if fault == "drop":
                self.close_connection = True
                return
            if fault == "timeout":
                if app.stopping.wait(app.faults.spec.timeout_s):
                    self.close_connection = True
                    return
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
            status, payload = self._route(method, path, query)
            raw = self._json(payload)
            if fault == "malformed":
                raw = raw[: max(1, len(raw) // 2)]
            self._send(status, raw, request_id)
        except ApiError as err:
            self._error(err, request_id)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # a bug in the stand-in: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            try:
                self._error(ApiError(500, "internal_error", "stand-in failure"), request_id)
            except OSError:
                self.close_connection = True

    # -------------------------------------------------------------- routes

    def _route(self, method: str, path: str, query: dict) -> tuple[int, object]:
        world = self.app.world
        if path == "/health":
            self._only(method, "GET")
            return 200, {"status": "ok", "time": iso(world.now())}
        if path == "/api/pricing":
            self._only(method, "GET")
            models = [{"model": m, "credits_per_minute": int(r)} for m, r in zip(MODELS, MODEL_RATES, strict=True)]
            return 200, {"unit": "credits_per_minute", "models": models}
        if path == "/v1/admin/keys":
            self._only(method, "GET")
            if self.headers.get("X-Admin-Token") != self.app.admin_token:
                raise ApiError(401, "invalid_admin_token", "Missing or invalid X-Admin-Token")
            return 200, {"items": world.admin_keys(world.now())}
        if path in ("/v1/usage/summary", "/v1/usage/events", "/v1/jobs") or _JOB_PATH.match(path):
            self._only(method, "GET")
            spec = self._authenticate()
            now = world.now()
            if path == "/v1/usage/summary":
                days = _int_param(query, "days", 7, 1, 90)
                return 200, world.summary(spec.name, days, now)
            if path == "/v1/usage/events":
                limit = _int_param(query, "limit", 20, 1, 100)
                items = self.app.faults.duplicate_items(world.recent_events(spec.name, limit, now))
                return 200, {"items": items}
            if path == "/v1/jobs":
                limit = _int_param(query, "limit", 20, 1, 100)
                offset = _int_param(query, "offset", 0, 0, None)
                status = (query.get("status") or [""])[-1] or None
                if status is not None and status not in JOB_STATUSES:
                    raise ApiError(400, "invalid_request", f"'status' must be one of {', '.join(JOB_STATUSES)}")
                return 200, world.jobs_page(spec.name, limit, offset, status, now)
            job_id = _JOB_PATH.match(path).group(1)  # type: ignore[union-attr]
            job = world.job(spec.name, job_id, now)
            if job is None:
                raise ApiError(404, "not_found", f"No job {job_id}")
            return 200, job
        raise ApiError(404, "not_found", f"No route for {method} {path}")

    def _only(self, method: str, allowed: str) -> None:
        if method != allowed:
            raise ApiError(405, "method_not_allowed", f"Use {allowed}", {"Allow": allowed})

    def _authenticate(self):
        secret = self.headers.get("X-Api-Key")
        if not secret:
            raise ApiError(401, "invalid_api_key", "Missing X-Api-Key header")
        spec = self.app.world.key_by_secret(secret.strip())
        if spec is None:
            raise ApiError(401, "invalid_api_key", "Invalid API key")
        if not spec.enabled:
            raise ApiError(401, "invalid_api_key", "API key is disabled")
        return spec

    def _route_sim(self, method: str, path: str, body: bytes) -> tuple[int, object]:
        app = self.app
        world = app.world
        data: dict = {}
        if method == "POST" and body:
            try:
                data = json.loads(body)
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
            self._only(method, "POST")
            name = data.get("key_name")
            calls = data.get("calls", 500)
            if name not in {k.name for k in world.keys()}:
                raise ApiError(404, "not_found", f"unknown key_name {name!r}")
            if not isinstance(calls, int) or not 1 <= calls <= 100_000:
                raise ApiError(400, "invalid_request", "'calls' must be an integer in 1..100000")
            return 200, world.burst(name, calls, world.now())
        if path == "/_sim/faults":
            if method == "POST":
                try:
                    app.faults.set(faults_from_mapping(data, FaultSpec()))
                except FaultSpecError as exc:
                    raise ApiError(400, "invalid_request", str(exc)) from None
            return 200, app.faults.spec.as_dict()
        raise ApiError(404, "not_found", f"No route for {method} {path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:  # type: ignore[override]
        # A client that went away (killed collector, dropped keep-alive) is normal traffic, not a bug.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
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
        self.app.stopping.set()
        self.server.shutdown()
        self.server.close_open_connections()
        self.server.server_close()
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
) -> ServerHandle:
    """Serve `world` on 127.0.0.1:`port` (0 = a free port) from a background thread."""
    injector = faults if isinstance(faults, FaultInjector) else FaultInjector(faults, seed=world.seed)
    app = App(world=world, faults=injector, latency_ms=latency_ms, admin_token=admin_token)
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = _Server(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.name = f"stand-in-api:{server.server_address[1]}"
    thread.start()
    return ServerHandle(server, thread, app)
