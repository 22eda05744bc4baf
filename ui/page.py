"""The opening every page shares: settings, sidebar filters, the clock, title, the store guard, the freshness banner."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import streamlit as st

from ui.auth import enter_through_dashboard
from ui.data import guard_store
from ui.filters import Filters, sidebar_filters, utc_now
from ui.freshness import freshness_banner
from ui.settings import Settings


class Page(NamedTuple):
    settings: Settings
    filters: Filters
    now: datetime


def open_page(title: str) -> Page:
    """Sidebar and title; stops the page with its message when there is no store to read yet.

    Every page calls this before anything else it does: a page file Streamlit started by itself (not
    through dashboard.py and its sign-in) is rerun through dashboard.py first.
    """
    enter_through_dashboard()
    settings = st.session_state["settings"]
    filters = sidebar_filters()
    now = utc_now()
    st.title(title)
    if not guard_store(settings.db_path):
        st.stop()
    freshness_banner(settings.db_path, now, filters.tz, settings.demo)
    return Page(settings, filters, now)
