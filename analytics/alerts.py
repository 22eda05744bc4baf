"""Alert delivery: a Slack-compatible webhook payload, and POSTing it with retries (stdlib only).

The webhook URL is a secret: it is read from the environment variable named by
`[alerts] webhook_url_env` and never appears in returned errors or log lines.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pandas as pd

from untrusted import UnsafeURL, check_url

log = logging.getLogger(__name__)

DEFAULT_COOLDOWN = timedelta(hours=6)


def _section(config_sections: Mapping[str, Any] | None) -> Mapping[str, Any]:
    section = (config_sections or {}).get("alerts") or {}
    if not isinstance(section, Mapping):
        raise ValueError("[alerts] must be a table")
    if "webhook_url" in section:  # the value is the secret: never echo it
        raise ValueError(
            "[alerts] webhook_url must not be written in the config (it is a secret); "
            "put it in an environment variable and name that variable with webhook_url_env"
        )
    return section


def webhook_url_from_config(config_sections: Mapping[str, Any] | None) -> str | None:
    """The webhook URL from the env variable named by `[alerts] webhook_url_env` (None when unset).

    Raises ValueError (never echoing the URL) when it is not an http(s) URL safe to post to.
    """
    section = _section(config_sections)
    name = section.get("webhook_url_env")
    if not name:
        return None
    value = os.environ.get(str(name), "").strip()
    if not value:
        return None
    try:
        return check_url(value, allow_link_local=section.get("allow_link_local") is True)
    except UnsafeURL as exc:
        raise ValueError(f"the webhook URL in ${name} {exc}; the URL is a secret, so it is not shown") from None


def cooldown_from_config(config_sections: Mapping[str, Any] | None) -> timedelta:
    """`[alerts] cooldown_hours` (default 6 h) as a timedelta."""
    hours = _section(config_sections).get("cooldown_hours")
    if hours is None:
        return DEFAULT_COOLDOWN
    if isinstance(hours, bool) or not isinstance(hours, int | float) or hours < 0:
        raise ValueError("[alerts] cooldown_hours must be a non-negative number")
    return timedelta(hours=float(hours))


def _when(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "?"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")


def _slack_text(value: Any) -> str:
    """A value as Slack message text: `<…>` (links, @channel mentions) and `&` escaped as Slack asks."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Mapping[str, Any]) -> dict[str, str]:
    """`{"text": ...}` naming the key, metric, direction, incident start and peak score."""
    if alert.get("metric") == "smoke_check":  # a failing smoke check (service.smoke), not a detector incident
        path = _slack_text(str(alert.get("direction", "?")).replace("_", " "))
        return {
            "text": f":x: Smoke check failed on key *{_slack_text(alert.get('key_name', '?'))}*: the {path} "
            f"since {_when(alert.get('incident_start', alert.get('start')))} (details on the key's page)"
        }
    peak = alert.get("peak_score")
    peak_text = "?" if peak is None or pd.isna(peak) else f"{float(peak):.2f}"
    direction = _slack_text(alert.get("direction", "?"))
    arrow = {"up": "spike", "down": "drop"}.get(direction, direction)
    text = (
        f":rotating_light: Anomaly on key *{_slack_text(alert.get('key_name', '?'))}*: "
        f"{_slack_text(alert.get('metric', '?'))} "
        f"{arrow} ({direction}) since {_when(alert.get('incident_start', alert.get('start')))}, "
        f"peak score {peak_text}"
    )
    return {"text": text}


def _scrub(text: str, url: str) -> str:
    return text.replace(url, "<webhook>") if url else text


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answers the POST itself: a redirect (to another scheme or host) is not followed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def deliver(
    url: str, payload: Mapping[str, Any], attempts: int = 3, backoff_s: float = 0.5, timeout_s: float = 5
) -> tuple[bool, int, str | None]:
    """POST `payload` as JSON; retry 5xx, timeouts and connection errors (not 4xx).

    Returns (ok, attempts made, error or None).  The error never contains the URL.  A URL that cannot be
    posted to (not http(s), credentials, spaces) is not attempted: (False, 0, why), for the caller to
    record and retry once the URL is fixed.  Redirects are not followed (a 3xx is a failed delivery).
    """
    try:
        check_url(url, allow_link_local=True)  # the link-local rule was applied where the URL was configured
    except UnsafeURL as exc:
        reason = f"webhook URL {exc}; nothing was sent"
        log.warning("alert delivery not attempted: %s", reason)
        return False, 0, reason
    body = json.dumps(payload).encode("utf-8")
    error: str | None = None
    made = 0
    for made in range(1, max(1, attempts) + 1):
        try:
            request = urllib.request.Request(
                url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            with _OPENER.open(request, timeout=timeout_s) as response:
                response.read()
            return True, made, None
        except urllib.error.HTTPError as exc:
            exc.close()
            error = f"webhook answered HTTP {exc.code}"
            if exc.code < 500:
                log.warning("alert delivery failed: %s (not retried)", error)
                return False, made, error
        except urllib.error.URLError as exc:
            error = _scrub(f"webhook unreachable: {type(exc.reason).__name__}: {exc.reason}", url)
        except (TimeoutError, OSError) as exc:
            error = _scrub(f"webhook unreachable: {type(exc).__name__}: {exc}", url)
        except ValueError:
            # A URL urllib cannot use: its message would echo it, so say only what is wrong.
            return False, made, "webhook URL is not a valid http(s) URL; nothing was sent"
        log.warning("alert delivery attempt %d/%d failed: %s", made, attempts, error)
        if made < attempts:
            time.sleep(backoff_s * (2 ** (made - 1)))
    return False, made, error
