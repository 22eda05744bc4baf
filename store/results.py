"""Result helpers: DuckDB 2.0 refuses new work on a connection while a result is half-read."""

from __future__ import annotations

from typing import Any

import duckdb


def first_row(result: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """Read a result to the end and return its first row (or None)."""
    rows = result.fetchall()
    return rows[0] if rows else None


def arrow_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """A large row-level result as a DataFrame through Arrow: columnar, no Python object per string.

    Same frame (values and dtypes) as `.df()` for VARCHAR, TIMESTAMP, DOUBLE, BIGINT and BOOLEAN columns,
    several times faster on hundreds of thousands of rows. Cast DECIMAL/HUGEINT results (sum of integers)
    to DOUBLE or BIGINT first: Arrow would hand them to pandas as Python Decimals.
    """
    return con.sql(sql, params=params or None).to_arrow_table().to_pandas()
