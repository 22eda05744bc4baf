"""Outbound notices: Slack-compatible webhooks, JSON webhooks signed with HMAC-SHA256 and PagerDuty Events API v2
over the one HTTP client and retry policy (collectors.http_client), and e-mail over SMTP under the same policy.

Secrets (webhook URLs, the signing secret, PagerDuty's routing key, the SMTP login) are read from the
environment variables the channel names at the moment of sending; they are never stored, logged or part of
an error message. Blocking: the service runs this in its worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import random
import smtplib
import ssl
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collectors.http_client import PostOutcome, RetryPolicy, post_json
from config import ChannelConfig
from untrusted import one_line

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("collectors.delivery")

SIGNATURE_HEADER = "X-RBV-Signature"
TIMESTAMP_HEADER = "X-RBV-Timestamp"
NOTICE_HEADER = "X-RBV-Notice"  # the same for every attempt and resend of one notice: receivers dedupe on it
# An SMTP reply in the 4xx range is "try again later"; 5xx is final (a refused sender or recipient).
_TRANSIENT_SMTP = range(400, 500)


class Undeliverable(Exception):
    """The channel cannot be used as configured right now (a variable unset, a URL refused); never the secret."""


def _env(var: str | None, what: str) -> str:
    value = os.environ.get(var or "", "").strip()
    if not var or not value:
        raise Undeliverable(f"${var} ({what}) is not set; nothing was sent")
    return value


def _secret_url(channel: ChannelConfig) -> str:
    try:
        return channel.secret_url()
    except ValueError as exc:
        raise Undeliverable(f"{exc}; nothing was sent") from None


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>." + body): what a receiver recomputes to verify."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def send(
    channel: ChannelConfig,
    payload: Mapping[str, Any],
    notice_key: str,
    retry: RetryPolicy,
    *,
    transport: httpx.BaseTransport | None = None,
) -> PostOutcome:
    """Send one rendered notice over `channel`; the outcome says whether it arrived and, if not, why."""
    try:
        if channel.type == "slack":
            return post_json(_secret_url(channel), dict(payload), retry, transport=transport)
        if channel.type == "webhook":
            url = _secret_url(channel)
            secret = _env(channel.secret_env, "the signing secret")

            def sign(body: bytes) -> dict[str, str]:
                stamp = str(int(time.time()))
                return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(secret, stamp, body)}

            return post_json(
                url, dict(payload), retry, transport=transport, headers={NOTICE_HEADER: notice_key}, sign=sign
            )
        if channel.type == "pagerduty":
            event = {**payload, "routing_key": _env(channel.routing_key_env, "the PagerDuty routing key")}
            return post_json(str(channel.url), event, retry, transport=transport)
        if channel.type == "email":
            return send_mail(channel, payload, notice_key, retry)
    except Undeliverable as exc:
        log.info("notice to %s not attempted: %s", channel.name, exc)  # the caller records and reports it
        return PostOutcome(False, 0, str(exc))
    return PostOutcome(False, 0, f"unknown channel type {channel.type!r}")


def _message(channel: ChannelConfig, payload: Mapping[str, Any], notice_key: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = str(channel.sender)
    message["To"] = ", ".join(channel.to)
    message["Subject"] = one_line(payload.get("subject", "RBV key monitor"))
    message["Date"] = formatdate(usegmt=True)
    # Stable per notice: a resend after a crash carries the same id, which mail systems deduplicate on.
    message["Message-ID"] = f"<{hashlib.sha256(notice_key.encode()).hexdigest()[:32]}@rbv-key-monitor>"
    message[NOTICE_HEADER] = notice_key
    message.set_content(str(payload.get("text", "")))
    html_file = payload.get("html_file")
    if html_file:
        try:
            html = Path(str(html_file)).read_text(encoding="utf-8")
        except OSError as exc:
            raise Undeliverable(f"the report {Path(str(html_file)).name} cannot be read ({exc.strerror})") from None
        message.add_alternative(html, subtype="html")
    return message


def _smtp_once(channel: ChannelConfig, message: EmailMessage) -> None:
    context = ssl.create_default_context(cafile=channel.ca_file) if channel.starttls else None
    with smtplib.SMTP(str(channel.smtp_host), channel.smtp_port, timeout=channel.timeout_s) as smtp:
        smtp.ehlo()
        if context is not None:
            smtp.starttls(context=context)
            smtp.ehlo()
        if channel.username_env:
            smtp.login(_env(channel.username_env, "the SMTP user"), _env(channel.password_env, "the SMTP password"))
        smtp.send_message(message)


def send_mail(
    channel: ChannelConfig, payload: Mapping[str, Any], notice_key: str, retry: RetryPolicy, seed: int | None = None
) -> PostOutcome:
    """One e-mail over SMTP (STARTTLS and login when configured), retried like an HTTP notice: connection
    failures and 4xx replies again with jittered backoff, a 5xx reply (refused) not."""
    message = _message(channel, payload, notice_key)
    rng = random.Random(seed)
    attempt, error = 0, None
    while True:
        attempt += 1
        try:
            _smtp_once(channel, message)
            return PostOutcome(True, attempt, None)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            return PostOutcome(False, attempt, f"mail server refused the recipients ({', '.join(map(str, codes))})")
        except smtplib.SMTPNotSupportedError:
            return PostOutcome(False, attempt, "mail server does not offer STARTTLS (or login); nothing was sent")
        except smtplib.SMTPResponseException as exc:
            error = f"mail server answered {exc.smtp_code}"
            if exc.smtp_code not in _TRANSIENT_SMTP:
                return PostOutcome(False, attempt, error)
        except ssl.SSLError as exc:  # a certificate the context does not trust: retrying will not help
            return PostOutcome(False, attempt, f"mail server TLS failed ({exc.reason or type(exc).__name__})")
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out
            error = f"mail server unreachable: {type(exc).__name__}"
        log.warning("mail to %s attempt %d/%d failed: %s", channel.name, attempt, retry.max_attempts, error)
        if attempt >= retry.max_attempts:
            return PostOutcome(False, attempt, error)
        time.sleep(retry.wait_seconds(attempt, None, rng))
