"""Partitioned export: the public views of one or many collector files (the shards of a fleet) as Hive-partitioned
Parquet, with a manifest; DuckDB, Dask or any Parquet reader reads the folder directly (store.parquet).

Each view goes to `OUT/<view>/` — the big per-key ones split by `day=YYYY-MM-DD` and by key-hash `bucket=N`
(store.parquet.VIEWS) — rows in a fixed order, so the same data and settings give byte-identical files: an export run
again leaves unchanged partitions untouched (same checksum, same file), replaces changed ones one file at a
time (written beside, then renamed), removes partitions that no longer exist, and writes the manifest last.
Only public views are exported: they hold fingerprints and masked keys, never a secret; raw bodies and the
collector's internal tables stay in the files. Files are owner-only (private_files).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from private_files import dir_mode, make_private_dir, secure_file, write_private
from store.connection import LOCK_RETRY_SECONDS, StoreError, _is_lock_error, read_connection
from store.parquet import FORMAT, FORMAT_VERSION, MANIFEST, VIEWS, ViewSpec

DEFAULT_BUCKETS = 16


class ExportError(StoreError):
    """The sources cannot be exported together (one line, never a traceback)."""


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    views: dict[str, int]  # rows per view
    files_written: int
    files_kept: int
    files_removed: int
    shards: list[str]
    seconds: float

    def line(self) -> str:
        rows = sum(self.views.values())
        return (
            f"exported {len(self.views)} views ({rows:,} rows) of {len(self.shards)} file(s) "
            f"(shards {', '.join(self.shards)}) to {self.out_dir}: {self.files_written} partition file(s) written, "
            f"{self.files_kept} unchanged, {self.files_removed} removed in {self.seconds:.1f} s"
        )

    def missing_shards(self) -> list[str]:
        """Shards of the split that were not given: their keys are not in the export."""
        count = int(self.shards[0].split("/")[1])
        given = {s.split("/")[0] for s in self.shards}
        return [f"{i}/{count}" for i in range(count) if str(i) not in given]


def bucket_sql(column: str, buckets: int) -> str:
    """A key's bucket from its name alone (the first 8 bytes of a SHA-256, modulo `buckets`): the same in
    every export and every DuckDB version, so re-exports keep a key's rows in the same partition."""
    return f"CAST(('0x' || substr(sha256('rbv-bucket:' || {column}), 1, 16)) AS UBIGINT) % {int(buckets)}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shard_of_file(con: duckdb.DuckDBPyConnection, alias: str, path: str) -> tuple[int, int]:
    try:
        row = con.execute(f"SELECT shard, shards FROM {alias}.collector_shard").fetchall()
    except duckdb.CatalogException:
        raise ExportError(f"{path} is not a collector database of this version (run a collector on it once)") from None
    return (int(row[0][0]), int(row[0][1])) if row else (0, 1)


def _check_shards(shards: list[tuple[int, int]], paths: Sequence[str]) -> None:
    counts = {n for _, n in shards}
    if len(counts) > 1:
        raise ExportError("the files are shards of different splits (" + ", ".join(f"{i}/{n}" for i, n in shards) + ")")
    seen: dict[tuple[int, int], str] = {}
    for shard, path in zip(shards, paths, strict=True):
        if shard in seen:
            raise ExportError(f"{path} and {seen[shard]} both hold shard {shard[0]}/{shard[1]}")
        seen[shard] = path


def _attach(con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> list[tuple[int, int]]:
    shards = []
    for n, path in enumerate(paths):
        if Path(path).is_dir():
            raise ExportError(f"{path} is a folder: give the collectors' DuckDB files")
        with read_connection(path):  # fails clearly on a missing or never-collected file (and lock retry)
            pass
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while True:  # a collector may take the file between that check and this attach: wait as readers do
            try:
                con.execute(f"ATTACH {_quote(path)} AS src{n} (READ_ONLY)").fetchall()
                break
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05 + random.random() * 0.2)
        shards.append(_shard_of_file(con, f"src{n}", path))
    return shards


def _source_sql(con: duckdb.DuckDBPyConnection, view: str, shards: list[tuple[int, int]]) -> str:
    """The view over every source: unioned, with `shard` for per-file rows, account-wide rows deduplicated."""
    spec = VIEWS[view]
    parts = []
    for n, (i, count) in enumerate(shards):
        extra = f", '{i}/{count}' AS shard" if spec.per_shard else ""
        parts.append(f"SELECT *{extra} FROM src{n}.{view}")
    union = " UNION ALL ".join(parts)
    if spec.account_wide:
        key = spec.account_wide
        return f"SELECT * FROM ({union}) QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY fetched_at DESC) = 1"
    return union


def export(
    db_paths: Sequence[str | Path],
    out_dir: str | Path,
    buckets: int = DEFAULT_BUCKETS,
    now: datetime | None = None,
    memory_limit: str = "256MB",
) -> ExportResult:
    """Export the public views of `db_paths` (one file, or the shards of one fleet) into `out_dir`."""
    began = time.monotonic()
    paths = [str(p) for p in db_paths]
    if not paths:
        raise ExportError("no --db given")
    if not 1 <= buckets <= 256:
        raise ExportError("--buckets must be in 1..256")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file: give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ExportError(f"--out {out} is a folder with other files in it: give a new or an export's folder")
    created = not out.exists()
    staging = out / f".staging-{os.getpid()}"
    con = duckdb.connect()
    written = kept = removed = 0
    views: dict[str, dict] = {}
    try:
        con.execute("SET threads = 1").fetchall()  # one writer per partition, rows in the order asked: same bytes
        con.execute("SET preserve_insertion_order = true").fetchall()
        con.execute("SET enable_progress_bar = false").fetchall()
        # The sorts behind each COPY spill to disk beyond this, so memory stays flat whatever the key count.
        con.execute(f"SET memory_limit = '{memory_limit}'").fetchall()
        shards = _attach(con, paths)
        _check_shards(shards, paths)
        make_private_dir(out)  # only once the sources are known to be good: bad input leaves nothing behind
        shutil.rmtree(staging, ignore_errors=True)
        make_private_dir(staging)
        con.execute(f"SET temp_directory = {_quote(str(staging / '.spill'))}").fetchall()
        dupes = con.execute(
            "SELECT key_name, count(*) FROM ("
            + " UNION ALL ".join(f"SELECT key_name FROM src{n}.keys" for n in range(len(paths)))
            + ") GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 1"
        ).fetchall()
        if dupes:
            raise ExportError(f"key {dupes[0][0]} is in {dupes[0][1]} of the files: shards must not share keys")
        # A bucket for every key name any view holds (rows of keys no longer configured too).
        names = " UNION ".join(
            f"SELECT key_name FROM src{n}.{view}"
            for n in range(len(paths))
            for view in VIEWS
            if "bucket" in VIEWS[view].partition and view != "job_status_history"  # its job's key (below)
        )
        con.execute(
            f"CREATE TEMP TABLE key_bucket AS SELECT key_name, {bucket_sql('key_name', buckets)} AS bucket "
            f"FROM ({names}) WHERE key_name IS NOT NULL"
        ).fetchall()
        for view, spec in VIEWS.items():
            try:
                source = _source_sql(con, view, shards)
                con.execute(f"SELECT * FROM ({source}) LIMIT 0").fetchall()
            except duckdb.CatalogException:
                raise ExportError(
                    f"the files have no public view {view}: run this version's collector on them once"
                ) from None
            views[view] = _export_view(con, view, spec, source, staging)
        for view, entry in views.items():
            w, k, r = _install(out / view, staging / view, {f["path"] for f in entry["files"]})
            written, kept, removed = written + w, kept + k, removed + r
            for f in entry["files"]:
                f["path"] = f"{view}/{f['path']}"
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "exported_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
            "sources": [{"file": Path(p).name, "shard": f"{i}/{n}"} for p, (i, n) in zip(paths, shards, strict=True)],
            "shards": {"count": shards[0][1], "present": sorted(i for i, _ in shards)},
            "buckets": buckets,
            "views": views,
        }
        write_private(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True), replace=True)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not (out / MANIFEST).exists():
            shutil.rmtree(out, ignore_errors=True)  # a first export that failed leaves no half-written folder
        if isinstance(exc, duckdb.Error):
            raise ExportError(f"export failed: {str(exc).splitlines()[0]}") from None
        raise
    finally:
        con.close()
    shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(
        out,
        {v: e["rows"] for v, e in views.items()},
        written,
        kept,
        removed,
        [f"{i}/{n}" for i, n in shards],
        time.monotonic() - began,
    )


def _export_view(con: duckdb.DuckDBPyConnection, view: str, spec: ViewSpec, source: str, staging: Path) -> dict:
    """COPY one view into `staging/<view>` (partitioned as its spec says); its manifest entry."""
    target = staging / view
    make_private_dir(target)
    described = con.execute(f"DESCRIBE SELECT * FROM ({source})").fetchall()
    columns, types = [r[0] for r in described], [r[1] for r in described]
    select = f"SELECT s.* FROM ({source}) s"
    derived = []
    if "day" in spec.partition:
        derived.append(f"CAST(s.{spec.day} AS DATE) AS day")
    if "bucket" in spec.partition:
        if "key_name" in columns:
            select = f"SELECT s.*, b.bucket FROM ({source}) s LEFT JOIN key_bucket b USING (key_name)"
        else:  # job_status_history: its job's key
            select = _status_with_bucket(con, source)
    if derived:
        select = f"SELECT *, {', '.join(d.replace('s.', 'q.') for d in derived)} FROM ({select}) q"
    rows = int(con.execute(f"SELECT count(*) FROM ({source})").fetchall()[0][0])
    files: list[dict] = []
    if rows:
        order = spec.order
        options = "FORMAT parquet, COMPRESSION zstd"
        if spec.partition:
            options += f", PARTITION_BY ({', '.join(spec.partition)}), FILENAME_PATTERN 'part{{i}}'"
            con.execute(f"COPY ({select} ORDER BY {order}) TO {_quote(str(target))} ({options})").fetchall()
        else:
            con.execute(
                f"COPY ({select} ORDER BY {order}) TO {_quote(str(target / 'part0.parquet'))} ({options})"
            ).fetchall()
        for path in sorted(target.rglob("*.parquet")):
            secure_file(path)
            for parent in path.relative_to(target).parents:
                if str(parent) != ".":
                    os.chmod(target / parent, dir_mode())  # folders DuckDB made: owner-only like ours
            count = int(con.execute(f"SELECT count(*) FROM read_parquet({_quote(str(path))})").fetchall()[0][0])
            files.append({"path": str(path.relative_to(target)), "rows": count, "sha256": _sha256(path)})
    return {"columns": columns, "types": types, "partition": list(spec.partition), "rows": rows, "files": files}


def _status_with_bucket(con: duckdb.DuckDBPyConnection, source: str) -> str:
    jobs = " UNION ALL ".join(
        f"SELECT job_id, key_name FROM {alias}.jobs"
        for (alias,) in con.execute(
            "SELECT database_name FROM duckdb_databases() WHERE database_name LIKE 'src%' ORDER BY 1"
        ).fetchall()
    )
    return (
        f"SELECT s.*, b.bucket FROM ({source}) s LEFT JOIN ({jobs}) j USING (job_id) "
        "LEFT JOIN key_bucket b USING (key_name)"
    )


def _install(final: Path, staged: Path, wanted: set[str]) -> tuple[int, int, int]:
    """Move staged partition files into `final`: unchanged ones (same bytes) stay as they were."""
    written = kept = removed = 0
    make_private_dir(final)
    for rel in sorted(wanted):
        source, target = staged / rel, final / rel
        make_private_dir(target.parent)
        if target.is_file() and _sha256(target) == _sha256(source):
            kept += 1
            continue
        os.replace(source, target)
        written += 1
    for existing in sorted(final.rglob("*.parquet")):
        if str(existing.relative_to(final)) not in wanted:
            existing.unlink()
            removed += 1
    for folder in sorted((p for p in final.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return written, kept, removed
