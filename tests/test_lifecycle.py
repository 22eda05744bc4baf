"""Backup, restore, retention and info: round trips are exact, damage is refused clearly, nothing is lost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from simulator import scale
from store import lifecycle, write_transaction, writes
from store.__main__ import main as store_main

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
NAIVE_NOW = NOW.replace(tzinfo=None)
ROOT = Path(__file__).resolve().parents[1]
_COLUMNS = """
    SELECT table_name, column_index, column_name, data_type, is_nullable
    FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main'
    ORDER BY table_name, column_index
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lifecycle") / "source.duckdb"
    scale.build(path, n_keys=30, days=10, seed=11, now=NOW)
    return path


@pytest.fixture(scope="module")
def backup_dir(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("backups") / "b1"
    assert store_main(["backup", "--db", str(source), "--out", str(out)]) == 0
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_round_trip_preserves_every_public_view_exactly(source, backup_dir, tmp_path, capsys):
    restored = tmp_path / "restored.duckdb"
    assert store_main(["restore", "--from", str(backup_dir), "--db", str(restored)]) == 0
    assert "counts match the manifest" in capsys.readouterr().out
    views = [r[0] for r in _rows(source, "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1")]
    assert len(views) >= 12
    con = duckdb.connect(str(restored), read_only=True)
    try:
        con.execute(f"ATTACH '{source}' AS src (READ_ONLY)").fetchall()
        for view in views:
            total = con.execute(f"SELECT count(*) FROM src.{view}").fetchall()[0][0]
            missing = con.execute(f"SELECT count(*) FROM (FROM src.{view} EXCEPT ALL FROM main.{view})").fetchall()
            extra = con.execute(f"SELECT count(*) FROM (FROM main.{view} EXCEPT ALL FROM src.{view})").fetchall()
            assert (missing[0][0], extra[0][0]) == (0, 0), view
            assert total == con.execute(f"SELECT count(*) FROM main.{view}").fetchall()[0][0]
        versions = con.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
    finally:
        con.close()
    assert versions == _rows(source, "SELECT version, name FROM schema_migrations ORDER BY 1")
    assert _rows(restored, _COLUMNS) == _rows(source, _COLUMNS)
    assert not list(tmp_path.glob(".*restoring*"))


def test_sequences_continue_after_restore(source, backup_dir, tmp_path):
    restored = tmp_path / "restored.duckdb"
    assert store_main(["restore", "--from", str(backup_dir), "--db", str(restored)]) == 0
    before = _rows(
        restored,
        "SELECT (SELECT max(run_id) FROM run_log), (SELECT max(landing_id) FROM raw_landing), "
        "(SELECT max(quarantine_id) FROM quarantine_log)",
    )[0]
    with write_transaction(restored) as con:
        run_id = writes.start_run(con, mode="once", endpoints="summary", keys_total=1, now=NAIVE_NOW)
        # The collectors write these two through the sequences' nextval, like this.
        con.execute(
            "INSERT INTO raw_landing (landing_id, endpoint, fetched_at, body) "
            "VALUES (nextval('landing_seq'), 'summary', ?, '{}')",
            [NAIVE_NOW],
        ).fetchall()
        con.execute(
            "INSERT INTO quarantine_log (quarantine_id, endpoint, fetched_at, reason) "
            "VALUES (nextval('quarantine_seq'), 'events', ?, 'after restore')",
            [NAIVE_NOW],
        ).fetchall()
    after = _rows(
        restored,
        "SELECT (SELECT max(run_id) FROM run_log), (SELECT max(landing_id) FROM raw_landing), "
        "(SELECT max(quarantine_id) FROM quarantine_log)",
    )[0]
    assert run_id == before[0] + 1
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1)


def test_restore_refuses_to_overwrite_unless_forced(backup_dir, tmp_path, capsys):
    target = tmp_path / "existing.duckdb"
    with write_transaction(target) as con:
        writes.upsert_pricing(con, {"only-here": 1.0}, NAIVE_NOW)
    digest = _sha(target)
    assert store_main(["restore", "--from", str(backup_dir), "--db", str(target)]) == 1
    assert "already exists" in _one_line_error(capsys)
    assert _sha(target) == digest
    assert store_main(["restore", "--from", str(backup_dir), "--db", str(target), "--force"]) == 0
    kept = list(tmp_path.glob("existing.duckdb.before-restore-*"))
    assert len(kept) == 1 and _sha(kept[0]) == digest  # the replaced file is kept, not lost
    assert _rows(target, "SELECT count(*) FROM pricing WHERE model = 'only-here'") == [(0,)]


def _damage(folder: Path, how: str) -> None:
    manifest = folder / "manifest.json"
    if how == "no_manifest":
        manifest.unlink()
    elif how == "bad_json":
        manifest.write_text("{not json", encoding="utf-8")
    elif how == "missing_parquet":
        (folder / "usage_event_log.parquet").unlink()
    elif how == "flipped_bytes":
        data = bytearray((folder / "job_state.parquet").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / "job_state.parquet").write_bytes(bytes(data))
    elif how == "counts_disagree":
        body = json.loads(manifest.read_text(encoding="utf-8"))
        body["tables"]["job_state"] += 1
        manifest.write_text(json.dumps(body), encoding="utf-8")
    elif how == "newer_schema":
        body = json.loads(manifest.read_text(encoding="utf-8"))
        body["schema_version"] = 999
        manifest.write_text(json.dumps(body), encoding="utf-8")
    elif how == "truncated_parquet":
        path = folder / "usage_daily.parquet"
        path.write_bytes(path.read_bytes()[:100])
        body = json.loads(manifest.read_text(encoding="utf-8"))
        # A consistent manifest, so the import itself must notice the broken file.
        body["files"]["usage_daily.parquet"] = {"bytes": 100, "sha256": _sha(path)}
        manifest.write_text(json.dumps(body), encoding="utf-8")


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("no_manifest", "not a backup"),
        ("bad_json", "not valid JSON"),
        ("missing_parquet", "usage_event_log.parquet is missing"),
        ("flipped_bytes", "does not match its checksum"),
        ("counts_disagree", "row counts differ"),
        ("newer_schema", "schema version 999"),
        ("truncated_parquet", "restore from"),
    ],
)
def test_damaged_backup_fails_cleanly_and_leaves_nothing(backup_dir, tmp_path, capsys, how, message):
    damaged = tmp_path / "damaged"
    shutil.copytree(backup_dir, damaged)
    _damage(damaged, how)
    target = tmp_path / "out" / "restored.duckdb"
    assert store_main(["restore", "--from", str(damaged), "--db", str(target)]) == 1
    assert message in _one_line_error(capsys)
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_missing_backup_and_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert store_main(["restore", "--from", str(tmp_path / "nowhere"), "--db", str(tmp_path / "x.duckdb")]) == 1
    assert "no backup at" in _one_line_error(capsys)
    assert not (tmp_path / "x.duckdb").exists()
    with pytest.raises(SystemExit) as exit_info:
        store_main(["prune", "--db", str(tmp_path / "x.duckdb"), "--events-days", "0"])
    assert exit_info.value.code == 2
    assert "must be 1 or more" in _one_line_error(capsys)
    not_db = tmp_path / "notes.txt"
    not_db.write_text("hello", encoding="utf-8")
    assert store_main(["info", "--db", str(not_db)]) == 1
    _one_line_error(capsys)
    # End to end through the interpreter: an error exit, one line, no traceback.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "store",
            "backup",
            "--db",
            str(tmp_path / "missing.duckdb"),
            "--out",
            str(tmp_path / "bk"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "no database at" in done.stderr
    assert not (tmp_path / "bk").exists()


def test_backup_refuses_a_non_empty_folder(source, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    assert store_main(["backup", "--db", str(source), "--out", str(out)]) == 1
    assert "not an empty folder" in _one_line_error(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["busy"]  # no staging folder left behind


def test_prune_removes_only_rows_past_the_cutoff_and_is_idempotent(backup_dir, tmp_path, capsys):
    db = tmp_path / "prune.duckdb"
    assert store_main(["restore", "--from", str(backup_dir), "--db", str(db)]) == 0
    old = NAIVE_NOW - timedelta(days=30)
    with write_transaction(db) as con:
        for n in range(3):
            con.execute(
                "INSERT INTO raw_landing (landing_id, endpoint, key_name, fetched_at, body) "
                "VALUES (nextval('landing_seq'), 'summary', ?, ?, '{}')",
                [f"k{n}", old],
            ).fetchall()
    events_cut = NAIVE_NOW - timedelta(days=5)
    count_sql = (
        "SELECT count(*) FILTER (WHERE occurred_at < ?), count(*) FILTER (WHERE occurred_at >= ?) FROM usage_event_log"
    )
    older, newer = _rows(db, count_sql, [events_cut, events_cut])[0]
    raw_before = _rows(db, "SELECT count(*) FROM raw_landing")[0][0]
    assert older > 0 and newer > 0
    capsys.readouterr()
    args = ["prune", "--db", str(db), "--raw-days", "14", "--events-days", "5", "--now", "2026-11-20T12:00:00Z"]
    assert store_main(args) == 0
    assert f"removed {older + 3:,} rows" in capsys.readouterr().out
    assert _rows(db, count_sql, [events_cut, events_cut])[0] == (0, newer)
    assert _rows(db, "SELECT count(*) FROM raw_landing")[0][0] == raw_before - 3
    assert store_main(args) == 0
    assert "removed 0 rows" in capsys.readouterr().out


def test_info_reports_version_views_and_size(source, capsys):
    assert store_main(["info", "--db", str(source), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["schema_version"] == lifecycle.latest_schema_version()
    assert found["file_bytes"] == source.stat().st_size
    assert found["views"]["usage_events"] == found["tables"]["usage_event_log"] > 0
    assert {"keys", "jobs", "key_daily_usage", "coverage_gaps", "quarantine"} <= set(found["views"])
    assert store_main(["info", "--db", str(source)]) == 0
    text = capsys.readouterr().out
    assert f"schema v{lifecycle.latest_schema_version()}" in text and "usage_events" in text


def test_manifest_describes_the_backup(source, backup_dir):
    manifest = json.loads((backup_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["schema_version"] == lifecycle.latest_schema_version()
    assert manifest["tables"]["usage_event_log"] == _rows(source, "SELECT count(*) FROM usage_event_log")[0][0]
    # One Parquet file per table and nothing executable: the schema comes from our own migrations at restore.
    assert set(manifest["files"]) == {f"{table}.parquet" for table in manifest["tables"]}
    assert set(manifest["files"]) | {"manifest.json"} == {p.name for p in backup_dir.iterdir()}
    assert manifest["views"]["keys"] == _rows(source, "SELECT count(*) FROM keys")[0][0]
    assert manifest["sequences"]["run_seq"] == _rows(source, "SELECT max(run_id) FROM run_log")[0][0]
    assert "signature" not in manifest  # RBV_BACKUP_KEY unset


# --- tampering: nothing in a backup folder runs; with a signing key, rewritten data is refused too ---------


def _rehash(folder: Path, *names: str, drop: tuple[str, ...] = ()) -> None:
    """What an attacker with write access does: make the manifest agree with the tampered files again."""
    manifest = folder / "manifest.json"
    body = json.loads(manifest.read_text(encoding="utf-8"))
    for name in names:
        body["files"][name] = {"bytes": (folder / name).stat().st_size, "sha256": _sha(folder / name)}
    for name in drop:
        body["files"].pop(name, None)
    manifest.write_text(json.dumps(body), encoding="utf-8")


def _export_database_backup(source: Path, out: Path) -> None:
    """A backup as the previous version wrote it (format 1): EXPORT DATABASE, schema.sql and load.sql included."""
    con = duckdb.connect(str(source), read_only=True)
    try:
        con.execute("SET enable_progress_bar = false").fetchall()
        tables = {
            t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0]
            for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal").fetchall()
        }
        views = {
            v: con.execute(f'SELECT count(*) FROM "{v}"').fetchall()[0][0]
            for (v,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        }
        applied = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        migrations = [name for _, name in applied]
        con.execute(f"EXPORT DATABASE '{out}' (FORMAT parquet)").fetchall()
    finally:
        con.close()
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha(p)} for p in sorted(out.iterdir())}
    manifest = {
        "format": "rbv-store-backup",
        "format_version": 1,
        "schema_version": applied[-1][0],  # the newest migration's number (numbers may skip one)
        "migrations": migrations,
        "tables": tables,
        "views": views,
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture
def v1_backup(source, tmp_path) -> Path:
    out = tmp_path / "v1"
    _export_database_backup(source, out)
    assert {"schema.sql", "load.sql"} <= {p.name for p in out.iterdir()}
    return out


def _append_copy_to(sql_file: Path, written: Path) -> None:
    with sql_file.open("a", encoding="utf-8") as handle:
        handle.write(f"\nCOPY (SELECT 'pwned' AS x) TO '{written}' (FORMAT csv);\n")


@pytest.mark.parametrize("sql_file", ["schema.sql", "load.sql"])
def test_sql_added_to_a_backup_and_left_out_of_its_manifest_is_refused_and_never_runs(
    v1_backup, tmp_path, capsys, sql_file
):
    """The probe: append COPY ... TO to schema.sql, drop its manifest entry: restore exited 0, the file written."""
    written = tmp_path / "written_by_the_backup.csv"
    _append_copy_to(v1_backup / sql_file, written)
    _rehash(v1_backup, drop=(sql_file,))
    target = tmp_path / "restored.duckdb"
    assert store_main(["restore", "--from", str(v1_backup), "--db", str(target)]) == 1
    assert "does not list" in _one_line_error(capsys)
    assert not written.exists(), "SQL from the backup folder was executed"
    assert not target.exists()


def test_sql_in_a_backup_is_never_executed_even_when_the_manifest_vouches_for_it(source, v1_backup, tmp_path, capsys):
    """Even a manifest rehashed to cover the edited SQL restores only rows: the schema is our own migrations'."""
    written = tmp_path / "written_by_the_backup.csv"
    _append_copy_to(v1_backup / "schema.sql", written)
    with (v1_backup / "load.sql").open("a", encoding="utf-8") as handle:
        handle.write("CREATE TABLE planted AS SELECT 1 AS x;\n")
    _rehash(v1_backup, "schema.sql", "load.sql")
    target = tmp_path / "restored.duckdb"
    assert store_main(["restore", "--from", str(v1_backup), "--db", str(target)]) == 0, capsys.readouterr().err
    assert not written.exists(), "SQL from the backup folder was executed"
    assert _rows(target, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'planted'") == [(0,)]
    # A format-1 backup still restores exactly, from its Parquet files.
    for view in ("usage_events", "jobs", "keys", "collector_runs"):
        assert _rows(target, f"SELECT count(*) FROM {view}") == _rows(source, f"SELECT count(*) FROM {view}")


def test_a_parquet_file_for_an_unknown_table_is_refused(backup_dir, tmp_path, capsys):
    tampered = tmp_path / "tampered"
    shutil.copytree(backup_dir, tampered)
    shutil.copy(tampered / "run_log.parquet", tampered / "planted.parquet")
    body = json.loads((tampered / "manifest.json").read_text(encoding="utf-8"))
    body["tables"]["planted"] = body["tables"]["run_log"]
    (tampered / "manifest.json").write_text(json.dumps(body), encoding="utf-8")
    _rehash(tampered, "planted.parquet")
    target = tmp_path / "restored.duckdb"
    assert store_main(["restore", "--from", str(tampered), "--db", str(target)]) == 1
    assert "does not know" in _one_line_error(capsys)
    assert not target.exists()


KEY = "correct-horse-battery-staple-0123"


def _rewrite_job_state(folder: Path) -> None:
    """Rewrite a Parquet file with doctored rows (charges zeroed), a perfectly valid file."""
    path = folder / "job_state.parquet"
    con = duckdb.connect()
    try:
        con.execute(
            f"COPY (SELECT * REPLACE (0.0 AS credits_charged) FROM read_parquet('{path}')) "
            f"TO '{folder / 'rewritten.parquet'}' (FORMAT parquet)"
        ).fetchall()
    finally:
        con.close()
    os.replace(folder / "rewritten.parquet", path)


def test_signed_backup_refuses_a_rewritten_and_rehashed_parquet(source, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RBV_BACKUP_KEY", KEY)
    signed = tmp_path / "signed"
    assert store_main(["backup", "--db", str(source), "--out", str(signed)]) == 0
    capsys.readouterr()
    assert json.loads((signed / "manifest.json").read_text(encoding="utf-8"))["signature"]["value"]
    # Untouched, it restores (and verifies) with the key.
    assert store_main(["restore", "--from", str(signed), "--db", str(tmp_path / "ok.duckdb")]) == 0
    capsys.readouterr()
    _rewrite_job_state(signed)
    _rehash(signed, "job_state.parquet")  # the checksums agree again: only the signature can tell
    target = tmp_path / "restored.duckdb"
    assert store_main(["restore", "--from", str(signed), "--db", str(target)]) == 1
    assert "signature does not match" in _one_line_error(capsys)
    assert not target.exists()


def test_signing_key_rules(source, backup_dir, tmp_path, monkeypatch, capsys):
    target = tmp_path / "restored.duckdb"
    monkeypatch.setenv("RBV_BACKUP_KEY", KEY)
    # With the key set, an unsigned backup (anyone could have written it) is refused...
    assert store_main(["restore", "--from", str(backup_dir), "--db", str(target)]) == 1
    assert "not signed" in _one_line_error(capsys)
    signed = tmp_path / "signed"
    assert store_main(["backup", "--db", str(source), "--out", str(signed)]) == 0
    capsys.readouterr()
    # ...a backup signed with another key is refused, and a signed one needs the key to be checked at all.
    monkeypatch.setenv("RBV_BACKUP_KEY", KEY[::-1])
    assert store_main(["restore", "--from", str(signed), "--db", str(target)]) == 1
    assert "signature does not match" in _one_line_error(capsys)
    monkeypatch.delenv("RBV_BACKUP_KEY")
    assert store_main(["restore", "--from", str(signed), "--db", str(target)]) == 1
    assert "is signed" in _one_line_error(capsys)
    monkeypatch.setenv("RBV_BACKUP_KEY", "short")
    assert store_main(["backup", "--db", str(source), "--out", str(tmp_path / "weak")]) == 1
    assert "at least 16 characters" in _one_line_error(capsys)
    assert not target.exists() and not (tmp_path / "weak").exists()


def test_backups_and_restored_databases_are_owner_only(source, tmp_path):
    """Run as real processes (the umask is per process): folder 0700, every file 0600."""
    out, target = tmp_path / "private-backup", tmp_path / "restored" / "r.duckdb"
    env = {k: v for k, v in os.environ.items() if k not in ("RBV_UMASK", "RBV_BACKUP_KEY")}
    for argv in (
        ["backup", "--db", str(source), "--out", str(out)],
        ["restore", "--from", str(out), "--db", str(target)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "store", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o600}
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
