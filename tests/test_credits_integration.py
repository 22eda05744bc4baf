"""The reconcile CLI on a collected stand-in world: exactly the injected discrepancies, clear ledger errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from config import load_config
from simulator.ledger import write_ledger
from simulator.server import start_server
from store import credit_reads
from tests.conftest import ADMIN_TOKEN, ROOT, SIM_NOW, collect_once, write_sim_config

LEDGER_CATEGORIES = {"missing_in_provider", "missing_in_ledger", "ledger_mismatch"}
NOW_ARG = SIM_NOW.isoformat().replace("+00:00", "Z")


def reconcile(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analytics", "reconcile", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ledger(collected, tmp_path_factory) -> tuple[Path, list[dict]]:
    path = tmp_path_factory.mktemp("ledger") / "team_ledger.csv"
    issues = write_ledger(collected.world, path, SIM_NOW)
    return path, issues


@pytest.fixture(scope="module")
def reported(collected, ledger) -> list[dict]:
    before = digest(collected.db_path)
    done = reconcile("--db", str(collected.db_path), "--ledger", str(ledger[0]), "--now", NOW_ARG, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert digest(collected.db_path) == before, "reconcile must never write to the collectors' database"
    return json.loads(done.stdout)


def test_rows_have_the_documented_shape(reported):
    assert reported, "the stand-in injects discrepancies; none were reported"
    for row in reported:
        assert list(row) == [
            "category", "key_name", "job_id", "day", "expected_credits", "charged_credits", "delta", "pricing_source"
        ]  # fmt: skip
        assert row["pricing_source"] == "api", "the stand-in's pricing is readable"
        if row["category"] == "summary_mismatch":
            assert row["job_id"] == ""
        assert row["day"] == "" or len(row["day"]) == 10


def test_billing_discrepancies_are_exactly_the_injected_ones(collected, reported):
    truth = {(t["category"], t["key_name"], t["job_id"] or "", t["day"]): t for t in collected.world.billing_issues()}
    found = {
        (r["category"], r["key_name"], r["job_id"], r["day"]): r
        for r in reported
        if r["category"] not in LEDGER_CATEGORIES
    }
    assert sorted(set(truth) - set(found)) == [], "missing"
    assert sorted(set(found) - set(truth)) == [], "extra"
    assert {t[0] for t in truth} == {
        "overcharged",
        "undercharged",
        "failed_but_charged",
        "missing_output",
        "duplicate_charge",
        "orphan_charge",
        "summary_mismatch",
    }
    for key, expected in truth.items():
        row = found[key]
        assert row["expected_credits"] == pytest.approx(expected["expected_credits"], abs=0.011), key
        assert row["charged_credits"] == pytest.approx(expected["charged_credits"], abs=0.011), key


def test_ledger_discrepancies_are_exactly_the_injected_ones(ledger, reported):
    _, issues = ledger
    truth = {(i["category"], i["key_name"], i["job_id"]) for i in issues}
    found = {(r["category"], r["key_name"], r["job_id"]) for r in reported if r["category"] in LEDGER_CATEGORIES}
    assert sorted(truth - found) == [], "missing"
    assert sorted(found - truth) == [], "extra"
    assert {c for c, _, _ in truth} == LEDGER_CATEGORIES
    by_job = {r["job_id"]: r for r in reported if r["category"] == "ledger_mismatch"}
    for issue in issues:
        if issue["category"] == "ledger_mismatch" and issue["field"] == "credits":
            row = by_job[issue["job_id"]]
            assert row["expected_credits"] == pytest.approx(issue["ledger_value"])
            assert row["charged_credits"] == pytest.approx(issue["provider_value"])


def test_without_a_ledger_only_provider_categories_and_csv_matches_json(collected, reported):
    done = reconcile("--db", str(collected.db_path), "--now", NOW_ARG, "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert rows and list(rows[0]) == [
        "category",
        "key_name",
        "job_id",
        "day",
        "expected_credits",
        "charged_credits",
        "delta",
        "pricing_source",
    ]
    as_csv = {(r["category"], r["key_name"], r["job_id"], r["day"], float(r["delta"])) for r in rows}
    as_json = {
        (r["category"], r["key_name"], r["job_id"], r["day"], r["delta"])
        for r in reported
        if r["category"] not in LEDGER_CATEGORIES
    }
    assert as_csv == as_json


def test_since_limits_the_report(collected, reported):
    since = max(r["day"] for r in reported if r["category"] == "summary_mismatch")
    done = reconcile("--db", str(collected.db_path), "--now", NOW_ARG, "--since", since, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert rows and all(r["day"] >= since for r in rows)
    assert len(rows) < len([r for r in reported if r["category"] not in LEDGER_CATEGORIES])


def _bad_ledgers(folder: Path) -> dict[str, tuple[Path, str]]:
    cases = {
        "wrong_columns": (
            b"reference,amount\njob_1,3\n",
            "required column(s) job_id, credits missing; found: reference, amount",
        ),
        "text_in_numbers": (
            b"job_id,credits\njob_1,12.5\njob_2,twelve\n",
            "line 3, column 'credits': 'twelve' is not a number",
        ),
        "duplicates": (
            b"job_id,credits\njob_1,1\njob_1,2\n",
            "line 3, column 'job_id': duplicate job id 'job_1' (first on line 2)",
        ),
        "latin1": (
            "job_id,credits,key_name\njob_1,1,caf\u00e9\n".encode("latin-1"),
            "line 2: the file is not UTF-8 text (byte 0xe9",
        ),
    }
    out = {}
    for name, (data, message) in cases.items():
        path = folder / f"{name}.csv"
        path.write_bytes(data)
        out[name] = (path, message)
    big = folder / "fifty_mb.csv"
    with big.open("wb") as fh:
        fh.write(b"job_id,credits\n")
        fh.write(b"job_x,1\n" * (50 * 1_048_576 // 8))
    out["fifty_mb"] = (big, "the file is 50 MB; the limit is 20 MB")
    return out


def test_bad_ledgers_get_one_clear_line_and_a_nonzero_exit(collected, tmp_path):
    before = digest(collected.db_path)
    for name, (path, message) in _bad_ledgers(tmp_path).items():
        done = reconcile("--db", str(collected.db_path), "--ledger", str(path), "--now", NOW_ARG)
        assert done.returncode == 2, name
        assert done.stdout == "", name
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (name, done.stderr)
        assert lines[0].startswith(f"error: ledger {path}: "), (name, lines[0])
        assert message in lines[0], (name, lines[0])
        assert "Traceback" not in done.stderr
    assert digest(collected.db_path) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--now", "yesterday"], "--now 'yesterday' is not an ISO date"),
        (["--since", "2026-12-01", "--now", NOW_ARG], "is after --now"),
        (["--ledger", "/nonexistent/ledger.csv"], "ledger /nonexistent/ledger.csv does not exist"),
        (["--tolerance", "-1"], "--tolerance must be a number ≥ 0"),
    ],
)
def test_bad_arguments_get_one_clear_line(collected, args, message):
    done = reconcile("--db", str(collected.db_path), *args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_database_is_a_clear_error(tmp_path):
    done = reconcile("--db", str(tmp_path / "none.duckdb"))
    assert done.returncode == 2
    assert "no database at" in done.stderr and "Traceback" not in done.stderr


def test_ledger_without_dates_asks_for_since(collected, tmp_path):
    path = tmp_path / "undated.csv"
    path.write_text("job_id,credits\njob_1,3\n", encoding="utf-8")
    done = reconcile("--db", str(collected.db_path), "--ledger", str(path), "--now", NOW_ARG)
    assert done.returncode == 2 and "give a start (--since)" in done.stderr


@pytest.fixture(scope="module")
def capped_db(collected, tmp_path_factory) -> Path:
    """The collected world again, its keys' first job backfill capped at one page."""
    folder = tmp_path_factory.mktemp("capped")
    server = start_server(collected.world, admin_token=ADMIN_TOKEN)
    try:
        config = load_config(write_sim_config(server, folder / "keys.toml", "[collector]\nmax_job_pages_first_run = 1"))
        db = folder / "capped.duckdb"
        collect_once(config, db)
    finally:
        server.stop()
    return db


def test_ledger_rows_older_than_a_capped_job_history_are_labelled_not_judged(collected, capped_db, tmp_path):
    db = capped_db
    history_from = credit_reads.jobs_history_from(db)
    assert history_from, "busy keys' first backfill stopped after one page of jobs"
    ledger = tmp_path / "ledger.csv"
    issues = write_ledger(collected.world, ledger, SIM_NOW)
    done = reconcile("--db", str(db), "--ledger", str(ledger), "--now", NOW_ARG, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    missing = {r["job_id"] for r in rows if r["category"] == "missing_in_provider"}
    ghosts = {i["job_id"] for i in issues if i["category"] == "missing_in_provider"}
    assert missing <= ghosts, "a job older than the collected history is never called missing"
    note = next(line for line in done.stderr.splitlines() if line.startswith("ledger: "))
    count = int(note.split()[1])
    assert count > 100 and f"({count} older than the job history collected for its key)" in note


def test_summary_days_before_a_capped_job_history_are_not_called_mismatches(collected, capped_db):
    """A key whose first backfill stopped after one page holds only its newest jobs: its summary days before
    the oldest job held differ by what was never fetched, not by anything the vendor did. So capping the
    backfill finds no summary mismatch that the full collection of the same world does not."""
    db = capped_db
    history_from = credit_reads.jobs_history_from(db)
    assert history_from, "busy keys' first backfill stopped after one page of jobs"

    def mismatches(path: Path) -> set[tuple[str, str]]:
        done = reconcile("--db", str(path), "--now", NOW_ARG, "--format", "json", "--since", "2026-08-01")
        assert done.returncode == 0, done.stderr
        return {(r["key_name"], r["day"]) for r in json.loads(done.stdout) if r["category"] == "summary_mismatch"}

    capped, full = mismatches(db), mismatches(collected.db_path)
    assert full, "the world's injected summary mismatches are found by the full collection"
    assert capped <= full
    for key, day in capped:
        if key in history_from:
            assert day > history_from[key].date().isoformat()
