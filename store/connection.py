"""Short-lived DuckDB connections with lock-contention retry, so one writer and many readers coexist."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from private_files import make_private_dir, secure_file
from store.migrations import apply_migrations, is_migrated

# DuckDB locks the whole file per process; a collector write or a dashboard read holds it
# for milliseconds, so waiting a little is always better than failing.
LOCK_RETRY_SECONDS = 30.0
_migrated_paths: set[str] = set()
# DuckDB shares one database instance per process; serializing our own writers avoids
# transaction conflicts between scheduler jobs running side by side.
_write_lock = threading.RLock()


class StoreError(Exception):
    """A store problem worth one clear line to the user (never a traceback)."""


class StoreNotReady(StoreError):
    """The database file does not exist yet or has never been collected into."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    if "different configuration than existing connections" in text or "Unique file handle conflict" in text:
        # Same process: a read-only open while our own writer holds the file (or the reverse), e.g. serve
        # loading cursors while another endpoint's batch commits, or two threads attaching the file at the
        # same instant (the results refresh reading while a collection opens it). It passes the same way.
        return True
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text)


def _open(path: str, read_only: bool, deadline_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + deadline_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                if _is_lock_error(exc):
                    raise StoreError(f"database {path} stayed locked for {deadline_s:.0f}s") from exc
                raise StoreError(f"cannot open database {path}: {exc}") from exc
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.5)


@contextlib.contextmanager
def write_transaction(
    db_path: str | Path, deadline_s: float = LOCK_RETRY_SECONDS, schema: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database read-write (migrating it once per process), run one transaction, close.

    `schema` (idempotent DDL) replaces the migrations for a file that is not the collector's database.
    """
    path = str(db_path)
    make_private_dir(Path(path).parent)
    with _write_lock:
        created = not Path(path).exists()
        con = _open(path, read_only=False, deadline_s=deadline_s)
        try:
            if created:  # owner-only, whatever the caller's umask (entry points also set one for the WAL)
                secure_file(path)
            if schema is not None:
                con.execute(schema).fetchall()
            elif path not in _migrated_paths:
                apply_migrations(con)
                _migrated_paths.add(path)
            con.execute("BEGIN TRANSACTION").fetchall()
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK").fetchall()
                raise
            con.execute("COMMIT").fetchall()
        finally:
            con.close()


@dataclass(frozen=True)
class Snapshot:
    """One open read-only connection: every read given it sees the same committed state of the file."""

    con: duckdb.DuckDBPyConnection
    path: Path


Source = str | Path | Snapshot  # where a read function reads: a database file, or an open snapshot of one


@contextlib.contextmanager
def snapshot(db_path: str | Path, deadline_s: float = LOCK_RETRY_SECONDS) -> Iterator[Snapshot]:
    """A consistent view for several reads (the weekly review, a results refresh): one connection for all.

    No other process can write the file while it is open, so keep it short: read, then compute.
    """
    with read_connection(db_path, deadline_s) as con:
        yield Snapshot(con, Path(db_path))


@contextlib.contextmanager
def reading(source: Source) -> Iterator[duckdb.DuckDBPyConnection]:
    """The connection a read runs on: the snapshot's, or a short-lived one of its own."""
    if isinstance(source, Snapshot):
        yield source.con
        return
    with read_connection(source) as con:
        yield con


@contextlib.contextmanager
def read_connection(db_path: str | Path, deadline_s: float = LOCK_RETRY_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database read-only for one short read; fails clearly if it was never collected into."""
    path = str(db_path)
    if not Path(path).exists():
        raise StoreNotReady(f"no database at {path} yet: run the collector first")
    con = _open(path, read_only=True, deadline_s=deadline_s)
    try:
        if not is_migrated(con):
            raise StoreNotReady(f"database {path} has no collected data yet")
        yield con
    finally:
        con.close()
