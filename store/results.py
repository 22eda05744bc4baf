"""Result helpers: DuckDB 2.0 refuses new work on a connection while a result is half-read."""

from __future__ import annotations

from typing import Any

import duckdb


def first_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """Read a result to the end and return its first row (or None)."""
    rows = result.fetchall()
    return rows[0] if rows else None
