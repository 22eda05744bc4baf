"""The scale generator writes the collectors' exact schema, with consistent, realistically shaped data."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from simulator import scale
from store import reads, write_transaction
from store.credit_reads import jobs_with_charges
from store.key_reads import key_inventory

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]

_COLUMNS = """
    SELECT table_name, column_index, column_name, data_type, is_nullable, column_default
    FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main'
    ORDER BY table_name, column_index
"""


@pytest.fixture(scope="module")
def scale_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "scale.duckdb"
    result = scale.build(path, n_keys=50, days=14, seed=7, now=NOW)
    assert result.rows["usage_event_log"] > 10_000
    return path


def _rows(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _one(path: Path, sql: str) -> int:
    return int(_rows(path, sql)[0][0])


def _none(path: Path, sql: str) -> bool:
    """The count query finds nothing."""
    return _one(path, sql) == 0


def test_schema_is_exactly_what_the_collectors_migrate(scale_db, tmp_path):
    reference = tmp_path / "reference.duckdb"
    with write_transaction(reference):
        pass
    assert _rows(scale_db, _COLUMNS) == _rows(reference, _COLUMNS)
    for catalog in (
        "SELECT sequence_name FROM duckdb_sequences() ORDER BY 1",
        "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1",
        "SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() ORDER BY ALL",
        "SELECT version, name FROM schema_migrations ORDER BY 1",
    ):
        assert _rows(scale_db, catalog) == _rows(reference, catalog)


def test_volume_and_every_table_populated(scale_db):
    counts = {name: _one(scale_db, f"SELECT count(*) FROM {name}") for name in scale.TABLES}
    assert all(count > 0 for count in counts.values()), counts
    assert counts["job_state"] > 5_000
    assert counts["usage_event_log"] > 3 * counts["job_state"]
    assert _one(scale_db, "SELECT count(*) FROM collector_runs WHERE status = 'ok'") == 1


def test_daily_calls_equal_events_except_inside_coverage_gaps(scale_db):
    rows = _rows(
        scale_db,
        """
        WITH ev AS (SELECT key_name, occurred_at::DATE AS day, count(*) AS events FROM usage_events GROUP BY ALL),
        gap_days AS (
            SELECT DISTINCT key_name, unnest(range(gap_start::DATE, gap_end::DATE + 1, INTERVAL 1 DAY))::DATE AS day
            FROM coverage_gaps)
        SELECT u.key_name, u.day, u.calls, coalesce(ev.events, 0), g.key_name IS NOT NULL AS gapped
        FROM usage_daily u LEFT JOIN ev USING (key_name, day) LEFT JOIN gap_days g USING (key_name, day)
    """,
    )
    assert rows
    plain = [r for r in rows if not r[4]]
    gapped = [r for r in rows if r[4]]
    assert all(calls == events for _, _, calls, events, _ in plain)
    # A gap can cross midnight with no calls on one side, so only the sum must show what it hid.
    assert gapped and all(calls >= events for _, _, calls, events, _ in gapped)
    assert sum(calls - events for _, _, calls, events, _ in gapped) > 100
    # No events outside the summary's days, none for keys the registry does not know.
    assert _none(
        scale_db,
        """
        SELECT count(*) FROM usage_events e
        WHERE NOT EXISTS (SELECT 1 FROM usage_daily u WHERE u.key_name = e.key_name AND u.day = e.occurred_at::DATE)
    """,
    )


def test_daily_jobs_failed_and_credits_agree_with_jobs_and_charges(scale_db):
    rows = _rows(
        scale_db,
        """
        WITH j AS (SELECT key_name, created_at::DATE AS day, count(*) AS jobs,
                          count(*) FILTER (WHERE status = 'failed') AS failed FROM jobs GROUP BY ALL),
        c AS (SELECT key_name, occurred_at::DATE AS day, sum(credits) AS credits FROM usage_events GROUP BY ALL)
        SELECT u.jobs = coalesce(j.jobs, 0), u.failed = coalesce(j.failed, 0),
               abs(u.credits - coalesce(c.credits, 0)) < 0.01
        FROM usage_daily u LEFT JOIN j USING (key_name, day) LEFT JOIN c USING (key_name, day)
    """,
    )
    assert all(r[0] and r[1] for r in rows)
    # Credits disagree only on the summary-mismatch days and on days a gap hid charge events.
    gaps = _one(scale_db, "SELECT count(*) FROM coverage_gaps")
    assert 0 < sum(1 for r in rows if not r[2]) <= 2 + 2 * gaps


def test_ids_unique_and_references_hold(scale_db):
    assert _one(scale_db, "SELECT count(*) - count(DISTINCT event_id) FROM usage_events") == 0
    assert _one(scale_db, "SELECT count(*) - count(DISTINCT job_id) FROM jobs") == 0
    assert _one(scale_db, "SELECT count(*) FROM jobs WHERE key_name NOT IN (SELECT key_name FROM keys)") == 0
    assert _one(scale_db, "SELECT count(*) FROM usage_events WHERE key_name NOT IN (SELECT key_name FROM keys)") == 0
    assert _one(scale_db, "SELECT count(*) FROM job_status_history WHERE job_id NOT IN (SELECT job_id FROM jobs)") == 0
    # Every job's current status is the last one observed, and its events name it.
    assert _none(
        scale_db,
        """
        SELECT count(*) FROM jobs j
        JOIN (SELECT job_id, arg_max(status, observed_at) AS last FROM job_status_history GROUP BY job_id) h
        USING (job_id) WHERE h.last <> j.status
    """,
    )
    assert _one(scale_db, "SELECT count(*) FROM jobs WHERE job_id NOT IN (SELECT job_id FROM job_status_history)") == 0
    orphans = _one(
        scale_db,
        """
        SELECT count(DISTINCT job_id) FROM usage_events
        WHERE job_id IS NOT NULL AND job_id NOT IN (SELECT job_id FROM jobs)
    """,
    )
    assert orphans >= 1  # injected charges for jobs the list never shows
    assert _one(scale_db, "SELECT count(*) FROM jobs WHERE status = 'completed' AND output_url IS NULL") >= 1


def test_realistic_shape(scale_db):
    per_key = [
        r[0]
        for r in _rows(
            scale_db,
            """
        SELECT count(e.event_id) FROM keys k LEFT JOIN usage_events e USING (key_name)
        GROUP BY k.key_name ORDER BY 1 DESC
    """,
        )
    ]
    top = sum(per_key[: max(1, len(per_key) // 10)])
    assert top > 0.35 * sum(per_key)  # a few busy keys carry much of the traffic
    assert 0 in per_key  # never used
    stale = _rows(
        scale_db,
        """
        SELECT key_name FROM key_last_used WHERE last_used_at < ?::TIMESTAMP - INTERVAL 7 DAY
    """,
        [NOW.replace(tzinfo=None)],
    )
    assert stale
    # Business hours beat the small hours for the day-shaped keys of teams at UTC-5..+1.
    hourly = dict(_rows(scale_db, "SELECT hour(occurred_at), count(*) FROM usage_events GROUP BY 1"))
    assert sum(hourly.get(h, 0) for h in range(14, 20)) > 2 * sum(hourly.get(h, 0) for h in range(2, 8))
    weekly = dict(
        _rows(
            scale_db,
            "SELECT isodow(occurred_at) >= 6, count(*) / count(DISTINCT occurred_at::DATE) "
            "FROM usage_events GROUP BY 1",
        )
    )
    assert weekly[True] < 0.8 * weekly[False]
    envs = dict(_rows(scale_db, "SELECT environment, count(*) FROM keys GROUP BY 1"))
    assert set(envs) == {"prod", "staging", "dev"}


def test_store_read_functions_work(scale_db):
    today = NOW.date()
    fresh = reads.freshness(scale_db)
    assert fresh.last_run_status == "ok" and fresh.coverage_gaps > 0 and fresh.quarantined > 0 and fresh.keys > 40
    assert set(reads.environments(scale_db)) == {"prod", "staging", "dev"}
    totals = reads.usage_totals(scale_db, today - timedelta(days=6), today)
    assert totals["calls"] > 0 and totals["jobs"] > 0 and totals["credits"] > 0
    assert not reads.daily_usage(scale_db, today - timedelta(days=6), today, envs=["prod"]).empty
    overview = reads.key_overview(scale_db, today - timedelta(days=6), today)
    assert len(overview) == fresh.keys and overview["last_used_at"].notna().any()
    assert len(reads.coverage_gaps(scale_db)) > 0
    assert len(reads.quarantined_records(scale_db)) > 0
    assert len(reads.recent_runs(scale_db)) == 1
    assert reads.failed_run_items(scale_db).empty
    assert reads.table_counts(scale_db, ["usage_events", "jobs"])["jobs"] > 0
    assert len(key_inventory(scale_db)) == fresh.keys
    charges = jobs_with_charges(scale_db, since=datetime(2026, 11, 18), until=NOW.replace(tzinfo=None))
    assert not charges.empty and charges["events_covered"].any()


def test_same_seed_same_data(scale_db, tmp_path):
    again = scale.build(tmp_path / "again.duckdb", n_keys=50, days=14, seed=7, now=NOW)
    digest = "SELECT count(*), sum(hash(event_id, occurred_at, credits)) FROM usage_events"
    assert _rows(again.db_path, digest) == _rows(scale_db, digest)


def _table_rows(path: Path) -> dict[str, list[tuple]]:
    return {name: _rows(path, f"SELECT * FROM {name} ORDER BY ALL") for name in scale.TABLES}


def test_groups_of_keys_store_exactly_what_one_group_stores(tmp_path):
    # Each key draws from its own streams and the fleet-wide choices are made before any group, so
    # loading 5 keys at a time (groups 0-4, 5-9, 10-11) must store the very rows one group of 12 does.
    # (Busy enough keys that a coverage gap fits.)
    world = dict(n_keys=12, days=10, seed=3, now=NOW, events_per_key_day=400.0)
    whole = scale.build(tmp_path / "whole.duckdb", **world, group_keys=12)
    grouped = scale.build(tmp_path / "grouped.duckdb", **world, group_keys=5)
    expected = _table_rows(whole.db_path)
    assert all(expected[name] for name in scale.TABLES)  # every table has rows to compare
    # What is decided across the fleet is there too: charges without jobs, and hidden spans.
    assert _one(whole.db_path, "SELECT count(*) FROM coverage_gap_log") >= 1
    assert _one(whole.db_path, "SELECT count(*) FROM usage_events WHERE job_id NOT IN (SELECT job_id FROM jobs)") >= 1
    actual = _table_rows(grouped.db_path)
    for name in scale.TABLES:
        assert actual[name] == expected[name], name


def test_cli_refuses_to_overwrite_and_rejects_bad_input(scale_db, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "simulator.scale", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    size = scale_db.stat().st_size
    refused = run("--keys", "5", "--days", "2", "--db", str(scale_db))
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and scale_db.stat().st_size == size
    bad = run("--keys", "5", "--days", "2", "--db", str(tmp_path / "x.duckdb"), "--now", "yesterday")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and not (tmp_path / "x.duckdb").exists()
    tiny = run(
        "--keys", "3", "--days", "1", "--db", str(tmp_path / "tiny.duckdb"), "--now", "2026-11-20T12:00Z", "--quiet"
    )
    assert tiny.returncode == 0, tiny.stderr
    assert tiny.stdout.startswith("scale: ") and len(tiny.stdout.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.duckdb"]


def test_today_is_partial_and_nothing_is_in_the_future(scale_db):
    latest = _rows(scale_db, "SELECT (SELECT max(occurred_at) FROM usage_events), (SELECT max(created_at) FROM jobs)")
    assert all(value <= NOW.replace(tzinfo=None) for value in latest[0])
    days = {r[0] for r in _rows(scale_db, "SELECT DISTINCT day FROM usage_daily")}
    assert max(days) == NOW.date() and min(days) == date(2026, 11, 7)
