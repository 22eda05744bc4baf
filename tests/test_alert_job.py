"""Alerts reach people without anyone watching: the service's check opens alerts once and posts each once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config import ConfigError, config_from_dict, load_config
from service.alerts import check_alerts
from service.scheduler import build_scheduler
from store.alert_store import list_alerts
from store.state_file import state_path
from tests.notify_receivers import http_receiver

HOOK_ENV = "RBV_TEST_SERVICE_HOOK"


def test_incidents_already_over_when_first_seen_are_recorded_not_announced(collected, tmp_path, monkeypatch):
    """A check that first sees incidents long over (the service was down, or a long lookback) opens their alerts,
    resolves them as recovered and wakes nobody: they are on the Anomalies page, not in anyone's pager."""
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))  # never beside the shared fixture
    config = config_from_dict({"alerts": {"webhook_url_env": HOOK_ENV, "cooldown_hours": 0}}, secrets=False)
    with http_receiver("slack") as (url, got):
        monkeypatch.setenv(HOOK_ENV, url)
        first = check_alerts(collected.db_path, config, collected.now, lookback=timedelta(days=120))
        again = check_alerts(collected.db_path, config, collected.now, lookback=timedelta(days=120))
    assert first.opened > 0 and first.resolved == first.opened and first.delivered == first.queued == 0
    assert (again.opened, again.resolved, again.delivered) == (0, 0, 0)  # idempotent: nothing opens twice
    assert got.requests == [] and got.refused == []
    alerts = list_alerts(state_path(collected.db_path))
    assert len(alerts) == first.opened and set(alerts["resolution"]) == {"recovered"}
    assert alerts["notify_count"].eq(0).all() and alerts["resolve_notified_at"].isna().all()


def test_serve_checks_alerts_on_the_configured_interval(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(
        '[api]\nbase_url = "http://127.0.0.1:9"\n\n[[keys]]\nname = "api-gateway-prod"\nenvironment = "prod"\n'
        'secret = "rbv_live_aaaaaaaaaaaaaaaa"\n\n[alerts]\ncheck_minutes = 5\n',
        encoding="utf-8",
    )
    job = next(j for j in build_scheduler(load_config(path), tmp_path / "m.duckdb").get_jobs() if j.id == "alerts")
    assert job.trigger.interval == timedelta(minutes=5)


@pytest.mark.parametrize("value", ["0", "true", '"often"', "100000"])
def test_a_bad_check_interval_is_one_clear_error(tmp_path, value):
    path = tmp_path / "keys.toml"
    path.write_text(
        '[api]\nbase_url = "http://127.0.0.1:9"\n\n[[keys]]\nname = "api-gateway-prod"\nenvironment = "prod"\n'
        f'secret = "rbv_live_aaaaaaaaaaaaaaaa"\n\n[alerts]\ncheck_minutes = {value}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="check_minutes"):
        load_config(path)
