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

# DuckDB locks the whole file per process; a dashboard read holds it for milliseconds, the collector's store
# worker for a few seconds at most (collectors.store_worker.HOLD_S), so waiting is always better than failing.
LOCK_RETRY_SECONDS = 30.0
# Tries come at most 2 x this apart: shorter than the collector's store worker leaves the file closed for
# readers after holding it (collectors.store_worker.READER_WINDOW_S).
MAX_RETRY_DELAY_S = 0.15
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
        # Same process: a read-only open while our own writer holds the file (or the reverse, or while the
        # other is being opened or closed), e.g. serve refreshing results while another endpoint's run
        # starts. It passes the same way.
        return True
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text)


def _open(
    path: str, read_only: bool, deadline_s: float, config: dict[str, str] | None = None
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + deadline_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(path, read_only=read_only, config=config or {})
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                if _is_lock_error(exc):
                    raise StoreError(f"database {path} stayed locked for {deadline_s:.0f}s") from exc
                raise StoreError(f"cannot open database {path}: {exc}") from exc
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, MAX_RETRY_DELAY_S)


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit what the block wrote, or roll it back if the block raised."""
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise
    con.execute("COMMIT").fetchall()


@contextlib.contextmanager
def write_transaction(
    db_path: str | Path,
    deadline_s: float = LOCK_RETRY_SECONDS,
    schema: str | None = None,
    memory_limit: str | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database read-write (migrating it once per process), run one transaction, close.

    `schema` (idempotent DDL) replaces the migrations for a file that is not the collector's database;
    `memory_limit` (e.g. "256MB") bounds DuckDB's own memory for the transaction (it spills beyond).
    """
    path = str(db_path)
    make_private_dir(Path(path).parent)
    with _write_lock:
        created = not Path(path).exists()
        con = _open(
            path,
            read_only=False,
            deadline_s=deadline_s,
            config={"memory_limit": memory_limit} if memory_limit else None,
        )
        try:
            if created:  # owner-only, whatever the caller's umask (entry points also set one for the WAL)
                secure_file(path)
            if schema is not None:
                con.execute(schema).fetchall()
            elif path not in _migrated_paths:
                apply_migrations(con)
                _migrated_paths.add(path)
            with _transaction(con):
                yield con
        finally:
            con.close()


class HeldWriter:
    """One read-write connection kept open across many short transactions, by a process whose only job is
    writing one database (the collector's store worker).

    Closing a DuckDB file checkpoints it, and a checkpoint costs a fixed share plus one that grows with what
    was written since (and, with primary-key indexes, with the tables): a 10,000-key first collection spent 51
    of its writer's 93 s closing after every batch.
    Held, transactions only append to the write-ahead log (automatic checkpoints are raised out of the way)
    and the file is checkpointed when released. While held no other process can open the file, so the
    holder releases it after `hold_s` or when idle (see collectors.store_worker): readers, which retry for
    LOCK_RETRY_SECONDS, wait seconds at most.
    """

    def __init__(self, hold_s: float = 5.0, memory_limit: str | None = None, threads: int | None = None) -> None:
        self.hold_s, self.memory_limit, self.threads = hold_s, memory_limit, threads
        self._con: duckdb.DuckDBPyConnection | None = None
        self._path: str | None = None
        self._opened = 0.0

    @property
    def held(self) -> bool:
        return self._con is not None

    def due(self) -> bool:
        """Held for `hold_s` or longer: release it at the next pause."""
        return self._con is not None and time.monotonic() - self._opened >= self.hold_s

    def _connection(self, db_path: str | Path) -> duckdb.DuckDBPyConnection:
        path = str(db_path)
        if self._con is not None and self._path == path:
            return self._con
        self.release()
        make_private_dir(Path(path).parent)
        created = not Path(path).exists()
        settings = {"memory_limit": self.memory_limit, "threads": self.threads}
        config = {name: value for name, value in settings.items() if value is not None} or None
        con = _open(path, read_only=False, deadline_s=LOCK_RETRY_SECONDS, config=config)
        try:
            if created:
                secure_file(path)
            if path not in _migrated_paths:
                apply_migrations(con)
                _migrated_paths.add(path)
            con.execute("SET wal_autocheckpoint = '4GB'").fetchall()
        except BaseException:
            con.close()
            raise
        self._con, self._path, self._opened = con, path, time.monotonic()
        return con

    @contextlib.contextmanager
    def transaction(self, db_path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction on the held connection (opened, and the file migrated, on first use)."""
        con = self._connection(db_path)
        with _transaction(con):
            yield con

    def snapshot(self, db_path: str | Path) -> Snapshot:
        """Reads through the held connection (another connection of this process would be refused)."""
        return Snapshot(self._connection(db_path), Path(db_path))

    def release(self) -> None:
        """Checkpoint and close: other processes may open the file again."""
        con, self._con, self._path = self._con, None, None
        if con is not None:
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
    if Path(path).is_dir():  # an export's folder of Parquet, read like a database (store.parquet)
        from store.parquet import open_parquet

        con = open_parquet(path)
    else:
        con = _open(path, read_only=True, deadline_s=deadline_s)
    try:
        if not is_migrated(con):
            raise StoreNotReady(f"database {path} has no collected data yet")
        yield con
    finally:
        con.close()
