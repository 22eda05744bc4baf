"""The README's key configuration example is a valid config: every section and field it shows is accepted."""

from __future__ import annotations

import tomllib

from analytics.credits import ReconcileSettings
from analytics.ledger import DEFAULT_MAX_BYTES
from config import config_from_dict, pricing_section, reconciliation_section, rules_section
from tests.conftest import ROOT


def _readme_toml() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("## Key configuration (TOML)") :]
    block = block[block.index("```toml") + len("```toml") : block.index("```\n", block.index("```toml") + 7)]
    # the example's placeholder secret stands for a real one
    return tomllib.loads(block.replace('"rbv_..."', '"rbv_live_abcdefghijklmnop1234"'))


def test_the_readme_config_example_loads_with_every_section():
    data = _readme_toml()
    config = config_from_dict(data)
    assert [k.name for k in config.keys] == ["api-gateway-prod"]
    assert rules_section(data["rules"]).rotation_due_days["staging"] == 14
    assert reconciliation_section(data["reconciliation"]).tolerance == 0.01
    assert pricing_section(data["pricing"]).prefer == "api"
    assert config.rules.rotation_due_days["staging"] == 14 and config.reconciliation.pricing.prefer == "api"
    assert config.alerts.webhook_url_env == "RBV_ALERT_WEBHOOK" and config.review.weekly_cron == "0 7 * * mon"
    channels = {c.name: c.type for c in config.alerts.all_channels()}
    assert channels == {"ops-slack": "slack", "pager": "pagerduty", "hooks": "webhook", "dev-mail": "email",
                        "webhook": "slack"}  # fmt: skip
    policy = config.alerts.policy
    assert [r.channels for r in policy.routes] == [("pager", "ops-slack"), ("dev-mail",)]
    assert policy.default_channels == ("ops-slack",) and len(policy.mutes) == 2
    assert config.budgets.thresholds == (50.0, 80.0, 100.0) and config.budgets.budget_for("environment", "prod")
    assert config.review.deliver_to == ("dev-mail", "ops-slack")


def test_the_documented_ledger_limit_is_the_one_the_code_and_the_server_use():
    documented = reconciliation_section(_readme_toml()["reconciliation"]).ledger_max_bytes
    assert documented == ReconcileSettings().ledger_max_bytes == DEFAULT_MAX_BYTES
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))["server"]
    assert server["maxUploadSize"] * 1_048_576 == DEFAULT_MAX_BYTES
