"""Every key's inventory, activity and findings, cached once for the Keys and Key detail pages."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from analytics.keys import Rules
from service.keys import KeysView, keys_view
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
