"""AppTest for what people do with alerts, budgets and markers on the pages: snooze and silence alerts (who and
when kept), read each scope's budget and enter the prepaid balance, add a marker and see it on the charts."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from config import load_config
from service.alerts import check_alerts
from service.annotations import markers
from store.alert_store import alert_events, list_alerts, list_mutes
from tests.conftest import ROOT, SIM_NOW
from ui.settings import Settings


def _page(name: str, db, config) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=120)
    at.session_state["settings"] = Settings(db_path=db, config_path=config, demo=False)
    return at


def _chart_specs(at: AppTest) -> str:
    """Every chart's spec, and the bytes of the data sets it draws (the markers' text among them)."""
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    parts = [c.proto.spec for c in charts]
    parts += [d.data.data.decode("utf-8", "replace") for c in charts for d in c.proto.datasets]
    return " ".join(parts)


def test_snooze_silence_and_history_on_the_anomalies_page(lifecycle, tmp_path, monkeypatch):
    state = tmp_path / "state.duckdb"
    monkeypatch.setenv("RBV_STATE_DB", str(state))
    monkeypatch.setenv("RBV_NOW", lifecycle.at("spike").isoformat())
    config = tmp_path / "keys.toml"
    config.write_text(
        lifecycle.config_path.read_text(encoding="utf-8")
        + '\n[alerts]\n[alerts.channels.ops]\ntype = "slack"\nurl_env = "RBV_PAGE_UNSET"\n',
        encoding="utf-8",
    )
    check_alerts(lifecycle.dbs["spike"], load_config(config, secrets=False), lifecycle.at("spike"))
    at = _page("anomalies", lifecycle.dbs["spike"], config)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Channels: ops (slack)" in c.value for c in at.caption)
    alert_id = list_alerts(state)["alert_id"].iloc[0]
    at.selectbox(key="alert_pick").set_value(alert_id)
    at.text_input(key="alert_who").input("ops on call")
    at.selectbox(key="alert_snooze_for").set_value("4 hours")
    at.button(key="alert_snooze").click().run()
    assert not at.exception, [e.value for e in at.exception]
    row = list_alerts(state).iloc[0]
    assert pd.Timestamp(row["snoozed_until"]) == pd.Timestamp(lifecycle.at("spike")) + pd.Timedelta(hours=4)
    assert row["snoozed_by"] == "ops on call"
    history = alert_events(state, alert_id)
    assert ("ops on call", "snoozed") in set(zip(history["actor"], history["action"], strict=True))
    # The queued notice (its channel's variable is unset) is listed, with why it was not sent.
    notices = next(d.value for d in at.dataframe if "dedup_key" in d.value.columns and "attempts" in d.value.columns)
    assert len(notices) == 1 and "RBV_PAGE_UNSET" in notices["last_error"].iloc[0]

    at.radio(key="mute_window").set_value("weekly")
    at.selectbox(key="mute_weekday").set_value("sun")
    at.number_input(key="mute_hours").set_value(3.0)
    at.selectbox(key="mute_env").set_value("prod")
    at.text_input(key="mute_reason").input("maintenance")
    at.text_input(key="mute_who").input("ops")
    next(b for b in at.button if b.label == "Add silence").click().run()
    assert not at.exception, [e.value for e in at.exception]
    mutes = list_mutes(state, lifecycle.at("spike"))
    assert len(mutes) == 1
    mute = mutes.iloc[0]
    assert mute["cron"].endswith("* * sun") and mute["duration_minutes"] == 180 and mute["environment"] == "prod"
    assert mute["created_by"] == "ops" and mute["reason"] == "maintenance"


def test_budgets_and_the_prepaid_balance_on_the_credits_page(collected, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    config = tmp_path / "keys.toml"
    config.write_text(
        collected.config_path.read_text(encoding="utf-8")
        + "\n[budgets]\naccount = 10000000\nenvironments = { prod = 1000 }\n",
        encoding="utf-8",
    )
    at = _page("credits", collected.db_path, config)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "Budgets" for s in at.subheader)
    tables = [d.value for d in at.dataframe if "used %" in d.value.columns]  # the budgeted scopes, then every one
    budgets = tables[0].set_index(["scope", "name"])
    assert budgets["budget"].notna().all() and len(budgets) == 2
    assert budgets.loc[("environment", "prod"), "status"] == "over"  # 1,000 credits is spent in the first hours
    assert budgets.loc[("account", "account"), "status"] in ("ok", "warn")
    assert any("1 budget(s) spent this month" in e.value for e in at.error)
    assert all(m.label != "Prepaid runway" for m in at.metric)  # no balance yet
    at.number_input(key="balance_credits").set_value(2_000_000.0)
    at.date_input(key="balance_day").set_value(SIM_NOW.date().replace(day=1))
    at.text_input(key="balance_who").input("finance")
    next(b for b in at.button if b.label == "Save balance").click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.run()
    runway = next(m for m in at.metric if m.label == "Prepaid runway")
    assert runway.value.endswith(" days")
    assert len([d for d in at.dataframe if "used %" in d.value.columns]) == 1  # budgeted scopes only, by default
    # A balance already spent says when it ran out (the day the spend since it reached it), not "runs out".
    at.number_input(key="balance_credits").set_value(1.0)
    at.date_input(key="balance_day").set_value(SIM_NOW.date().replace(day=2))
    at.text_input(key="balance_who").input("finance")
    next(b for b in at.button if b.label == "Save balance").click().run()
    at.run()
    assert next(m for m in at.metric if m.label == "Prepaid runway").value == "0.0 days"
    assert any(f"ran out on {SIM_NOW:%Y-%m}-02" in c.value for c in at.caption)
    at.toggle(key="budgets_every").set_value(True).run()
    every = [d.value for d in at.dataframe if "used %" in d.value.columns][1]
    assert set(every["scope"]) == {"key", "environment", "owner", "account"}


def test_a_marker_added_on_key_detail_shows_on_its_charts(collected, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    at = _page("key_detail", collected.db_path, collected.config_path)
    at.query_params["key"] = "api-gateway-prod"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.text_input(key="annotation_text").input("v3.1 deployed")
    at.text_input(key="annotation_who").input("release bot")
    next(b for b in at.button if b.label == "Add marker").click().run()
    assert not at.exception, [e.value for e in at.exception]
    found = markers(collected.db_path, SIM_NOW.replace(tzinfo=None, day=1), SIM_NOW.replace(tzinfo=None), None).frame
    assert found.query("kind == 'deploy'")["text"].tolist() == ["v3.1 deployed"]
    at.run()
    assert "v3.1 deployed" in _chart_specs(at) and "strokeDash" in _chart_specs(at)
    traffic = _page("traffic", collected.db_path, collected.config_path)
    traffic.run()
    traffic.multiselect(key="traffic_keys").set_value(["api-gateway-prod"]).run()
    assert not traffic.exception, [e.value for e in traffic.exception]
    assert "v3.1 deployed" in _chart_specs(traffic)
    assert any("Dashed lines mark" in c.value for c in traffic.caption)
    anomaly = _page("anomalies", collected.db_path, collected.config_path)
    anomaly.run()
    anomaly.selectbox(key="anomaly_key").set_value("api-gateway-prod").run()
    assert not anomaly.exception, [e.value for e in anomaly.exception]
    assert "v3.1 deployed" in _chart_specs(anomaly)
