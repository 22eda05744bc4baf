"""A folder of exported Parquet (store.export) read like a collector's database: the public views over the
Parquet files, DuckDB reading them directly, plus the few internal names the store's reads use.

`open_parquet(folder)` gives a read-only, in-memory DuckDB connection on which every read function of the
store works (pages, CLIs and the service's use cases read it as they read a file); `buckets` restricts it to
some key-hash buckets (what one task of a distributed run reads). Stored results are not exported (they are
per file, and three shards' results are not the fleet's): the result tables exist, empty, so every question
is computed from the rows, and says so.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from store.connection import Snapshot, StoreError, StoreNotReady
from store.migrations import migration_files

MANIFEST = "manifest.json"
FORMAT = "rbv-parquet-export"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ViewSpec:
    """How one public view is exported: its Hive partition columns (`day`, `bucket`) and row order."""

    partition: tuple[str, ...] = ()
    day: str | None = None  # the column whose date is the `day` partition
    order: str = "ALL"
    per_shard: bool = False  # rows of one shard file's own runs: the export adds `shard` ('I/N') to tell them apart
    account_wide: str | None = None  # every shard reads the same rows: keep the newest per this key


# Every public view, in the README's order (and those later issues added). The big per-key ones are split by day
# and by key-hash bucket: a day's or a key group's rows are read without the rest.
VIEWS: dict[str, ViewSpec] = {
    "keys": ViewSpec(("bucket",), order="key_name"),
    "key_daily_usage": ViewSpec(("bucket",), order="key_name, day"),
    "summary_fetched": ViewSpec(("bucket",), order="key_name, day"),
    "key_last_used": ViewSpec(("bucket",), order="key_name"),
    "usage_events": ViewSpec(("day", "bucket"), day="occurred_at", order="occurred_at, event_id"),
    "jobs": ViewSpec(("day", "bucket"), day="created_at", order="created_at, job_id"),
    "job_status_history": ViewSpec(("bucket",), order="job_id, status"),
    "pricing": ViewSpec(order="model", account_wide="model"),
    "collector_runs": ViewSpec(order="shard, run_id", per_shard=True),
    "collector_run_items": ViewSpec(order="shard, run_id, key_name, endpoint", per_shard=True),
    "coverage_gaps": ViewSpec(("bucket",), order="key_name, endpoint, gap_start"),
    "quarantine": ViewSpec(order="shard, quarantine_id", per_shard=True),
    "admin_keys": ViewSpec(order="key_fingerprint", account_wide="key_fingerprint"),
    "collection_cursors": ViewSpec(("bucket",), order="key_name, endpoint"),
    "smoke_checks": ViewSpec(("bucket",), order="key_name, checked_at, check_id"),
    "key_actions": ViewSpec(("bucket",), order='key_name, "at", action_id'),
}

# The internal names the store's read queries use, as views over the exported public ones. Run ids are per
# shard file: (run_id, shard) become one id (run_id * 1024 + shard) so reads that join runs to their items,
# or take the newest run, stay right across shards.
_RUN_ID = "run_id * 1024 + CAST(split_part(shard, '/', 1) AS BIGINT)"
_INTERNAL = {
    "key_registry": "SELECT *, TRUE AS configured FROM keys",
    "usage_daily": "SELECT u.*, f.fetched_at FROM key_daily_usage u JOIN summary_fetched f USING (key_name, day)",
    "usage_event_log": "SELECT * FROM usage_events",
    "job_state": "SELECT * FROM jobs",
    "sync_state": "SELECT * FROM collection_cursors",
    "run_log": f"SELECT * REPLACE ({_RUN_ID} AS run_id) FROM collector_runs",
    "run_item_log": f"SELECT * REPLACE ({_RUN_ID} AS run_id) FROM collector_run_items",
    "coverage_gap_log": "SELECT * FROM coverage_gaps",
    "admin_inventory": "SELECT * FROM admin_keys",
    "smoke_check_log": "SELECT * RENAME (checked_at AS started_at) FROM smoke_checks",
    "key_action_log": "SELECT * FROM key_actions",
}
# Public views derived from the internal names above (not exported): created from their migration's own text.
_DERIVED = ("key_rotations",)


def _migration_view(name: str) -> str:
    """The CREATE VIEW statement of `name` as the migrations define it (the last definition wins)."""
    found = ""
    for _, _, sql in migration_files():
        match = re.search(rf"CREATE OR REPLACE VIEW {name} AS\s.*?;", sql, flags=re.S)
        found = match.group(0) if match else found
    if not found:
        raise StoreError(f"no migration defines the view {name}")
    return found


def is_export(path: str | Path) -> bool:
    """A folder holding an export's manifest."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise StoreNotReady(f"{folder} holds no export (no {MANIFEST}): run `python -m store export` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise StoreError(f"{path} is not an export this version reads ({FORMAT} v{FORMAT_VERSION})")
    try:
        _check_manifest(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path} is not a valid manifest: {exc}") from None
    return manifest


_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_TYPE = re.compile(r"[A-Z][A-Z0-9_ ]*(\(\d+(, ?\d+)?\))?")
_FILE = re.compile(r"[a-z_]+/([a-z_]+=[A-Za-z0-9_.:-]+/)*part\d+\.parquet")


def _check_manifest(manifest: dict) -> None:
    """Names, types and paths go into SQL and file reads: only the shapes an export writes are accepted."""
    if not isinstance(manifest["buckets"], int) or not 1 <= manifest["buckets"] <= 256:
        raise ValueError("buckets out of range")
    for name, entry in manifest["views"].items():
        if name not in VIEWS:
            continue
        if len(entry["columns"]) != len(entry["types"]):
            raise ValueError(f"view {name}: columns and types differ in number")
        for column in entry["columns"]:
            if not _NAME.fullmatch(column):
                raise ValueError(f"view {name}: column {column!r}")
        for kind in entry["types"]:
            if not _TYPE.fullmatch(kind):
                raise ValueError(f"view {name}: type {kind!r}")
        for file in entry["files"]:
            if not _FILE.fullmatch(file["path"]) or not file["path"].startswith(f"{name}/"):
                raise ValueError(f"view {name}: file {file['path']!r}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _typed_empty(columns: list[str], types: list[str]) -> str:
    """No rows, the view's columns and types (a view with no file, or a bucket without rows of it)."""
    typed = ", ".join(f'NULL::{t} AS "{c}"' for c, t in zip(columns, types, strict=True))
    return f"SELECT {typed} WHERE FALSE"


def _view_sql(folder: Path, name: str, entry: dict, buckets: Sequence[int] | None) -> str:
    """SELECT the view's columns from its files (its partition columns dropped: they are derived)."""
    spec = VIEWS[name]
    files = [f["path"] for f in entry["files"]]
    if buckets is not None and "bucket" in spec.partition:
        wanted = {f"bucket={b}" for b in buckets}
        files = [f for f in files if any(part in wanted for part in Path(f).parts)]
    if not files:
        return _typed_empty(entry["columns"], entry["types"])
    selected = ", ".join(f'"{c}"' for c in entry["columns"])
    paths = ", ".join(_quote(str(folder / f)) for f in files)
    hive = ", hive_partitioning = true" if spec.partition else ""
    return f"SELECT {selected} FROM read_parquet([{paths}]{hive}, union_by_name = true)"


def open_parquet(folder: str | Path, buckets: Sequence[int] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection whose views read the export in `folder` (only `buckets`, if given)."""
    root = Path(folder)
    manifest = read_manifest(root)
    con = duckdb.connect()
    try:
        # The connection reads that folder and nothing else, whatever its manifest says.
        con.execute(f"SET allowed_directories = [{_quote(str(root.resolve()))}]").fetchall()
        con.execute("SET enable_external_access = false").fetchall()
        for name, entry in manifest["views"].items():
            if name not in VIEWS:
                continue  # a view a newer version exported: this one does not read it
            sql = _view_sql(root, name, entry, buckets)
            con.execute(f'CREATE VIEW "{name}" AS {sql}').fetchall()
        for name, sql in _INTERNAL.items():
            con.execute(f'CREATE VIEW "{name}" AS {sql}').fetchall()
        for name in _DERIVED:
            con.execute(_migration_view(name)).fetchall()
        # The result tables (and the migrations table the store checks) exist, empty: nothing is stored here.
        for _, file_name, sql in migration_files():
            if "result" in file_name:
                con.execute(sql).fetchall()
        con.execute("CREATE TABLE schema_migrations (version INTEGER, name VARCHAR, applied_at TIMESTAMP)").fetchall()
        latest = migration_files()[-1][0]
        con.execute("INSERT INTO schema_migrations VALUES (?, 'parquet export', now()::TIMESTAMP)", [latest]).fetchall()
    except duckdb.Error as exc:
        con.close()
        raise StoreError(f"cannot read the export in {root}: {exc}") from None
    except BaseException:
        con.close()
        raise
    return con


def bucket_count(folder: str | Path) -> int:
    """How many key-hash buckets the export in `folder` was split into."""
    return int(read_manifest(folder)["buckets"])


@contextlib.contextmanager
def bucket_snapshot(folder: str | Path, buckets: Sequence[int]) -> Iterator[Snapshot]:
    """The export restricted to the keys of `buckets`, as a snapshot every read function of the store takes."""
    con = open_parquet(folder, buckets)
    try:
        yield Snapshot(con, Path(folder))
    finally:
        con.close()
