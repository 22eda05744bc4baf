"""Data lifecycle: retention, backup (EXPORT DATABASE to Parquet + manifest), verified restore, and info."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from store import writes
from store.connection import StoreError, StoreNotReady, read_connection, write_transaction
from store.migrations import apply_migrations, migration_files
from store.results import first_row

MANIFEST = "manifest.json"
BACKUP_FORMAT = "rbv-store-backup"
BACKUP_FORMAT_VERSION = 1
# Match the collectors' defaults (config.CollectorSettings); the store must not import them.
DEFAULT_RAW_DAYS = 14
DEFAULT_EVENTS_DAYS = 400


class LifecycleError(StoreError):
    """A backup, restore or retention problem worth one clear line (never a traceback)."""


@dataclass(frozen=True)
class DatabaseInfo:
    path: Path
    schema_version: int
    migrations: list[str]
    views: dict[str, int]
    tables: dict[str, int]
    file_bytes: int
    wal_bytes: int


@dataclass(frozen=True)
class BackupResult:
    out_dir: Path
    schema_version: int
    tables: dict[str, int]
    bytes: int
    seconds: float


@dataclass(frozen=True)
class RestoreResult:
    db_path: Path
    schema_version: int
    tables: dict[str, int]
    upgraded: list[str]
    previous_kept_as: Path | None
    seconds: float


@dataclass(frozen=True)
class PruneResult:
    raw_before: datetime
    events_before: datetime
    removed: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.removed.values())


def latest_schema_version() -> int:
    return migration_files()[-1][0]


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    row = first_row(con.execute("SELECT max(version) FROM schema_migrations"))
    return int(row[0]) if row and row[0] is not None else 0


def _names(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    return sorted(str(r[0]) for r in con.execute(sql).fetchall())


def base_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Our tables (internal tables and schema_migrations) in the main schema of this database."""
    return _names(
        con,
        "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary "
        "AND schema_name = 'main' AND database_name = current_database()",
    )


def public_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The public SQL interface (002_public_views.sql and later)."""
    return _names(
        con,
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary "
        "AND schema_name = 'main' AND database_name = current_database()",
    )


def row_counts(con: duckdb.DuckDBPyConnection, names: list[str]) -> dict[str, int]:
    counts = {}
    for name in names:
        row = first_row(con.execute(f"SELECT count(*) FROM {_quote_ident(name)}"))
        counts[name] = int(row[0]) if row else 0
    return counts


def _quiet(con: duckdb.DuckDBPyConnection) -> None:
    """No DuckDB progress bar: our commands print one result line (or one error line), nothing else."""
    con.execute("SET enable_progress_bar = false").fetchall()


def _file_sizes(path: Path) -> tuple[int, int]:
    wal = path.with_name(path.name + ".wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def _require_database(db_path: str | Path) -> Path:
    path = Path(db_path)
    if not path.exists():
        raise LifecycleError(f"no database at {path}")
    if not path.is_file():
        raise LifecycleError(f"{path} is not a file")
    return path


def info(db_path: str | Path) -> DatabaseInfo:
    """Schema version, applied migrations, row counts of every public view and table, and file size."""
    path = _require_database(db_path)
    with read_connection(path) as con:
        migrations = [str(r[0]) for r in con.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()]
        version = schema_version(con)
        views = row_counts(con, public_views(con))
        tables = row_counts(con, base_tables(con))
    file_bytes, wal_bytes = _file_sizes(path)
    return DatabaseInfo(path, version, migrations, views, tables, file_bytes, wal_bytes)


# ----------------------------------------------------------------------------------------- retention


def prune(
    db_path: str | Path,
    raw_days: int = DEFAULT_RAW_DAYS,
    events_days: int = DEFAULT_EVENTS_DAYS,
    now: datetime | None = None,
) -> PruneResult:
    """Apply retention (the collectors' own `writes.prune`) and report the rows removed per table."""
    if raw_days < 1 or events_days < 1:
        raise LifecycleError("retention days must be whole numbers >= 1")
    path = _require_database(db_path)
    with read_connection(path):
        pass  # refuses a file that is not a migrated store before we open it for writing
    if now is None:
        current = datetime.now(UTC).replace(tzinfo=None)
    else:
        current = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now  # storage is naive UTC
    raw_before, events_before = writes.retention_cutoffs(current, raw_days, events_days)
    pruned = ("raw_landing", "usage_event_log")
    with write_transaction(path) as con:
        _quiet(con)
        before = row_counts(con, list(pruned))
        total = writes.prune(con, raw_before=raw_before, events_before=events_before)
        after = row_counts(con, list(pruned))
    removed = {name: before[name] - after[name] for name in pruned}
    if sum(removed.values()) != total:
        raise LifecycleError(f"retention removed {total} rows but the tables shrank by {sum(removed.values())}")
    return PruneResult(raw_before, events_before, removed)


# ----------------------------------------------------------------------------------------- backup


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


def backup(db_path: str | Path, out_dir: str | Path) -> BackupResult:
    """EXPORT DATABASE to Parquet in a staging folder, add a manifest, then move it into place.

    A failed backup leaves no folder behind; an existing non-empty folder is never written into.
    """
    began = time.monotonic()
    path = _require_database(db_path)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LifecycleError(f"{out} already exists and is not an empty folder: choose a new backup folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.with_name(f".{out.name}.partial-{os.getpid()}")
    _remove_tree(stage)
    try:
        with read_connection(path) as con:
            _quiet(con)
            # One snapshot for the counts and the export, so the manifest describes exactly what was written.
            con.execute("BEGIN TRANSACTION").fetchall()
            version = schema_version(con)
            migrations = [
                str(r[0]) for r in con.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()
            ]
            tables = row_counts(con, base_tables(con))
            views = row_counts(con, public_views(con))
            con.execute(f"EXPORT DATABASE {_quote_literal(str(stage))} (FORMAT parquet)").fetchall()
            con.execute("COMMIT").fetchall()
        files = {
            entry.name: {"bytes": entry.stat().st_size, "sha256": _sha256(entry)}
            for entry in sorted(stage.iterdir())
            if entry.is_file()
        }
        manifest = {
            "format": BACKUP_FORMAT,
            "format_version": BACKUP_FORMAT_VERSION,
            "schema_version": version,
            "migrations": migrations,
            "created_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
            "source": str(path.resolve()),
            "duckdb_version": duckdb.__version__,
            "tables": tables,
            "views": views,
            "files": files,
        }
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(stage, out)
    except duckdb.Error as exc:
        raise LifecycleError(f"backup of {path} failed: {_first_line(exc)}") from exc
    finally:
        _remove_tree(stage)
    total = sum(int(f["bytes"]) for f in files.values())
    return BackupResult(out, version, tables, total, time.monotonic() - began)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_manifest(backup_dir: str | Path) -> dict[str, Any]:
    """Load and check a backup folder: manifest present and ours, every file present with its checksum."""
    folder = Path(backup_dir)
    if not folder.exists():
        raise LifecycleError(f"no backup at {folder}")
    if not folder.is_dir():
        raise LifecycleError(f"{folder} is not a folder")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise LifecycleError(f"{folder} has no {MANIFEST}: not a backup made by `python -m store backup`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LifecycleError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise LifecycleError(f"{manifest_path} is not a store backup manifest")
    if manifest.get("format_version") != BACKUP_FORMAT_VERSION:
        raise LifecycleError(f"backup format version {manifest.get('format_version')!r} is not supported")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > latest_schema_version():
        raise LifecycleError(
            f"backup has schema version {version!r}; this code knows up to {latest_schema_version()}: upgrade first"
        )
    files, tables = manifest.get("files"), manifest.get("tables")
    if not isinstance(files, dict) or not isinstance(tables, dict) or "load.sql" not in files:
        raise LifecycleError(f"{manifest_path} lists no files or tables")
    for name, meta in files.items():
        entry = folder / str(name)
        if Path(str(name)).name != name or not isinstance(meta, dict):
            raise LifecycleError(f"{manifest_path} lists a bad file entry {name!r}")
        if not entry.is_file():
            raise LifecycleError(f"backup {folder} is incomplete: {name} is missing")
        if entry.stat().st_size != meta.get("bytes") or _sha256(entry) != meta.get("sha256"):
            raise LifecycleError(f"backup {folder} is damaged: {name} does not match its checksum")
    return manifest


def restore(backup_dir: str | Path, db_path: str | Path, force: bool = False) -> RestoreResult:
    """IMPORT DATABASE into a staging file, upgrade and verify it, then move it into place.

    Refuses an existing target unless `force`; even then the previous file is kept beside it.
    A failed restore leaves no file behind.
    """
    began = time.monotonic()
    manifest = read_manifest(backup_dir)
    folder = Path(backup_dir)
    target = Path(db_path)
    if target.exists() and not force:
        raise LifecycleError(f"{target} already exists: restore into a new file, or pass --force to replace it")
    if target.exists() and not target.is_file():
        raise LifecycleError(f"{target} is not a file")
    if target.exists():
        _ensure_not_in_use(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.with_name(f".{target.name}.restoring-{os.getpid()}")
    stage_files = (stage, stage.with_name(stage.name + ".wal"))
    for leftover in stage_files:
        leftover.unlink(missing_ok=True)
    previous: Path | None = None
    try:
        con = duckdb.connect(str(stage))
        try:
            _quiet(con)
            con.execute(f"IMPORT DATABASE {_quote_literal(str(folder))}").fetchall()
            upgraded = apply_migrations(con)
            tables = row_counts(con, base_tables(con))
            views = row_counts(con, public_views(con))
            version = schema_version(con)
        finally:
            con.close()
        expected = {str(k): int(v) for k, v in manifest["tables"].items()}
        if upgraded:
            expected.pop("schema_migrations", None)
            tables_checked = {k: v for k, v in tables.items() if k in expected}
        else:
            tables_checked = tables
        if tables_checked != expected:
            diff = sorted(
                f"{name}: backup {expected.get(name)} restored {tables_checked.get(name)}"
                for name in set(expected) | set(tables_checked)
                if expected.get(name) != tables_checked.get(name)
            )
            raise LifecycleError("restored row counts differ from the manifest: " + "; ".join(diff[:5]))
        expected_views = {str(k): int(v) for k, v in manifest.get("views", {}).items()}
        if not upgraded and expected_views and views != expected_views:
            raise LifecycleError("restored public views differ from the manifest's row counts")
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            previous = target.with_name(f"{target.name}.before-restore-{stamp}")
            os.replace(target, previous)
            wal = target.with_name(target.name + ".wal")
            if wal.exists():
                os.replace(wal, previous.with_name(previous.name + ".wal"))
        os.replace(stage, target)
    except duckdb.Error as exc:
        raise LifecycleError(f"restore from {folder} failed: {_first_line(exc)}") from exc
    finally:
        for leftover in stage_files:
            leftover.unlink(missing_ok=True)
    return RestoreResult(target, version, tables, upgraded, previous, time.monotonic() - began)


def _ensure_not_in_use(target: Path) -> None:
    """Replacing a file another process holds open would silently lose that process's writes."""
    try:
        con = duckdb.connect(str(target))
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise LifecycleError(f"{target} is in use by another process: stop it before restoring over it") from exc
        raise LifecycleError(f"{target} is not a DuckDB database we can replace safely: {_first_line(exc)}") from exc
    con.close()


__all__ = [
    "DEFAULT_EVENTS_DAYS",
    "DEFAULT_RAW_DAYS",
    "BackupResult",
    "DatabaseInfo",
    "LifecycleError",
    "PruneResult",
    "RestoreResult",
    "StoreNotReady",
    "backup",
    "info",
    "prune",
    "read_manifest",
    "restore",
]
