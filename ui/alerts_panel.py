"""The Anomalies page's Alerts section: every alert with its lifecycle, who did what, silences, and the notices.

The dashboard opens, acknowledges, snoozes and resolves alerts and enters silences, all in its own state file;
it never sends: the collector service's check (or `python -m analytics alerts check`) routes and delivers.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from analytics.alert_rules import KINDS, SEVERITIES
from analytics.alerts import notifiable
from config import Config
from service.alerts import open_alerts
from store import StoreError
from store.alert_store import (
    AlertError,
    acknowledge,
    add_mute,
    alert_events,
    list_alerts,
    list_mutes,
    notices,
    remove_mute,
    resolve,
    snooze,
)
from store.state_file import state_path
from ui.format import local_time, localize_column, plain
from ui.tables import table

SNOOZE_CHOICES = {"1 hour": 1, "4 hours": 4, "until tomorrow 09:00 UTC": None, "24 hours": 24, "3 days": 72}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def routing_caption(config: Config) -> None:
    channels = config.alerts.all_channels()
    policy = config.alerts.policy
    if not channels:
        st.caption(
            "No alert channel configured ([alerts.channels] or [alerts] webhook_url_env): alerts open here only."
        )
        return
    routes = "; ".join(
        f"{plain(r.match.describe(), None)} → {', '.join(r.channels) or 'nowhere'}" for r in policy.routes
    )
    renotify = f"every {policy.renotify.total_seconds() / 3600:g} h" if policy.renotify else "never"
    st.caption(
        f"Channels: {', '.join(f'{c.name} ({c.type})' for c in channels)}. "
        + (f"Routes, first match wins: {routes}; otherwise " if routes else "Every alert goes to ")
        + f"{', '.join(policy.default_channels) or 'nowhere'}. Unacknowledged alerts are re-sent {renotify}; an "
        f"anomaly back inside its band for {policy.resolve_after.total_seconds() / 3600:g} h resolves with a "
        "recovery notice. The collector service sends them at its next check (every "
        f"{config.alerts.check_minutes:g} min); this page never sends."
    )


def open_button(state_file: Path, shown: pd.DataFrame, now: datetime, config: Config) -> None:
    if st.button("Open alerts for these incidents", disabled=shown.empty, key="alerts_sync"):
        try:
            opened = open_alerts(state_file, notifiable(shown), now, config.alerts.cooldown)
            st.success(f"Opened {opened} new alert(s).")
        except StoreError as exc:
            st.error(f"Alerts: {plain(exc, None)}")


def kind_words(kind: object) -> str:
    """'smoke_check' → 'smoke check': alert kinds in words (the code stays in the config and the payloads)."""
    return str(kind).replace("_", " ")


def in_zone(frame: pd.DataFrame, tz: ZoneInfo) -> pd.DataFrame:
    """Every instant column of `frame` as text in the operator's zone, in the one time format."""
    times = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    return frame.assign(**{c: localize_column(frame[c], tz) for c in times})


def alerts_table(alerts: pd.DataFrame, tz: ZoneInfo) -> None:
    columns = [
        "alert_id", "status", "kind", "severity", "key_name", "subject", "metric", "direction", "incident_start",
        "incident_end", "acknowledged_by", "snoozed_until", "resolved_by", "resolution", "notify_count",
        "last_notified_at", "delivered_at", "delivery_attempts", "last_error",
    ]  # fmt: skip
    shown = in_zone(alerts[columns], tz).assign(kind=alerts["kind"].map(kind_words))
    table(
        shown,
        {
            "alert_id": st.column_config.TextColumn("Alert"),
            "incident_start": st.column_config.TextColumn("Incident from"),
            "incident_end": st.column_config.TextColumn("Incident to"),
            "subject": st.column_config.TextColumn("Subject"),
            "notify_count": st.column_config.NumberColumn("Notices", format="%,d"),
            "last_notified_at": st.column_config.TextColumn("Last notified"),
            "delivered_at": st.column_config.TextColumn("Delivered"),
            "delivery_attempts": st.column_config.NumberColumn("Delivery attempts", format="%,d"),
            "last_error": st.column_config.TextColumn("Last error", width="large"),
        },
        key="alerts_table",
        rows=10,
    )


def _until(choice: str, now: datetime) -> datetime:
    hours = SNOOZE_CHOICES[choice]
    if hours is None:
        return datetime.combine(now.date() + timedelta(days=1), time(9, 0))
    return now + timedelta(hours=hours)


def alert_actions(state_file: Path, alerts: pd.DataFrame, now: datetime, tz: ZoneInfo) -> None:
    """Acknowledge, snooze or resolve one active alert, saying who; then its history."""
    active = alerts[alerts["status"] != "resolved"]
    if active.empty:
        st.success("All alerts are resolved.")
        return
    labels = {
        row.alert_id: " · ".join(
            part
            for part in (
                row.alert_id,
                row.status,
                kind_words(row.kind),
                str(row.subject or row.key_name or ""),
                " ".join(str(word) for word in (row.metric, row.direction) if word and not pd.isna(word)),
            )
            if part
        )
        + f" from {local_time(row.incident_start, tz)}"
        for row in active.itertuples(index=False)
    }
    status_of = dict(zip(active["alert_id"], active["status"], strict=True))
    pick_col, who_col = st.columns(2)
    chosen = pick_col.selectbox("Alert", list(labels), format_func=labels.get, key="alert_pick")
    who = who_col.text_input("Who", key="alert_who")
    ack_col, snooze_col, snooze_for, resolve_col = st.columns([1, 1, 1, 1])
    snooze_choice = snooze_for.selectbox("Snooze for", list(SNOOZE_CHOICES), key="alert_snooze_for")
    try:
        if ack_col.button("Acknowledge", key="alert_ack", disabled=status_of[chosen] != "open"):
            acknowledge(state_file, chosen, who, now)
            st.rerun()
        if snooze_col.button("Snooze", key="alert_snooze"):
            snooze(state_file, chosen, who, _until(snooze_choice, now), now)
            st.rerun()
        if resolve_col.button("Resolve", key="alert_resolve"):
            resolve(state_file, chosen, now, who)
            st.rerun()
    except AlertError as exc:
        st.warning(plain(exc, None))
    except StoreError as exc:
        st.error(f"Alerts: {plain(exc, None)}")
    with st.expander("Who did what to this alert"):
        table(in_zone(alert_events(state_file, chosen), tz), key="alert_history", labels={"actor": "Who"})


def mutes_section(state_file: Path, config: Config, now: datetime, tz: ZoneInfo) -> None:
    """Silences: the config's (read-only here) and the page's, one-off or weekly; a new one, or remove one."""
    with st.expander("Silences (mute windows)"):
        configured = config.alerts.policy.mutes
        if configured:
            st.caption(
                "From the config: "
                + "; ".join(
                    (
                        f"`{m.cron}` (UTC) for {m.duration}"
                        if m.cron
                        else f"{local_time(m.start, tz)} – {local_time(m.end, tz)}"
                    )
                    + f" ({plain(m.match.describe(), None)}{', ' + plain(m.reason, None) if m.reason else ''})"
                    for m in configured
                )
            )
        try:
            entered = list_mutes(state_file, now)
        except StoreError as exc:
            st.error(f"Silences: {plain(exc, None)}")
            return
        if not entered.empty:
            table(in_zone(entered, tz), {"mute_id": st.column_config.NumberColumn("Silence", format="%d")},
                  key="mutes_table")  # fmt: skip
        with st.form("mute_form", clear_on_submit=False):
            kind = st.radio("Window", ["one-off", "weekly"], horizontal=True, key="mute_window")
            left, right = st.columns(2)
            start_day = left.date_input("Starts (UTC day)", value=now.date(), key="mute_day")
            start_time = right.time_input("at (UTC)", value=time(now.hour, 0), key="mute_time")
            weekday = left.selectbox("Weekly on", WEEKDAYS, key="mute_weekday")
            hours = right.number_input("Lasting (hours)", min_value=0.25, max_value=168.0, value=2.0, key="mute_hours")
            env_col, owner_col, kind_col, sev_col = st.columns(4)
            environment = env_col.selectbox("Environment", ["any", "prod", "staging", "dev"], key="mute_env")
            owner = owner_col.text_input("Owner (empty: any)", key="mute_owner")
            alert_kind = kind_col.selectbox("Kind", ["any", *KINDS], format_func=kind_words, key="mute_kind")
            severity = sev_col.selectbox("Severity", ["any", *SEVERITIES], key="mute_severity")
            reason = st.text_input("Reason", max_chars=200, key="mute_reason")
            who = st.text_input("Who", max_chars=200, key="mute_who")
            if st.form_submit_button("Add silence"):
                match = {
                    "environment": None if environment == "any" else environment,
                    "owner": owner.strip() or None,
                    "kind": None if alert_kind == "any" else alert_kind,
                    "severity": None if severity == "any" else severity,
                }
                begins = datetime.combine(start_day, start_time)
                try:
                    if kind == "one-off":
                        add_mute(state_file, who, now, reason=reason, starts_at=begins,
                                 ends_at=begins + timedelta(hours=hours), match=match)  # fmt: skip
                    else:
                        cron = f"{start_time.minute} {start_time.hour} * * {weekday}"
                        add_mute(state_file, who, now, reason=reason, cron=cron, duration_minutes=hours * 60,
                                 match=match)  # fmt: skip
                    st.rerun()
                except AlertError as exc:
                    st.warning(plain(exc, None))
                except StoreError as exc:
                    st.error(f"Silences: {plain(exc, None)}")
        if not entered.empty:
            left, right = st.columns(2)
            mute_id = left.selectbox("Remove silence", entered["mute_id"].tolist(), key="mute_remove_pick")
            if right.button("Remove", key="mute_remove"):
                try:
                    remove_mute(state_file, int(mute_id), st.session_state.get("mute_who") or "", now)
                    st.rerun()
                except AlertError as exc:
                    st.warning(plain(exc, None))


def notices_section(state_file: Path, tz: ZoneInfo) -> None:
    with st.expander("Notices sent and queued"):
        try:
            queued = notices(state_file, limit=200)
        except StoreError as exc:
            st.error(f"Notices: {plain(exc, None)}")
            return
        columns = ["notice_id", "created_at", "channel", "action", "kind", "key_name", "dedup_key", "status",
                   "attempts", "sent_at", "last_error"]  # fmt: skip
        shown = in_zone(queued[columns], tz).assign(kind=queued["kind"].map(kind_words))
        table(
            shown,
            {
                "notice_id": st.column_config.NumberColumn("Notice", format="%d"),
                "dedup_key": st.column_config.TextColumn("Dedup key", help="One incident's notices share it"),
                "last_error": st.column_config.TextColumn("Last error", width="large"),
            },
            key="notices_table",
            rows=10,
        )


def alerts_section(
    db_path: Path, config: Config, problem: str | None, shown: pd.DataFrame, now: datetime, tz: ZoneInfo
) -> None:
    """The whole Alerts section (a subheader, then each part)."""
    st.subheader("Alerts")
    state_file = state_path(db_path)
    if problem:
        st.error(f"Alerts config: {plain(problem, None)}")
    for issue in config.alerts.url_problems():  # the page never sends, but a URL it can see is wrong is worth saying
        st.error(f"Alerts webhook: {plain(issue, None)}")
    routing_caption(config)
    open_button(state_file, shown, now, config)
    try:
        alerts = list_alerts(state_file)
    except StoreError as exc:
        st.error(f"Alerts: {plain(exc, None)}")
        return
    if alerts.empty:
        st.info("No alerts yet.")
    else:
        alerts_table(alerts, tz)
        alert_actions(state_file, alerts, now, tz)
    mutes_section(state_file, config, now, tz)
    notices_section(state_file, tz)
