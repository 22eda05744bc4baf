"""The dashboard's own DuckDB file (review decisions, alerts): where it lives, and short reads and writes on it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb

from store.connection import LOCK_RETRY_SECONDS, StoreError, _open, _write_lock, write_transaction
from store.results import first_row

STATE_ENV = "RBV_STATE_DB"


def state_path(collector_db: str | Path | None) -> Path:
    """RBV_STATE_DB, or `<collector db>.dashboard.duckdb` beside the collector's database."""
    override = os.environ.get(STATE_ENV)
    if override:
        return Path(override)
    if collector_db is None:
        raise StoreError("no state database: set RBV_STATE_DB or give the collector database path")
    base = Path(collector_db)
    return base.with_name(base.name + ".dashboard.duckdb")


@contextlib.contextmanager
def state_write(
    path: str | Path, schema: str, deadline_s: float = LOCK_RETRY_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection]:
    """One read-write transaction on the state file, creating `schema` (idempotent DDL) first."""
    with write_transaction(path, deadline_s, schema=schema) as con:
        yield con


@contextlib.contextmanager
def state_read(
    path: str | Path, table: str, deadline_s: float = LOCK_RETRY_SECONDS
) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """A read-only connection, or None while the file or `table` does not exist yet (nothing stored)."""
    target = Path(path)
    if not target.exists():
        yield None
        return
    with _write_lock:
        con = _open(str(target), read_only=True, deadline_s=deadline_s)
        try:
            known = first_row(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [table]))
            yield con if known and known[0] else None
        finally:
            con.close()
