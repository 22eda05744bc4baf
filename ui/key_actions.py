"""The key-action panel the Keys page and the weekly review share: check, confirm, act; rotations in progress;
the audit. Widgets only: the guardrails and the admin API are the service's."""

from __future__ import annotations

from datetime import datetime

import altair as alt
import pandas as pd
import streamlit as st

from analytics.key_actions import ACTIONS, suggested_rotation_name
from service.key_actions import (
    ActionRequest,
    ActionResult,
    Preview,
    access_for,
    audit_log,
    dashboard_config,
    perform_now,
    preview_now,
    refuse,
    rotations_in_progress,
)
from store import StoreError
from ui.auth import operator_identity
from ui.format import local_time, plain
from ui.settings import Settings

VERBS = {"disable": "Disable", "enable": "Enable", "rotate": "Rotate"}


@st.cache_data(ttl=30, show_spinner=False)
def _audit(db_path: str, key: str | None) -> pd.DataFrame:
    return audit_log(db_path, key)


@st.cache_data(ttl=30, show_spinner=False)
def _rotations(db_path: str, config_path: str, minute: datetime) -> pd.DataFrame | None:
    config, _ = dashboard_config(config_path)
    return rotations_in_progress(config, db_path, minute) if config else None


def _changed() -> None:
    """An action or refusal was recorded: the audit and the rotations are read afresh."""
    _audit.clear()
    _rotations.clear()


def _traffic_chart(preview: Preview) -> None:
    days = pd.DataFrame(preview.facts.daily_calls, columns=["day", "calls"])
    if days.empty:
        st.caption("No daily usage collected for this key in the last 7 days.")
        return
    chart = (
        alt.Chart(days.assign(day=pd.to_datetime(days["day"])))
        .mark_bar()
        .encode(x=alt.X("day:T", title="Day (UTC)"), y=alt.Y("calls:Q", title="Calls"), tooltip=["day:T", "calls:Q"])
        .properties(height=140)
    )
    st.altair_chart(chart, width="stretch")
    st.caption("Grain: daily calls from the usage summary, the last 7 days and today so far.")


def _show_result(result: ActionResult) -> None:
    text = plain(result.message, None)
    if result.outcome == "done":
        st.success(f"Done: {text}", icon=":material/task_alt:")
    elif result.outcome == "dry_run":
        st.info(text, icon=":material/visibility:")
    else:
        recorded = " (recorded in the audit)" if result.audit_id is not None else ""
        st.error(f"{result.outcome.capitalize()}{recorded}: {text}", icon=":material/block:")
    _changed()
    if result.audit_error:
        st.error(f"The audit row was not written: {plain(result.audit_error, None)}")
    if result.secret is not None:
        # Shown in this one run only: it is in no session state, cache, table, log or export.
        st.warning(
            "The new key's secret is shown once, now. Copy it into your secret store and the key config; "
            "it is not kept anywhere and will not be shown again.",
            icon=":material/key:",
        )
        st.code(result.secret, language=None)


def action_panel(
    settings: Settings, now: datetime, *, prefix: str, key: str | None = None, action: str | None = None
) -> None:
    """Disable, enable or rotate a key (only `key`, when given; `action` chosen first) behind the guardrails,
    with a confirmation."""
    config, problem = dashboard_config(settings.config_path)
    if config is None:
        st.info(f"Key actions are not available: {plain(problem, None)}.", icon=":material/lock:")
        return
    signed_in, identity = operator_identity()
    actor = identity
    if signed_in and identity is None:
        actor = st.text_input("Acting as", key=f"{prefix}_actor", help="Recorded in the audit with each action.")
    access = access_for(config, actor, signed_in=signed_in)
    denied = access.problem()
    if denied:
        st.info(f"Key actions are not available: {plain(denied, None)}.", icon=":material/lock:")
        return
    if key:
        names = [key]
    else:  # the configured keys, then the old keys of rotations still tracked
        tracked = _rotations(str(settings.db_path), str(settings.config_path), now.replace(second=0, microsecond=0))
        old = [] if tracked is None else tracked["old_key_name"].tolist()
        names = [k.name for k in config.keys] + [n for n in old if n not in {k.name for k in config.keys}]
    with st.form(f"{prefix}_form"):
        chosen = st.selectbox("Key", names, key=f"{prefix}_key")
        first = ACTIONS.index(action) if action in ACTIONS else 0
        action = st.radio(
            "Action", ACTIONS, index=first, key=f"{prefix}_action", horizontal=True, format_func=VERBS.get
        )
        reason = st.text_input("Reason", key=f"{prefix}_reason", help="Required to disable or enable; in the audit.")
        environment = next((k.environment for k in config.keys if k.name == chosen), "prod")
        new_name = st.text_input(
            "Replacement's name (rotate)",
            key=f"{prefix}_new_name",
            placeholder=suggested_rotation_name(chosen or "", environment, [k.name for k in config.keys]),
            help="<service>-<env>, the old key's environment; the placeholder is a suggestion.",
        )
        force = st.checkbox("Force: disable even with traffic in the last 24 h", key=f"{prefix}_force")
        dry_run = st.checkbox("Dry run: check and record, change nothing", key=f"{prefix}_dry_run")
        checked = st.form_submit_button("Check")
    if checked:
        request = ActionRequest(
            action=action, key_name=chosen, actor=str(actor), face="dashboard", reason=reason, force=force,
            dry_run=dry_run, new_name=(new_name.strip() or None) if action == "rotate" else None,
        )  # fmt: skip
        try:
            checked_preview = preview_now(config, settings.db_path, request, access, now)
            if not checked_preview.allowed:  # asking is the attempt: a refusal is recorded like the command line's
                st.session_state.pop(f"{prefix}_preview", None)
                _show_preview(checked_preview, now)
                why = checked_preview.problem or checked_preview.guard.why
                _show_result(refuse(settings.db_path, checked_preview, access, why, now=now))
                return
        except StoreError as exc:
            st.error(f"Cannot check the action: {plain(exc, None)}")
            return
        st.session_state[f"{prefix}_preview"] = checked_preview
    preview: Preview | None = st.session_state.get(f"{prefix}_preview")
    if preview is None:
        return
    _show_preview(preview, now)
    name = preview.target.key_name if preview.target else preview.request.key_name
    verb = "Record a dry run of" if preview.request.dry_run else VERBS[preview.request.action]
    typed = st.text_input(f"Type {name} to confirm", key=f"{prefix}_confirm_name")
    if st.button(f"{verb} {name}", key=f"{prefix}_go", type="primary", disabled=typed.strip() != name):
        st.session_state.pop(f"{prefix}_preview", None)
        try:
            _show_result(perform_now(config, settings.db_path, preview.request, access, now))
        except StoreError as exc:  # before the API was called: nothing was done
            st.error(f"Nothing was done: {plain(exc, None)}")


def _show_preview(preview: Preview, now: datetime) -> None:
    """The confirmation: the key, its last 7 days of traffic, and what the guardrail says."""
    st.markdown(f"**{plain(preview.confirmation(now), None)}**")
    _traffic_chart(preview)
    if preview.problem is None and preview.guard.allowed:
        if preview.guard.forced:
            st.warning(plain(preview.guard.why, None), icon=":material/warning:")
        else:
            st.success(f"Guardrail: {plain(preview.guard.why, None)}", icon=":material/verified:")


def _prefill(prefix: str, key: str, action: str, reason: str) -> None:
    st.session_state[f"{prefix}_key"] = key
    st.session_state[f"{prefix}_action"] = action
    st.session_state[f"{prefix}_reason"] = reason
    st.session_state.pop(f"{prefix}_preview", None)


def rotations_section(settings: Settings, now: datetime, tz, *, prefix: str) -> None:  # noqa: ANN001 (ZoneInfo)
    """Rotations whose old key is still enabled, with its traffic; offer to disable it once it is quiet."""
    if settings.config_path is None:
        return
    open_ones = _rotations(str(settings.db_path), str(settings.config_path), now.replace(second=0, microsecond=0))
    if open_ones is None:
        return
    st.markdown("**Rotations in progress**")
    if open_ones.empty:
        st.caption("None: every rotated key's old key is disabled.")
        return
    st.dataframe(
        pd.DataFrame(
            {
                "old key": open_ones["old_key_name"],
                "fingerprint": open_ones["old_fingerprint"],
                "replacement": open_ones["new_key_name"],
                "replacement configured": open_ones["new_configured"],
                "rotated": open_ones["rotated_at"].map(lambda t: local_time(t, tz)),
                "old key's last call": open_ones["old_last_used_at"].map(lambda t: local_time(t, tz)),
                "old key calls, 24 h": open_ones["old_calls_24h"],
                "status": open_ones["status"],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    for row in open_ones[open_ones["ready"]].itertuples(index=False):
        st.button(
            f"Disable {row.old_key_name} (replaced by {row.new_key_name})",
            key=f"{prefix}_retire_{row.old_fingerprint}",
            on_click=_prefill,
            args=(prefix, row.old_key_name, "disable", f"rotated to {row.new_key_name}"),
        )


def audit_section(settings: Settings, tz, key: str | None = None) -> None:  # noqa: ANN001 (ZoneInfo)
    """The `key_actions` audit, newest first."""
    log = _audit(str(settings.db_path), key)
    st.markdown("**Audit of key actions**")
    if log.empty:
        st.caption("No key action or refusal recorded yet.")
        return
    st.dataframe(log.assign(at=log["at"].map(lambda t: local_time(t, tz))), hide_index=True, width="stretch")
    st.caption(f"{len(log)} newest entries; every action and refusal is appended, none is ever changed.")
