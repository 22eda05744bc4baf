"""Key findings on the stand-in's collected world equal its designed governance truth, in-process and via the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from config import load_config
from service.keys import evaluate_findings
from tests.conftest import ROOT

CLI_FIELDS = ["key_name", "finding", "detail", "since"]


def _pairs(rows) -> set[tuple[str, str]]:
    return {(r["key_name"], r["finding"]) for r in rows}


def _cli(collected, fmt: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "analytics",
            "keys",
            "--db",
            str(collected.db_path),
            "--config",
            str(collected.config_path),
            "--now",
            collected.now.isoformat() + "Z",
            "--format",
            fmt,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_findings_equal_the_designed_truth(collected):
    findings = evaluate_findings(collected.db_path, collected.now, load_config(collected.config_path).rules)
    truth = collected.world.governance_truth(collected.now)
    found = _pairs(findings.to_dict("records"))
    assert found - truth == set(), "extra findings"
    assert truth - found == set(), "missing findings"
    assert findings["detail"].str.len().gt(10).all()
    assert not findings.duplicated(["key_name", "finding"]).any()


def test_cli_json_lists_every_finding_once(collected):
    result = _cli(collected, "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and all(list(r) == CLI_FIELDS for r in rows)
    assert _pairs(rows) == collected.world.governance_truth(collected.now)
    assert len(rows) == len(_pairs(rows))
    by_pair = {(r["key_name"], r["finding"]): r for r in rows}
    # spot-check reasons against the world's own design
    spec = {k.name: k for k in collected.world.keys()}
    assert "prod" in by_pair[("search-staging", "env_mismatch")]["detail"]
    overdue_since = spec["prod-main"].rotated_at.replace(tzinfo=None) + timedelta(days=90)
    assert by_pair[("prod-main", "rotation_overdue")]["since"].startswith(overdue_since.isoformat()[:16])
    assert by_pair[("dev-carol", "owner_offboarded")]["since"] is None


def test_cli_csv_has_the_same_rows(collected):
    result = _cli(collected, "csv")
    assert result.returncode == 0, result.stderr
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert reader.fieldnames == CLI_FIELDS
    assert _pairs(reader) == collected.world.governance_truth(collected.now)


def test_cli_rejects_a_missing_database_without_a_traceback(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "analytics", "keys", "--db", str(tmp_path / "none.duckdb")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "does not exist" in result.stderr
