"""Versioned, re-runnable schema migrations: each numbered SQL file is applied once and recorded."""

from __future__ import annotations

from importlib import resources

import duckdb

from store.results import first_row

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT (now()::TIMESTAMP)
)
"""


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration shipped with the package, in order."""
    folder = resources.files("store") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def apply_migrations(con: duckdb.DuckDBPyConnection, up_to: int | None = None) -> list[str]:
    """Apply the migrations this database has not seen yet (those numbered up to `up_to` when given).

    Returns the names applied.
    """
    con.execute(_MIGRATIONS_TABLE).fetchall()
    done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migration_files():
        if version in done or (up_to is not None and version > up_to):
            continue
        con.execute("BEGIN TRANSACTION").fetchall()
        try:
            con.execute(sql).fetchall()
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]).fetchall()
            con.execute("COMMIT").fetchall()
        except BaseException:
            con.execute("ROLLBACK").fetchall()
            raise
        applied.append(name)
    return applied


def is_migrated(con: duckdb.DuckDBPyConnection) -> bool:
    latest = migration_files()[-1][0]
    try:
        row = first_row(con.execute("SELECT max(version) FROM schema_migrations"))
    except duckdb.CatalogException:
        return False
    return bool(row and row[0] is not None and row[0] >= latest)
