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
    assert any("per day before it" in c.value for c in at.caption)
    # Widen the range to the whole history so the labelled incidents are listed.
    choices = at.selectbox(key="range_choice").options
    at.selectbox(key="range_choice").set_value(choices[-2]).run()
    assert not at.exception, [e.value for e in at.exception]
    frames = at.dataframe
    assert frames, "incident table missing"
    incidents = frames[0].value
    assert len(incidents) > 0 and incidents["key"].str.startswith("key_detail?key=").all()
    # The labelled calls incidents predate event polling: listed at daily grain, in words, alert-worthy only.
    assert set(incidents["grain"]) == {"hour", "day"}
    assert incidents["what"].str.contains(" where about ").all()
    assert set(incidents["severity"]) <= {"low", "medium", "high"}
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "chart missing"
    every = at.toggle(key="anomaly_worthy_only").set_value(False).run()
    assert not every.exception
    assert len(every.dataframe[0].value) > len(incidents)


def test_anomalies_page_charts_calls_day_by_day_before_event_polling(collected, monkeypatch):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    at.run()
    at.selectbox(key="range_choice").set_value(at.selectbox(key="range_choice").options[-2])
    at.selectbox(key="anomaly_key").set_value("api-gateway-prod")
    at.selectbox(key="anomaly_metric").set_value("calls daily").run()
    assert not at.exception, [e.value for e in at.exception]
    chart = (at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"))[0]
    spec = chart.proto.spec if hasattr(chart, "proto") else ""
    assert '"day (UTC)"' in spec and '"lower"' in spec
