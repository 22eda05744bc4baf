"""Every key's facts and findings, cached once for the Keys and Key detail pages (the rules judge the whole fleet)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from analytics.cli_keys import UsageError, facts_for, rules_from_file
from analytics.keys import KeyFacts, Rules, evaluate
from ui.settings import Settings


@st.cache_data(ttl=30, show_spinner=False)
def _keys_with_findings(db_path: str, now: datetime, config_path: str | None) -> tuple[dict, pd.DataFrame, str | None]:
    try:
        rules, problem = rules_from_file(config_path), None
    except UsageError as exc:
        rules, problem = Rules(), f"{exc}; using the default rules"
    facts = facts_for(db_path, now, rules, spark_days=30)
    return facts, evaluate(KeyFacts.from_frames(facts), now, rules), problem


def keys_with_findings(settings: Settings, now: datetime) -> tuple[dict, pd.DataFrame, str | None]:
    """Store facts, findings as of `now` and a [rules] warning (or None).

    Judged to the minute, so reruns and both pages share one cache entry.
    """
    config = str(settings.config_path) if settings.config_path else None
    return _keys_with_findings(str(settings.db_path), now.replace(second=0, microsecond=0), config)
