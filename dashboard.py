"""Dashboard entry point: page config, shared sidebar, and navigation over the pages (no data access)."""

import streamlit as st

from formatting import register_theme
from ui.auth import require_access
from ui.format import plain
from ui.settings import load_settings

# An emoji favicon is drawn in the browser; a `:material/…:` one would be fetched from fonts.gstatic.com on
# every page view (a call home the tests forbid).
st.set_page_config(page_title="RBV key monitor", page_icon="🔑", layout="wide")
register_theme()  # the product's one Altair theme (registered once per process)

if not require_access():
    st.stop()

settings = load_settings()
st.session_state["settings"] = settings

pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
    st.Page("pages/keys.py", title="Keys", icon=":material/key:"),
    st.Page("pages/key_detail.py", title="Key detail", icon=":material/manage_search:"),
    st.Page("pages/traffic.py", title="Traffic explorer", icon=":material/query_stats:"),
    st.Page("pages/anomalies.py", title="Anomalies", icon=":material/troubleshoot:"),
    st.Page("pages/credits.py", title="Credits", icon=":material/payments:"),
    st.Page("pages/review.py", title="Weekly review", icon=":material/event_note:"),
    st.Page("pages/collection.py", title="Collection health", icon=":material/sync:"),
]
navigation = st.navigation(pages)
with st.sidebar:
    # A folder is a Parquet export (python -m store export): read directly, results computed on the fly.
    source = "Parquet export" if settings.db_path.is_dir() else "Database"
    st.caption(f"{source}: {plain(settings.db_path, None)}" + (" · demo" if settings.demo else ""))
navigation.run()
