"""Alert messages and which incidents deserve one (pure).

The notices a check sends are rendered here, once, when they are queued: a Slack-compatible message, a
generic JSON event (signed on the way out), a PagerDuty Events API v2 event (its routing key added on the
way out) and an e-mail. Secrets never pass through here: the delivery module adds them when it sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from untrusted import one_line

SOURCE = "rbv-key-monitor"
PAGERDUTY_SEVERITY = {"high": "critical", "medium": "error", "low": "warning"}
_UNITS = {"calls": "calls", "failed_jobs": "failed jobs", "credits": "credits"}
_ARROW = {"up": "spike", "down": "drop", "spike": "spike", "drop": "drop"}


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | dict | list) and pd.isna(value))


def _when(value: Any) -> str:
    if _missing(value):
        return "?"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M UTC")


def _iso(value: Any) -> str | None:
    return None if _missing(value) else pd.Timestamp(value).isoformat()


def _slack_text(value: Any) -> str:
    """A value as Slack message text: `<…>` (links, @channel mentions) and `&` escaped as Slack asks."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def describe_incident(row: Mapping[str, Any]) -> str:
    """'12 calls where about 0.2 were expected, over 3 hour(s)'."""
    unit = _UNITS.get(str(row.get("metric")), str(row.get("metric")))
    start, end = pd.Timestamp(row["start"]), pd.Timestamp(row["end"])
    span = (end - start) / pd.Timedelta(hours=1)
    length = f"{int(span / 24) + 1} day(s)" if row.get("grain") == "day" else f"{int(span) + 1} hour(s)"
    return (
        f"{float(row['observed']):,.0f} {unit} where about {float(row['expected']):,.1f} were expected, over {length}"
    )


def detail_of(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert's stored details (a JSON object), or an empty one."""
    raw = alert.get("detail")
    if isinstance(raw, dict):
        return raw
    if _missing(raw) or not raw:
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def headline(alert: Mapping[str, Any]) -> str:
    """One line saying what the alert is about (plain text; each channel escapes it its own way)."""
    kind = alert.get("kind") or ("smoke_check" if alert.get("metric") == "smoke_check" else "anomaly")
    detail = detail_of(alert)
    key = one_line(alert.get("key_name") or "?")
    if kind == "budget":
        budget = detail.get("budget_credits")
        spent = detail.get("spent_credits")
        amounts = f" ({spent:,.0f} of {budget:,.0f} credits)" if spent is not None and budget else ""
        return (
            f"Budget: {one_line(detail.get('scope', '?'))} {one_line(detail.get('name', '?'))} has used "
            f"{detail.get('threshold', '?'):g} % of its {detail.get('month', '?')} credit budget{amounts}"
        )
    if kind == "smoke_check":
        path = str(alert.get("direction", "?")).replace("_", " ")
        return f"Smoke check failed on key {key}: the {one_line(path)}"
    if kind == "collector_health":
        return f"Collector health: {one_line(detail.get('message') or alert.get('direction') or '?')}"
    metric = _UNITS.get(str(alert.get("metric")), one_line(alert.get("metric", "?")))
    arrow = _ARROW.get(str(alert.get("direction")), one_line(alert.get("direction", "?")))
    severity = f" ({alert['severity']})" if alert.get("severity") else ""
    return f"Anomaly on key {key}: {metric} {arrow}{severity}"


def body_lines(alert: Mapping[str, Any], action: str) -> list[str]:
    """What the notice says beyond its headline: the numbers, since when, and what changed."""
    kind = alert.get("kind") or "anomaly"
    detail = detail_of(alert)
    lines: list[str] = []
    if action == "resolve":
        resolution = {
            "recovered": "back inside its expected band",
            "period_ended": "a new budget period began",
            "cleared": "the condition cleared",
            "superseded": "a higher threshold was crossed",
        }.get(str(alert.get("resolution")), f"resolved by {one_line(alert.get('resolved_by') or 'someone')}")
        lines.append(f"Resolved at {_when(alert.get('resolved_at'))}: {resolution}.")
    elif action == "renotify":
        lines.append(f"Still open and unacknowledged since {_when(alert.get('opened_at'))}.")
    if kind == "anomaly":
        if detail.get("what"):
            lines.append(one_line(detail["what"]))
        lines.append(
            f"Since {_when(alert.get('incident_start'))} (last flagged {_when(alert.get('incident_end'))}, "
            f"{alert.get('grain') or 'hour'} grain), peak score {_score(alert.get('peak_score'))}."
        )
    elif kind == "budget":
        forecast = detail.get("forecast_credits")
        if forecast is not None:
            lines.append(
                f"Month-end forecast {forecast:,.0f} credits ({detail.get('forecast_low', 0):,.0f}–"
                f"{detail.get('forecast_high', 0):,.0f})."
            )
        if detail.get("projected_exhausted_on"):
            lines.append(f"Projected to run out on {detail['projected_exhausted_on']}.")
    elif kind == "smoke_check":
        lines.append(f"Since {_when(alert.get('incident_start'))}; details on the key's page.")
    elif kind == "collector_health" and detail.get("last_run"):
        lines.append(one_line(detail["last_run"]))
    owner = alert.get("owner")
    environment = alert.get("environment")
    if environment or owner:
        lines.append(
            ", ".join(
                part
                for part in (
                    f"environment {one_line(environment)}" if environment else "",
                    f"owner {one_line(owner)}" if owner else "",
                )
                if part
            )
        )
    return lines


def _score(value: Any) -> str:
    return "?" if _missing(value) else f"{float(value):.2f}"


_PREFIX = {"trigger": ":rotating_light:", "renotify": ":bell: Reminder:", "resolve": ":white_check_mark: Resolved:"}


def slack_payload(alert: Mapping[str, Any], action: str = "trigger", link: str | None = None) -> dict[str, str]:
    """`{"text": ...}` for a Slack-compatible webhook; text from data cannot mention, link or format."""
    lines = [f"{_PREFIX.get(action, '')} *{_slack_text(headline(alert))}*".strip()]
    lines += [_slack_text(line) for line in body_lines(alert, action)]
    if link:
        lines.append(f"<{link}|Open in the key monitor>")
    return {"text": "\n".join(lines)}


def webhook_event(alert: Mapping[str, Any], action: str, notice_key: str, link: str | None = None) -> dict[str, Any]:
    """The generic JSON webhook's body (signed with HMAC-SHA256 when it is sent)."""
    return {
        "version": 1,
        "notice": notice_key,
        "action": action,
        "kind": alert.get("kind") or "anomaly",
        "dedup_key": alert.get("dedup_key"),
        "alert_id": alert.get("alert_id"),
        "status": alert.get("status"),
        "severity": alert.get("severity"),
        "key_name": alert.get("key_name"),
        "environment": alert.get("environment"),
        "owner": alert.get("owner"),
        "summary": headline(alert),
        "text": "\n".join(body_lines(alert, action)),
        "started_at": _iso(alert.get("incident_start")),
        "ended_at": _iso(alert.get("incident_end")),
        "resolved_at": _iso(alert.get("resolved_at")),
        "details": detail_of(alert),
        "link": link,
    }


def pagerduty_event(alert: Mapping[str, Any], action: str, link: str | None = None) -> dict[str, Any]:
    """A PagerDuty Events API v2 event without its routing key: trigger (a renotify is one too) or resolve,
    under the alert's one dedup_key."""
    if action == "resolve":
        return {"event_action": "resolve", "dedup_key": alert["dedup_key"]}
    event: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": alert["dedup_key"],
        "payload": {
            "summary": headline(alert)[:1024],
            "source": SOURCE,
            "severity": PAGERDUTY_SEVERITY.get(str(alert.get("severity")), "warning"),
            "timestamp": _iso(alert.get("incident_start")),
            "component": alert.get("key_name"),
            "group": alert.get("environment"),
            "class": alert.get("kind") or "anomaly",
            "custom_details": {"text": "\n".join(body_lines(alert, action)), **detail_of(alert)},
        },
        "client": "RBV key monitor",
    }
    if link:
        event["client_url"] = link
    return event


def email_message(alert: Mapping[str, Any], action: str, link: str | None = None) -> dict[str, str]:
    """Subject and plain-text body of an alert e-mail."""
    label = {"trigger": "Alert", "renotify": "Reminder", "resolve": "Resolved"}.get(action, "Alert")
    lines = [headline(alert), "", *body_lines(alert, action)]
    if link:
        lines += ["", f"Open in the key monitor: {link}"]
    return {"subject": f"[RBV {label}] {headline(alert)}"[:200], "text": "\n".join(lines) + "\n"}


def render(channel_type: str, alert: Mapping[str, Any], action: str, notice_key: str, link: str | None) -> dict:
    """The body one channel type sends for this notice."""
    if channel_type == "slack":
        return slack_payload(alert, action, link)
    if channel_type == "webhook":
        return webhook_event(alert, action, notice_key, link)
    if channel_type == "pagerduty":
        return pagerduty_event(alert, action, link)
    if channel_type == "email":
        return email_message(alert, action, link)
    raise ValueError(f"unknown channel type {channel_type!r}")


def report_messages(review: Mapping[str, Any], link: str | None) -> dict[str, dict[str, str]]:
    """The Monday report as each channel type sends it: headline numbers and a link (chat, webhook), or
    the whole HTML report (e-mail; the HTML itself is read from the report file when it is sent)."""
    week = review["week"]
    activity = week.get("activity", {})
    numbers = []
    for name, label in (("calls", "calls"), ("credits", "credits"), ("failed", "failed jobs")):
        change = activity.get(name, {})
        current = float(change.get("current") or 0.0)
        pct = change.get("change_pct")
        delta = f" ({pct:+.0f} % on {week['previous_week']})" if pct is not None and not pd.isna(pct) else ""
        numbers.append(f"{current:,.0f} {label}{delta}")
    anomalies = review.get("anomalies", {}).get("incidents", [])
    reconciliation = review.get("reconciliation", {})
    facts = [
        f"{len(review.get('decisions_needed', []))} key(s) need a decision",
        f"{len(anomalies)} incident(s)",
        f"{reconciliation.get('total', 0)} credit discrepancies, {reconciliation.get('refunds_due', 0):,.2f} credits "
        "of refunds due",
    ]
    title = f"Weekly key review {week['week']} ({week['start'][:10]} to {week['end'][:10]})"
    text_lines = [title, ", ".join(numbers), "; ".join(facts)]
    if link:
        text_lines.append(f"Open the review: {link}")
    slack_lines = [f":calendar: *{_slack_text(title)}*", _slack_text(", ".join(numbers)), _slack_text("; ".join(facts))]
    if link:
        slack_lines.append(f"<{link}|Open the review>")
    return {
        "slack": {"text": "\n".join(slack_lines)},
        "webhook": {
            "version": 1,
            "kind": "report",
            "week": week["week"],
            "summary": title,
            "text": "\n".join(text_lines[1:]),
            "activity": activity,
            "link": link,
        },
        "email": {"subject": f"[RBV] {title}", "text": "\n".join(text_lines) + "\n"},
    }


def notifiable(incidents: pd.DataFrame) -> pd.DataFrame:
    """The alert-worthy incidents, one per event: an outage that drops calls and credits together is one notice."""
    if incidents.empty:
        return incidents
    worthy = incidents[incidents["alert_worthy"].astype(bool)] if "alert_worthy" in incidents else incidents
    if "event" not in worthy:
        return worthy.sort_values("start")
    return worthy.sort_values("peak_score", ascending=False).drop_duplicates("event").sort_values("start")
