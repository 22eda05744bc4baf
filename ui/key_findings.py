"""Every key's inventory, activity and findings, cached once for the Keys and Key detail pages."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from analytics.keys import FINDINGS, Rules
from service.keys import KeysView, KeyView, key_view, keys_view
from ui.data import page_config
from ui.settings import Settings


@st.cache_data(ttl=30, show_spinner=False)
def _keys_view(db_path: str, now: datetime, rules: Rules) -> KeysView:
    return keys_view(db_path, now, rules)


def keys_with_findings(settings: Settings, now: datetime) -> tuple[KeysView, str | None]:
    """Inventory, 7/30-day activity and findings (stored by the last refresh, or evaluated as of `now`),
    and a config warning (or None). Judged to the minute, so reruns and both pages share one cache entry."""
    config, problem = page_config(settings.config_path)
    return _keys_view(str(settings.db_path), now.replace(second=0, microsecond=0), config.rules), problem


@st.cache_data(ttl=30, show_spinner=False)
def _key_view(db_path: str, now: datetime, rules: Rules, key_name: str) -> KeyView:
    return key_view(db_path, now, rules, key_name)


def key_with_findings(settings: Settings, now: datetime, key_name: str) -> tuple[KeyView, str | None]:
    """One key's inventory row and the findings (stored, or evaluated as of `now`), and a config warning."""
    config, problem = page_config(settings.config_path)
    return _key_view(str(settings.db_path), now.replace(second=0, microsecond=0), config.rules, key_name), problem


# One colour per kind of finding: red needs action now, orange soon, violet is odd traffic, grey is naming.
BADGE_COLOR = {
    "disabled_upstream": "red", "unmanaged_key": "red", "sandbox_in_prod": "red", "rotation_overdue": "red",
    "never_used": "orange", "inactive": "orange", "rotation_due": "orange", "owner_offboarded": "orange",
    "missing_owner": "orange", "env_mismatch": "violet", "staging_shape_drift": "violet",
    "generic_name": "gray", "bad_name": "gray",
}  # fmt: skip


def words(finding: str) -> str:
    """A finding in words ('rotation overdue'); its code is for tooltips and exports."""
    return FINDINGS.get(finding, finding.replace("_", " "))


def badge(finding: str, suffix: str = "") -> None:
    """The finding in words as a badge, its code in the tooltip."""
    st.badge(words(finding) + suffix, color=BADGE_COLOR.get(finding, "blue"), help=f"Finding code: `{finding}`")


def codes_help(findings: list[str]) -> str:
    """A column's tooltip mapping the words shown to the codes used in exports and the CLI."""
    return "Findings in words; their codes: " + "; ".join(f"{words(f)} = {f}" for f in findings)
