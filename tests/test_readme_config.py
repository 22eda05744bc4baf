"""The README's key configuration example is a valid config: every section and field it shows is accepted."""

from __future__ import annotations

import tomllib

from analytics.credits import ReconcileSettings, settings_from_config
from analytics.keys import Rules
from analytics.ledger import DEFAULT_MAX_BYTES
from analytics.pricing import pricing_from_config
from collectors.config import config_from_dict
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
    assert Rules.from_mapping(data["rules"]).rotation_due_days["staging"] == 14
    assert settings_from_config(data["reconciliation"]).tolerance == 0.01
    assert pricing_from_config(data["pricing"]).prefer == "api"
    assert set(config.sections) >= {"collector", "rules", "reconciliation", "pricing", "alerts", "review"}


def test_the_documented_ledger_limit_is_the_one_the_code_and_the_server_use():
    documented = settings_from_config(_readme_toml()["reconciliation"]).ledger_max_bytes
    assert documented == ReconcileSettings().ledger_max_bytes == DEFAULT_MAX_BYTES
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))["server"]
    assert server["maxUploadSize"] * 1_048_576 == DEFAULT_MAX_BYTES
