"""AppTest for the Anomalies page on the collected stand-in world."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, SIM_NOW
from ui.settings import Settings

PAGE = str(ROOT / "pages" / "anomalies.py")


def test_anomalies_page_shows_chart_and_incident_rows(collected, monkeypatch):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Anomalies"
    assert any("Hourly grain" in c.value for c in at.caption)
    # Widen the range to the whole history so the labelled incidents are listed.
    choices = at.selectbox(key="range_choice").options
    at.selectbox(key="range_choice").set_value(choices[-2]).run()
    assert not at.exception, [e.value for e in at.exception]
    frames = at.dataframe
    assert frames, "incident table missing"
    table = frames[-1].value
    assert len(table) > 0 and table["key"].str.startswith("key_detail?key=").all()
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "chart missing"
