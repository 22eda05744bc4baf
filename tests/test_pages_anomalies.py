"""AppTest for the Anomalies page on the collected stand-in world."""

from __future__ import annotations

import json

import pyarrow as pa
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT, SIM_NOW
from ui.settings import Settings

PAGE = str(ROOT / "pages" / "anomalies.py")
RANK = {"high": 3, "medium": 2, "low": 1}


def _charts(at: AppTest) -> list:
    return list(at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"))


def _data(chart) -> list[dict]:
    """Every row the chart was given (Streamlit sends its datasets as Arrow)."""
    rows = []
    for dataset in chart.proto.datasets:
        rows += pa.ipc.open_stream(dataset.data.data).read_all().to_pylist()
    return rows


def _opened(collected, monkeypatch, widen: bool = True) -> AppTest:
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    at.run()
    if widen:  # the whole history: every labelled incident
        at.selectbox(key="range_choice").set_value(at.selectbox(key="range_choice").options[-2]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_page_opens_on_the_fleet_worst_first(collected, monkeypatch):
    at = _opened(collected, monkeypatch, widen=False)
    heads = [h.value for h in at.subheader]
    assert heads[:4] == [
        "Open now and recent (last 7 days)",
        "Incidents by key and day",
        "One key, with its expected range",
        "Incidents",
    ], heads
    incidents = at.dataframe[0].value
    ranks = incidents["severity"].map(RANK).tolist()
    assert ranks == sorted(ranks, reverse=True), "worst first"
    # The chart opens on the worst incident's key, not on an arbitrary quiet one.
    assert at.selectbox(key="anomaly_key").value == incidents["key"].iloc[0].split("key=")[-1]
    # The strip: one row per key with an incident, coloured by the worst severity of each day.
    strip = next(c for c in _charts(at) if '"Worst that day"' in c.proto.spec)
    cells = _data(strip)
    assert {c["key_name"] for c in cells} == {k.split("key=")[-1] for k in incidents["key"]}
    assert {c["severity"] for c in cells} <= set(RANK)
    # The score is in words; its number is in the table's own column with its meaning in the heading's tooltip.
    assert incidents["what"].str.contains(" where about ").all()


def test_the_expected_range_is_clipped_to_the_metric_and_has_a_legend(collected, monkeypatch):
    at = _opened(collected, monkeypatch)
    for key, metric in (("api-gateway-prod", "calls daily"), ("billing-worker-prod", "failed_jobs")):
        at.selectbox(key="anomaly_key").set_value(key)
        at.selectbox(key="anomaly_metric").set_value(metric).run()
        assert not at.exception, [e.value for e in at.exception]
        chart = next(c for c in _charts(at) if '"lower"' in c.proto.spec)
        spec = json.loads(chart.proto.spec)
        domain = next(
            layer["encoding"]["y"]["scale"]["domain"] for layer in spec["layer"] if "lower" in json.dumps(layer)
        )
        rows = [r for r in _data(chart) if "lower" in r]  # the series (the markers are a dataset of their own)
        assert rows and domain[0] == 0 and min(r["lower"] for r in rows if r["lower"] is not None) >= 0
        assert max(r["upper"] for r in rows if r["upper"] is not None) <= domain[1]
        legend = next(layer["encoding"]["color"] for layer in spec["layer"] if "legend" in layer["encoding"]["color"])
        assert legend["scale"]["domain"] == ["Observed", "Expected", "Expected range", "Flagged"]


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
    spec = next(c.proto.spec for c in _charts(at) if '"lower"' in c.proto.spec)
    assert '"Day (UTC days)"' in spec


def test_an_incidents_small_chart_shows_what_was_collected_and_no_zero_before_it(collected):
    import duckdb
    import pandas as pd

    from service.anomalies import recent_values

    now = SIM_NOW.replace(tzinfo=None)
    since = now - pd.Timedelta(hours=48)
    calls = recent_values(collected.db_path, now, "api-gateway-prod", "calls", "hour", since)
    with duckdb.connect(str(collected.db_path), read_only=True) as con:
        (covered,) = con.execute(
            "SELECT min(occurred_at) FROM usage_events WHERE key_name = 'api-gateway-prod'"
        ).fetchone()
        counts = dict(
            con.execute(
                "SELECT date_trunc('hour', occurred_at), count(*) FROM usage_events "
                "WHERE key_name = 'api-gateway-prod' GROUP BY 1"
            ).fetchall()
        )
    assert len(calls) == 48 and calls["period"].iloc[-1] == pd.Timestamp(now) - pd.Timedelta(hours=1)
    before = calls["period"] < pd.Timestamp(covered).ceil("h")
    assert calls.loc[before, "value"].isna().all() and before.sum() > 40  # unknown, not zero
    known = calls[~before]
    assert len(known) >= 1 and all(row.value == counts.get(row.period, 0) for row in known.itertuples())
    failed = recent_values(collected.db_path, now, "api-gateway-prod", "failed_jobs", "hour", since)
    assert failed["value"].notna().all() and len(failed) == 48  # the jobs list is complete
    daily = recent_values(collected.db_path, now, "api-gateway-prod", "calls daily", "day", now - pd.Timedelta(days=7))
    assert len(daily) == 7 and daily["period"].max() < pd.Timestamp(now).floor("D")  # today is in progress
