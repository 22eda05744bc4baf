"""Stored results: one refresh writes findings, incidents, reconciliation and the review whole; killing it
half-way leaves the previous results readable, the next one completes them, and what the faces read from
them equals what the same code computes on the fly."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from analytics.credits import ReconcileSettings, judge_range
from analytics.keys import Rules
from analytics.review import default_week
from service import anomalies, credits, keys, review
from service.refresh import refresh_due, refresh_results
from service.results import usable
from simulator import scale
from store import result_tables

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 20, 12, 0, 0)
TABLES = ("key_findings", "incidents", "series_keys", "discrepancies", "credit_days", "summary_days", "review")


@pytest.fixture(scope="module")
def small_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("results") / "scale.duckdb"
    scale.build(path, n_keys=40, days=21, seed=11, now=NOW.replace(tzinfo=UTC))
    return path


def _copy(db: Path, folder: Path) -> Path:
    target = folder / "copy.duckdb"
    target.write_bytes(db.read_bytes())
    return target


def _stored(db: Path) -> tuple[list[tuple], dict[str, str]]:
    """The pointer rows and a digest of every result table, read read-only like a page would."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        current = con.execute("SELECT kind, refresh_id, as_of FROM result_current ORDER BY kind").fetchall()
        digests = {}
        for table in TABLES:
            rows = con.execute(f"SELECT * FROM result_{table}").fetchall()
            digests[table] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
        return current, digests
    finally:
        con.close()


def _log(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT refresh_id, status FROM result_refresh_log ORDER BY refresh_id").fetchall()
    finally:
        con.close()


# A refresh in its own process that stops for good in the middle of its write transaction (after replacing
# some result tables), so a SIGKILL lands exactly there; or, with no pause, at whatever point it reached.
_CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime
    sys.path.insert(0, {root!r})
    from analytics.credits import ReconcileSettings, judge_range
    from analytics.keys import Rules
    from store import result_tables
    from service.refresh import refresh_results

    pause_after = int(sys.argv[2])
    original, written = result_tables._arrow, []

    def arrow(frame):
        written.append(1)
        if pause_after and len(written) == pause_after:
            print("mid-write", flush=True)
            time.sleep(600)
        return original(frame)

    result_tables._arrow = arrow
    refresh_results(sys.argv[1], Rules(), ReconcileSettings(), as_of=datetime.fromisoformat(sys.argv[3]))
    print("done", flush=True)
    """
)


def _refresh_process(db: Path, pause_after: int, as_of: datetime) -> subprocess.Popen:
    code = _CHILD.format(root=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(db), str(pause_after), as_of.isoformat()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip


def test_a_refresh_killed_mid_write_leaves_the_previous_results_and_the_next_completes(small_db, tmp_path):
    db = _copy(small_db, tmp_path)
    first = refresh_results(db, Rules(), ReconcileSettings(), as_of=NOW - timedelta(hours=6))
    before = _stored(db)
    assert {kind for kind, _, _ in before[0]} == set(result_tables.KINDS)
    assert all(refresh_id == first.refresh_id for _, refresh_id, _ in before[0])

    rng = random.Random(5)
    # The first conversion is the credit days' one part (40 keys: one group), spooled before the write begins;
    # then one per table written but the credit days (built from the spool).
    for pause_after in (2, 4, 7):  # before the first, after two and after five tables were replaced
        proc = _refresh_process(db, pause_after, NOW)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "mid-write", proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert _stored(db) == before  # every kind still the first refresh's, whole
    for _ in range(3):  # and at whatever point a kill happens to land
        proc = _refresh_process(db, 0, NOW)
        try:
            proc.wait(timeout=rng.uniform(1.0, 4.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        current, _ = _stored(db)
        assert len({refresh_id for _, refresh_id, _ in current}) == 1  # never a mix of two refreshes

    done = refresh_results(db, Rules(), ReconcileSettings(), as_of=NOW)
    after, log = _stored(db), dict(_log(db))
    assert all(refresh_id == done.refresh_id for _, refresh_id, _ in after[0])
    assert all(as_of == NOW for _, _, as_of in after[0])
    assert log[first.refresh_id] == "ok" and log[done.refresh_id] == "ok"
    assert set(log.values()) <= {"ok", "abandoned"}  # killed refreshes are marked, not left running

    again = refresh_results(db, Rules(), ReconcileSettings(), as_of=NOW)
    assert _stored(db)[1] == after[1]  # idempotent: the same data and as-of store the same rows
    assert again.refresh_id > done.refresh_id


def test_stored_results_equal_what_the_same_code_computes_on_the_fly(small_db, tmp_path):
    db = _copy(small_db, tmp_path)
    rules, settings = Rules(), ReconcileSettings()
    refresh_results(db, rules, settings, as_of=NOW)

    stored = keys.key_findings(db, NOW, rules)
    assert stored.provenance.stored and not stored.provenance.stale
    fresh = keys.evaluate_findings(db, NOW, rules)
    assert len(stored.frame) > 0
    pd.testing.assert_frame_equal(
        stored.frame.reset_index(drop=True), fresh.reset_index(drop=True), check_dtype=False, check_like=True
    )

    kept = anomalies.incidents(db, NOW)
    detected = anomalies.detect_incidents(db, NOW)
    assert kept.provenance.stored and kept.keys == detected.keys and len(kept.frame) > 0
    assert list(kept.frame.columns) == list(detected.incidents.columns)  # every column detect returns
    pd.testing.assert_frame_equal(
        kept.frame.reset_index(drop=True), detected.incidents.reset_index(drop=True), check_dtype=False
    )

    start = datetime(2026, 11, 6)
    envs = ["prod", "staging", "dev"]
    from_days = credits.judge(db, settings, NOW, start, NOW, envs)
    assert from_days.provenance.stored
    data = credits.billing_data(db, start, credits.day_end(NOW.date()), envs, settings.pricing)
    left, right = from_days.judgement, judge_range(data, settings, NOW, start, NOW)  # what judge() runs unstored
    assert left.summary == right.summary
    cols = ["category", "key_name", "job_id", "day", "delta"]
    pd.testing.assert_frame_equal(
        left.found[cols].reset_index(drop=True), right.found[cols].reset_index(drop=True), check_dtype=False
    )

    week = default_week(NOW)
    stored_review = review.week_review(db, week, NOW, rules, settings, None)
    assert stored_review.provenance.stored
    computed = review.compute_review(db, week, NOW, rules, settings)
    assert json.loads(json.dumps(stored_review.review, default=str)) == json.loads(
        json.dumps({**computed, "decisions": []}, default=str)
    )


def test_results_stand_only_for_their_settings_and_later_instants_and_say_when_stale(small_db, tmp_path):
    db = _copy(small_db, tmp_path)
    refresh_results(db, Rules(), ReconcileSettings(), as_of=NOW)
    assert usable(db, "findings", NOW, rules=Rules()) is not None
    assert usable(db, "findings", NOW - timedelta(seconds=30), rules=Rules()) is not None  # a page's minute
    assert usable(db, "findings", NOW - timedelta(minutes=1), rules=Rules()) is None  # an explicit earlier now
    assert usable(db, "findings", NOW, rules=Rules(sandbox_share=0.9)) is None  # other [rules]
    assert not keys.key_findings(db, NOW, Rules(sandbox_share=0.9)).provenance.stored
    assert not refresh_due(db, NOW + timedelta(minutes=5))
    assert refresh_due(db, NOW + timedelta(hours=2))  # findings move with time even without new data

    # A collection finishing after the refresh makes the stored results stale, and a refresh due.
    con = duckdb.connect(str(db))
    try:
        con.execute(
            "INSERT INTO run_log (run_id, started_at, finished_at, status) VALUES (nextval('run_seq'), ?, ?, 'ok')",
            [NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)],
        )
    finally:
        con.close()
    origin = keys.key_findings(db, NOW + timedelta(minutes=3), Rules()).provenance
    assert origin.stored and origin.stale
    assert "stale: newer data was collected at 2026-11-20 12:02 UTC" in origin.sentence()
    assert refresh_due(db, NOW + timedelta(minutes=3))


def test_cli_answers_from_stored_results_and_computes_for_an_explicit_now(small_db, tmp_path):
    db = _copy(small_db, tmp_path)
    refresh = subprocess.run(
        [sys.executable, "-m", "collectors", "refresh", "--db", str(db), "--now", NOW.isoformat()],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert refresh.returncode == 0, refresh.stderr
    assert refresh.stdout.startswith("results 1 as of 2026-11-20 12:00 UTC (run 1):")

    def keys_cli(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "analytics", "keys", "--db", str(db), *extra],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip

    stored, explicit = keys_cli(), keys_cli("--now", NOW.isoformat())
    assert stored.returncode == explicit.returncode == 0
    assert "findings computed 2026-11-20 12:00 UTC by the collector's refresh 1" in stored.stderr
    assert "give --now" in stored.stderr and "give --now" not in explicit.stderr
    assert "refresh 1" in explicit.stderr  # --now at the refresh's instant: the stored findings stand for it
    assert json.loads(stored.stdout) == json.loads(explicit.stdout)
    earlier = keys_cli("--now", (NOW - timedelta(days=3)).isoformat())
    assert earlier.returncode == 0 and earlier.stderr == ""  # computed on the fly
    assert json.loads(earlier.stdout) != json.loads(stored.stdout)


def test_backups_leave_the_derived_results_out_and_a_restore_refreshes_them(small_db, tmp_path):
    from store.__main__ import main as store_main

    db = _copy(small_db, tmp_path)
    refresh_results(db, Rules(), ReconcileSettings(), as_of=NOW)
    assert store_main(["backup", "--db", str(db), "--out", str(tmp_path / "backup")]) == 0
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text(encoding="utf-8"))
    assert not [t for t in manifest["tables"] if t.startswith("result_")]
    restored = tmp_path / "restored.duckdb"
    assert store_main(["restore", "--from", str(tmp_path / "backup"), "--db", str(restored)]) == 0
    assert result_tables.current_results(restored) == {}
    assert not keys.key_findings(restored, NOW, Rules()).provenance.stored  # computed on the fly meanwhile
    refresh_results(restored, Rules(), ReconcileSettings(), as_of=NOW)
    assert _stored(restored)[1] == _stored(db)[1]  # the refresh rebuilds the same results from the same rows
