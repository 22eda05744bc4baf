"""Data lifecycle: retention, backup (Parquet per table + signed manifest), restore that runs nothing it reads, info."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from private_files import make_private_dir, secure_file, write_private
from store import writes
from store.connection import StoreError, StoreNotReady, read_connection, write_transaction
from store.migrations import apply_migrations, migration_files
from store.results import first_row

MANIFEST = "manifest.json"
BACKUP_FORMAT = "rbv-store-backup"
# 1: EXPORT DATABASE (Parquet plus schema.sql / load.sql, which restore never runs); 2: one Parquet per table.
BACKUP_FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
MAX_MANIFEST_BYTES = 16 << 20
SIGNING_KEY_ENV = "RBV_BACKUP_KEY"
MIN_SIGNING_KEY_LENGTH = 16
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Ids the collectors draw from sequences: (sequence, table, id column). A restored sequence resumes past both.
SEQUENCE_COLUMNS = (
    ("run_seq", "run_log", "run_id"),
    ("landing_seq", "raw_landing", "landing_id"),
    ("quarantine_seq", "quarantine_log", "quarantine_id"),
    ("smoke_check_seq", "smoke_check_log", "check_id"),
    ("key_action_seq", "key_action_log", "action_id"),
)
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


# Result tables (findings the collector's refresh computed from the collected rows) are derived data: a backup
# leaves them out, and a restored database has none until the next refresh (pages compute on the fly meanwhile).
DERIVED_PREFIX = "result_"


def backed_up_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables a backup holds: ours, less the derived result tables."""
    return [name for name in base_tables(con) if not name.startswith(DERIVED_PREFIX)]


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


def _signing_key() -> bytes | None:
    """RBV_BACKUP_KEY: the HMAC key that signs manifests at backup and must verify them at restore."""
    value = os.environ.get(SIGNING_KEY_ENV, "")
    if not value:
        return None
    if len(value) < MIN_SIGNING_KEY_LENGTH:
        raise LifecycleError(f"{SIGNING_KEY_ENV} must be at least {MIN_SIGNING_KEY_LENGTH} characters long")
    return value.encode("utf-8")


def _signed_text(manifest: dict[str, Any]) -> bytes:
    """The canonical bytes a signature covers: every manifest field except the signature itself."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _signature(manifest: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, _signed_text(manifest), hashlib.sha256).hexdigest()


def backup(db_path: str | Path, out_dir: str | Path) -> BackupResult:
    """One Parquet file per table, from one snapshot, in a staging folder; a manifest; then moved into place.

    The manifest lists every file with its size and SHA-256, and is HMAC-signed when RBV_BACKUP_KEY is set.
    A failed backup leaves no folder behind; an existing non-empty folder is never written into.
    Folder and files are owner-only (see private_files).
    """
    began = time.monotonic()
    path = _require_database(db_path)
    key = _signing_key()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LifecycleError(f"{out} already exists and is not an empty folder: choose a new backup folder")
    make_private_dir(out.parent)
    stage = out.with_name(f".{out.name}.partial-{os.getpid()}")
    _remove_tree(stage)
    try:
        make_private_dir(stage)
        with read_connection(path) as con:
            _quiet(con)
            # One snapshot for the counts and the files, so the manifest describes exactly what was written.
            con.execute("BEGIN TRANSACTION").fetchall()
            version = schema_version(con)
            migrations = [
                str(r[0]) for r in con.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()
            ]
            names = backed_up_tables(con)
            tables = row_counts(con, names)
            views = row_counts(con, public_views(con))
            sequences = {
                str(name): int(last or 0)
                for name, last in con.execute(
                    "SELECT sequence_name, last_value FROM duckdb_sequences() "
                    "WHERE database_name = current_database() AND NOT temporary"
                ).fetchall()
            }
            for name in names:
                target = _quote_literal(str(stage / _table_file(name)))
                con.execute(f"COPY (SELECT * FROM {_quote_ident(name)}) TO {target} (FORMAT parquet)").fetchall()
            con.execute("COMMIT").fetchall()
        files = {}
        for entry in sorted(stage.iterdir()):
            secure_file(entry)
            files[entry.name] = {"bytes": entry.stat().st_size, "sha256": _sha256(entry)}
        manifest: dict[str, Any] = {
            "format": BACKUP_FORMAT,
            "format_version": BACKUP_FORMAT_VERSION,
            "schema_version": version,
            "migrations": migrations,
            "created_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
            "source": str(path.resolve()),
            "duckdb_version": duckdb.__version__,
            "tables": tables,
            "views": views,
            "sequences": sequences,
            "files": files,
        }
        if key is not None:
            manifest["signature"] = {"algorithm": "hmac-sha256", "value": _signature(manifest, key)}
        write_private(stage / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n", replace=False)
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


def _table_file(table: str) -> str:
    return f"{table}.parquet"


def _check_signature(manifest: dict[str, Any], manifest_path: Path) -> None:
    """With RBV_BACKUP_KEY set, only a manifest signed with it passes; a signed one needs the key to pass."""
    key = _signing_key()
    signature = manifest.get("signature")
    if key is None:
        if signature is not None:
            raise LifecycleError(
                f"{manifest_path} is signed: set {SIGNING_KEY_ENV} to the key it was signed with to verify it"
            )
        return
    if signature is None:
        raise LifecycleError(
            f"{manifest_path} is not signed but {SIGNING_KEY_ENV} is set: refusing a backup that cannot be verified "
            f"(unset {SIGNING_KEY_ENV} to restore it on its checksums alone)"
        )
    value = signature.get("value") if isinstance(signature, dict) else None
    if not isinstance(value, str) or not hmac.compare_digest(value, _signature(manifest, key)):
        raise LifecycleError(
            f"{manifest_path}: the signature does not match: the backup was changed after it was made, "
            f"or signed with another {SIGNING_KEY_ENV}"
        )


def read_manifest(backup_dir: str | Path) -> dict[str, Any]:
    """Load and check a backup folder before anything in it is used.

    The manifest must be ours, signed when RBV_BACKUP_KEY is set, and list every file in the folder (and
    nothing else) with its size and checksum; every table it names must have its Parquet file.
    """
    folder = Path(backup_dir)
    if not folder.exists():
        raise LifecycleError(f"no backup at {folder}")
    if not folder.is_dir():
        raise LifecycleError(f"{folder} is not a folder")
    manifest_path = folder / MANIFEST
    if manifest_path.is_symlink() or not manifest_path.is_file():
        raise LifecycleError(f"{folder} has no {MANIFEST}: not a backup made by `python -m store backup`")
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise LifecycleError(f"{manifest_path} is too large to be a store backup manifest")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LifecycleError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise LifecycleError(f"{manifest_path} is not a store backup manifest")
    if manifest.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise LifecycleError(f"backup format version {manifest.get('format_version')!r} is not supported")
    _check_signature(manifest, manifest_path)
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > latest_schema_version():
        raise LifecycleError(
            f"backup has schema version {version!r}; this code knows up to {latest_schema_version()}: upgrade first"
        )
    files, tables = manifest.get("files"), manifest.get("tables")
    if not isinstance(files, dict) or not isinstance(tables, dict) or not files or not tables:
        raise LifecycleError(f"{manifest_path} lists no files or tables")
    for name, count in tables.items():
        if not _TABLE_NAME.fullmatch(str(name)) or not isinstance(count, int) or isinstance(count, bool):
            raise LifecycleError(f"{manifest_path} lists a bad table entry {str(name)[:60]!r}")
        if _table_file(name) not in files:
            raise LifecycleError(f"{manifest_path} lists table {name} but not its file {_table_file(name)}")
    present = {entry.name for entry in folder.iterdir()} - {MANIFEST}
    unlisted = sorted(present - {str(name) for name in files})
    if unlisted:
        shown = ", ".join(unlisted[:3]) + (" …" if len(unlisted) > 3 else "")
        raise LifecycleError(
            f"backup {folder} holds files its manifest does not list ({shown}): it was changed after it was made"
        )
    for name, meta in files.items():
        entry = folder / str(name)
        if Path(str(name)).name != name or name in (".", "..", MANIFEST) or not isinstance(meta, dict):
            raise LifecycleError(f"{manifest_path} lists a bad file entry {str(name)[:60]!r}")
        if entry.is_symlink() or (entry.exists() and not entry.is_file()):
            raise LifecycleError(f"backup {folder} is damaged: {name} is not a plain file")
        if not entry.is_file():
            raise LifecycleError(f"backup {folder} is incomplete: {name} is missing")
        if entry.stat().st_size != meta.get("bytes") or _sha256(entry) != meta.get("sha256"):
            raise LifecycleError(f"backup {folder} is damaged: {name} does not match its checksum")
    return manifest


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        str(r[0])
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
    ]


def _load_tables(con: duckdb.DuckDBPyConnection, folder: Path, manifest: dict[str, Any]) -> None:
    """Fill the tables our own migrations created, each from its Parquet file, by column name.

    Nothing in the folder is executed: the connection may read only that folder and write nowhere else
    (DuckDB's allowed_directories with external access off), and only known tables receive rows.
    """
    known = backed_up_tables(con)
    # A backup that holds derived result tables (an older format's EXPORT DATABASE) restores without them.
    listed = {str(name) for name in manifest["tables"] if not str(name).startswith(DERIVED_PREFIX)}
    unknown, missing = sorted(listed - set(known)), sorted(set(known) - listed)
    if unknown or missing:
        problem = f"tables this version does not know ({', '.join(unknown[:5])})" if unknown else ""
        problem += ("; " if unknown and missing else "") + (
            f"no data for tables ({', '.join(missing[:5])})" if missing else ""
        )
        raise LifecycleError(f"backup {folder} does not match this version's schema: {problem}")
    where = folder.resolve()
    con.execute(f"SET allowed_directories = [{_quote_literal(str(where))}]").fetchall()
    con.execute("SET enable_external_access = false").fetchall()
    for table in known:
        source = str(where / _table_file(table))
        columns = _columns(con, table)
        found = [str(r[0]) for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [source]).fetchall()]
        if sorted(found) != sorted(columns):
            raise LifecycleError(
                f"backup {folder} is damaged: {_table_file(table)} has columns that do not match table {table}"
            )
        names = ", ".join(_quote_ident(c) for c in columns)
        if table == "schema_migrations":  # the backup's own history (with its applied_at) replaces ours
            con.execute("DELETE FROM schema_migrations").fetchall()
        con.execute(f"INSERT INTO {_quote_ident(table)} ({names}) SELECT {names} FROM read_parquet(?)", [source])


def _continue_sequences(con: duckdb.DuckDBPyConnection, recorded: dict[str, Any]) -> None:
    """Each sequence resumes after both the value the backup recorded and the highest id restored."""
    for name, table, column in SEQUENCE_COLUMNS:
        row = first_row(con.execute(f"SELECT max({_quote_ident(column)}) FROM {_quote_ident(table)}"))
        highest = int(row[0]) if row and row[0] is not None else 0
        last = recorded.get(name, 0)
        last = int(last) if isinstance(last, int) and not isinstance(last, bool) else 0
        con.execute(f"CREATE OR REPLACE SEQUENCE {_quote_ident(name)} START {max(highest, last) + 1}").fetchall()


def restore(backup_dir: str | Path, db_path: str | Path, force: bool = False) -> RestoreResult:
    """Rebuild a database from a verified backup in a staging file, upgrade and check it, then move it into place.

    The schema comes from this code's migrations (up to the backup's version), the rows from the backup's
    Parquet files into known tables only, and later migrations upgrade it; nothing in the backup folder is
    executed. Refuses an existing target unless `force`; even then the previous file is kept beside it.
    A failed restore leaves no file behind.
    """
    began = time.monotonic()
    manifest = read_manifest(backup_dir)
    folder = Path(backup_dir)
    version = int(manifest["schema_version"])
    ours = [name for number, name, _ in migration_files() if number <= version]
    if manifest.get("migrations") != ours:
        raise LifecycleError(
            f"backup {folder} was made with migrations this code does not ship: it cannot be rebuilt from them"
        )
    target = Path(db_path)
    if target.exists() and not force:
        raise LifecycleError(f"{target} already exists: restore into a new file, or pass --force to replace it")
    if target.exists() and not target.is_file():
        raise LifecycleError(f"{target} is not a file")
    if target.exists():
        _ensure_not_in_use(target)
    make_private_dir(target.parent)
    stage = target.with_name(f".{target.name}.restoring-{os.getpid()}")
    stage_files = (stage, stage.with_name(stage.name + ".wal"))
    for leftover in stage_files:
        leftover.unlink(missing_ok=True)
    previous: Path | None = None
    try:
        con = duckdb.connect(str(stage))
        secure_file(stage)
        try:
            _quiet(con)
            apply_migrations(con, up_to=version)
            _load_tables(con, folder, manifest)
            history = [str(r[0]) for r in con.execute("SELECT name FROM schema_migrations ORDER BY version").fetchall()]
            if history != ours:
                raise LifecycleError(f"backup {folder}: its schema_migrations rows do not match its manifest")
            _continue_sequences(con, manifest.get("sequences") or {})
            upgraded = apply_migrations(con)
            tables = row_counts(con, backed_up_tables(con))
            views = row_counts(con, public_views(con))
            version = schema_version(con)
        finally:
            con.close()
        expected = {str(k): int(v) for k, v in manifest["tables"].items() if not str(k).startswith(DERIVED_PREFIX)}
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
