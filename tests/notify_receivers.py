"""Local receivers for every notice channel, as the real ones behave: a Slack-compatible webhook, a JSON webhook
that verifies the HMAC-SHA256 signature (a wrong secret is refused), a PagerDuty Events API v2 endpoint that
validates events and answers 202, and an SMTP server (aiosmtpd) with optional login and STARTTLS."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Received:
    """What one HTTP receiver accepted (and refused)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bodies(self) -> list[Any]:
        with self.lock:
            return [r["json"] for r in self.requests]


def _verify(secret: str, headers: Any, body: bytes, max_age_s: float = 300.0) -> str | None:
    """A receiver's check of the signed webhook: why it refuses the request, or None."""
    stamp, signature = headers.get("X-RBV-Timestamp"), headers.get("X-RBV-Signature")
    if not stamp or not signature:
        return "unsigned"
    if abs(time.time() - int(stamp)) > max_age_s:
        return "stale timestamp"
    expected = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, signature) else "bad signature"


_PAGERDUTY_SEVERITIES = {"critical", "error", "warning", "info"}


def _pagerduty_problem(event: Any) -> str | None:
    """What the Events API v2 would answer 400 for (the fields it requires)."""
    if not isinstance(event, dict) or not event.get("routing_key"):
        return "routing_key missing"
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        return "event_action invalid"
    if action != "trigger":
        return None if event.get("dedup_key") else "dedup_key required"
    payload = event.get("payload") or {}
    if not payload.get("summary") or not payload.get("source") or payload.get("severity") not in _PAGERDUTY_SEVERITIES:
        return "payload summary, source and severity are required"
    return None


@contextmanager
def http_receiver(
    kind: str = "slack",
    secret: str | None = None,
    statuses: list[int] | None = None,
    routing_key: str | None = None,
    port: int = 0,
) -> Iterator[tuple[str, Received]]:
    """A receiver on a free loopback port: `kind` slack (200 "ok"), webhook (verifies `secret`: 401 otherwise) or
    pagerduty (validates the event and its `routing_key`, answers 202 with the dedup_key). `statuses` answers the
    first requests with those codes instead (to exercise retries)."""
    state = Received()
    queue = list(statuses or [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = 200, b"ok"
            with state.lock:
                forced = queue.pop(0) if queue else None
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            problem = None
            if forced is not None:
                status = forced
            elif kind == "webhook":
                problem = _verify(secret or "", self.headers, body)
                status = 401 if problem else 200
            elif kind == "pagerduty":
                problem = _pagerduty_problem(data)
                if problem is None and routing_key is not None and data.get("routing_key") != routing_key:
                    problem = "unknown routing key"
                status = 400 if problem else 202
                answer = json.dumps(
                    {"status": "invalid event" if problem else "success", "dedup_key": (data or {}).get("dedup_key")}
                ).encode()
            with state.lock:
                if status < 300:
                    state.requests.append({"headers": dict(self.headers), "body": body, "json": data})
                else:
                    state.refused.append(problem or f"HTTP {status}")
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T0/B0/{kind}-SECRETPATH", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (openssl), so STARTTLS is verified for real against a CA file."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


@contextmanager
def smtp_receiver(
    login: tuple[str, str] | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[tuple[int, Mailbox]]:
    """An SMTP server (aiosmtpd) on a free loopback port; `login` requires AUTH with that user and password,
    `tls` (cert, key) offers and requires STARTTLS."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox()

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd naming)
            box.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            box.messages.append(
                message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
            )
            return "250 Message accepted for delivery"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            login is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == login[0]
            and auth_data.password.decode() == login[1]
        )
        if ok:
            box.logins.append(login[0])
        return AuthResult(success=ok, handled=False)  # a failure is answered 535, as real servers do

    kwargs: dict[str, Any] = {}
    if login is not None:
        # Login is offered (and a wrong one refused with 535); it is not made mandatory on a plain connection,
        # which aiosmtpd rightly warns about (and the tests turn warnings into errors).
        kwargs.update(authenticator=authenticator, auth_required=tls is not None, auth_require_tls=tls is not None)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        kwargs.update(tls_context=context, require_starttls=True)
    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@contextmanager
def black_hole(port: int = 0) -> Iterator[tuple[int, threading.Event]]:
    """A listener that accepts and reads requests but never answers: a sender talking to it is stuck mid-send.
    The event is set once a request has arrived."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    listener.settimeout(0.1)
    arrived, stop = threading.Event(), threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            conn.settimeout(5)
            try:
                if conn.recv(65536):
                    arrived.set()
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], arrived
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()
