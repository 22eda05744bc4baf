"""Result tables: what the one writer computed after a collection, stored whole, and read back by reference.

A refresh is logged (`result_refresh_log`), then written in one transaction: every `result_<table>` of the
kinds it computed is replaced, and `result_current` points each kind at that refresh, its as-of time and
the collector run its data reflect. Killing the writer mid-refresh rolls that transaction back: the
previous results stay readable, and the next refresh writes them whole again (refreshing is idempotent).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from store.connection import Source, reading, write_transaction
from store.results import arrow_frame, first_row
from store.writes import _pid_alive

# kind -> the tables a refresh of that kind replaces (names are fixed here, never taken from callers' text)
KINDS: dict[str, tuple[str, ...]] = {
    "findings": ("key_findings",),
    "incidents": ("incidents", "series_keys"),
    "credits": ("discrepancies", "credit_days", "summary_days"),
    "review": ("review",),
}
TABLES = frozenset(t for tables in KINDS.values() for t in tables)


@dataclass(frozen=True)
class ResultMeta:
    """When a kind of result was computed, as of which instant, and from which collected data."""

    kind: str
    refresh_id: int
    as_of: datetime
    data_run_id: int | None
    data_as_of: datetime | None
    window_start: datetime | None = None
    window_end: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataMark:
    """The newest finished collector run (and when it finished): the data a refresh reflects."""

    run_id: int | None
    finished_at: datetime | None


class Spool:
    """A result table written a part at a time (a key group's rows) to private temporary Parquet files, so the
    refresh never holds the whole table: `store_results` builds it from the parts, rows in `order` (nulls
    first; ties in the order the parts came). Close it (or use it as a context manager) to remove the files."""

    def __init__(self, order: Sequence[str]) -> None:
        self.order = tuple(order)
        self.rows = 0
        self._folder = Path(tempfile.mkdtemp(prefix="rbv-results-"))  # owner-only (0700)
        self._parts: list[Path] = []
        self._empty: pd.DataFrame | None = None  # kept for its columns, should every part be empty

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty:  # as pd.concat of the non-empty parts: an empty part's column types do not count
            self._empty = frame if self._empty is None else self._empty
            return
        self._write(frame)

    def _write(self, frame: pd.DataFrame) -> None:
        path = self._folder / f"part{len(self._parts):06d}.parquet"
        pq.write_table(_arrow(frame), path)
        self._parts.append(path)
        self.rows += len(frame)

    @property
    def parts(self) -> list[Path]:
        if not self._parts:
            self._write(self._empty if self._empty is not None else pd.DataFrame())
        return list(self._parts)

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _spooled_sql(spool: Spool) -> tuple[str, list[Any]]:
    """The spool's rows in its order, numbered again as one frame's rows (`ORDER` last, as `_arrow` puts it)."""
    order = ", ".join(f'"{name}" NULLS FIRST' for name in spool.order)
    return (
        f"""
        SELECT * EXCLUDE ({ORDER}, filename),
               row_number() OVER (ORDER BY {order}, filename, {ORDER}) - 1 AS {ORDER}
        FROM read_parquet(?, filename = true, union_by_name = true)
        ORDER BY {ORDER}
        """,
        [[str(p) for p in spool.parts]],
    )


@dataclass(frozen=True)
class ResultSet:
    """One kind's frames (table name -> frame, or a Spool of its parts) with its window and small JSON-ready
    details."""

    kind: str
    frames: Mapping[str, pd.DataFrame | Spool]
    window_start: datetime | None = None
    window_end: datetime | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def data_mark(source: Source) -> DataMark:
    with reading(source) as con:
        row = first_row(
            con.execute(
                "SELECT run_id, finished_at FROM run_log WHERE finished_at IS NOT NULL "
                "AND status IN ('ok', 'partial') ORDER BY run_id DESC LIMIT 1"
            )
        )
    return DataMark(int(row[0]), row[1]) if row else DataMark(None, None)


def begin_refresh(db_path: str | os.PathLike[str], as_of: datetime, now: datetime) -> int:
    """Log a refresh as running; refreshes left running by a dead process of ours are marked abandoned."""
    with write_transaction(db_path) as con:
        for refresh_id, pid in con.execute(
            "SELECT refresh_id, pid FROM result_refresh_log WHERE status = 'running'"
        ).fetchall():
            if pid is not None and not _pid_alive(pid):
                con.execute(
                    "UPDATE result_refresh_log SET status = 'abandoned', message = 'process ended mid-refresh' "
                    "WHERE refresh_id = ?",
                    [refresh_id],
                ).fetchall()
        row = first_row(
            con.execute(
                """
                INSERT INTO result_refresh_log (refresh_id, started_at, as_of, status, pid)
                VALUES (nextval('result_refresh_seq'), ?, ?, 'running', ?) RETURNING refresh_id
                """,
                [now, as_of, os.getpid()],
            )
        )
    assert row is not None
    return int(row[0])


WRITE_MEMORY_LIMIT = "256MB"
ORDER = "result_order"  # each stored row's position in the frame it came from: reads give rows back in order


def _arrow(frame: pd.DataFrame) -> pa.Table:
    """A frame as Arrow with its row order, and columns no value could type (all empty) as text."""
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    table = table.append_column(ORDER, pa.array(range(table.num_rows), type=pa.int64()))
    for i, column in enumerate(table.schema):
        if pa.types.is_null(column.type):
            table = table.set_column(i, column.name, table.column(i).cast(pa.string()))
        elif pa.types.is_list(column.type) and pa.types.is_null(column.type.value_type):
            table = table.set_column(i, column.name, table.column(i).cast(pa.list_(pa.string())))
    return table


def store_results(
    db_path: str | os.PathLike[str],
    refresh_id: int,
    as_of: datetime,
    mark: DataMark,
    results: list[ResultSet],
    finished_at: datetime,
    seconds: float,
    cpu_seconds: float,
) -> None:
    """Replace the results of every kind given and point `result_current` at them, in one transaction."""
    # A spooled table is sorted by DuckDB as it is built: within this much memory (it spills beyond), so a
    # fleet's credit days cost the refresh no more than a small fleet's.
    with write_transaction(db_path, memory_limit=WRITE_MEMORY_LIMIT) as con:
        for result in results:
            expected = set(KINDS[result.kind])
            if set(result.frames) != expected:
                raise ValueError(f"{result.kind} results need exactly the tables {sorted(expected)}")
            for table, frame in result.frames.items():
                if isinstance(frame, Spool):
                    sql, params = _spooled_sql(frame)
                    con.execute(f"CREATE OR REPLACE TABLE result_{table} AS {sql}", params).fetchall()
                    continue
                con.register("incoming_result", _arrow(frame))
                try:
                    con.execute(f"CREATE OR REPLACE TABLE result_{table} AS SELECT * FROM incoming_result").fetchall()
                finally:
                    con.unregister("incoming_result")
            con.execute(
                "INSERT OR REPLACE INTO result_current VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    result.kind,
                    refresh_id,
                    as_of,
                    mark.run_id,
                    mark.finished_at,
                    result.window_start,
                    result.window_end,
                    json.dumps(dict(result.detail), default=str, sort_keys=True),
                ],
            ).fetchall()
        con.execute(
            "UPDATE result_refresh_log SET status = 'ok', finished_at = ?, seconds = ?, cpu_seconds = ?, "
            "data_run_id = ? WHERE refresh_id = ?",
            [finished_at, seconds, cpu_seconds, mark.run_id, refresh_id],
        ).fetchall()


def fail_refresh(db_path: str | os.PathLike[str], refresh_id: int, message: str, finished_at: datetime) -> None:
    with write_transaction(db_path) as con:
        con.execute(
            "UPDATE result_refresh_log SET status = 'failed', finished_at = ?, message = ? WHERE refresh_id = ?",
            [finished_at, message[:500], refresh_id],
        ).fetchall()


def current_results(source: Source) -> dict[str, ResultMeta]:
    """Per kind, the stored results' metadata (empty before the first refresh)."""
    with reading(source) as con:
        try:
            rows = con.execute(
                "SELECT kind, refresh_id, as_of, data_run_id, data_as_of, window_start, window_end, detail "
                "FROM result_current ORDER BY kind"
            ).fetchall()
        except duckdb.CatalogException:  # a file written before result tables existed
            return {}
    return {
        kind: ResultMeta(kind, int(rid), as_of, run, run_at, lo, hi, json.loads(detail) if detail else {})
        for kind, rid, as_of, run, run_at, lo, hi, detail in rows
    }


def last_refresh(source: Source) -> dict[str, Any] | None:
    """The newest refresh of the log, whatever its outcome (the Collection health page shows it)."""
    with reading(source) as con:
        frame = con.execute(
            "SELECT refresh_id, started_at, finished_at, as_of, data_run_id, status, seconds, cpu_seconds, message "
            "FROM result_refresh_log ORDER BY refresh_id DESC LIMIT 1"
        ).df()
    return None if frame.empty else frame.iloc[0].to_dict()


def refresh_log(source: Source, limit: int = 20) -> pd.DataFrame:
    """The newest refreshes, newest first (empty for a database written before result tables existed)."""
    with reading(source) as con:
        try:
            return con.execute(
                "SELECT refresh_id, started_at, finished_at, as_of, data_run_id, status, seconds, cpu_seconds, "
                "message FROM result_refresh_log ORDER BY refresh_id DESC LIMIT ?",
                [limit],
            ).df()
        except duckdb.CatalogException:  # a file written before result tables existed
            return pd.DataFrame()


def _rows(source: Source, table: str, where: str = "", params: list[Any] | None = None) -> pd.DataFrame:
    """A result table's rows (WHERE `where`), in the order they were stored."""
    if table not in TABLES:
        raise ValueError(f"{table} is not a result table")
    with reading(source) as con:
        frame = arrow_frame(con, f"SELECT * FROM result_{table} {where} ORDER BY {ORDER}", params)
    return frame.drop(columns=ORDER)


def key_findings(source: Source) -> pd.DataFrame:
    """Every key finding of the last refresh: key_name, finding, detail, since."""
    return _rows(source, "key_findings")


def incidents(source: Source, ending_since: datetime | None = None) -> pd.DataFrame:
    """The detector's incidents of the last refresh (every column it returned), ending at or after a time."""
    if ending_since is None:
        return _rows(source, "incidents")
    return _rows(source, "incidents", 'WHERE "end" >= ?', [ending_since])


def series_keys(source: Source) -> list[str]:
    """The keys that had an hourly series to score at the last refresh."""
    return _rows(source, "series_keys")["key_name"].tolist()


def _days_where(start: date | None, end: date | None, envs: list[str] | None, day: str = "day") -> tuple[str, list]:
    clauses, params = [], []
    if start is not None:
        clauses.append(f"{day} >= ?")
        params.append(start.isoformat())
    if end is not None:
        clauses.append(f"{day} <= ?")
        params.append(end.isoformat())
    if envs:
        clauses.append("list_contains(?, environment)")
        params.append(list(envs))
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def discrepancies(source: Source, start: date | None, end: date | None, envs: list[str] | None) -> pd.DataFrame:
    """Stored discrepancies of [start, end] (days, UTC) in the environments given, in their judged order."""
    where, params = _days_where(start, end, envs)
    return _rows(source, "discrepancies", where, params)


def _columns(names: list[str]) -> str:
    if not all(n.isidentifier() for n in names):  # names come from the analytics' column lists, never from users
        raise ValueError(f"not column names: {names}")
    return ", ".join(f'"{n}"' for n in names)


def credit_day_values(
    source: Source, start: date | None, end: date | None, envs: list[str] | None, columns: list[str]
) -> pd.DataFrame:
    """Only `columns` (numbers, not the key, environment and model names) of the stored credit days of
    [start, end], in stored order: a month of 10,000 keys is ~700,000 rows, and the headline only sums them."""
    where, params = _days_where(start, end, envs)
    return _in_stored_order(source, f"SELECT {_columns(columns)}, {ORDER} FROM result_credit_days {where}", params)


def settled_credit_days(
    source: Source, start: date | None, end: date | None, envs: list[str] | None, columns: list[str]
) -> pd.DataFrame:
    """`columns` of the stored credit days of [start, end] with settled jobs of a known model, in stored order."""
    where, params = _days_where(start, end, envs)
    where = (where + " AND" if where else "WHERE") + " model IS NOT NULL AND jobs > 0"
    return _in_stored_order(source, f"SELECT {_columns(columns)}, {ORDER} FROM result_credit_days {where}", params)


def _in_stored_order(source: Source, sql: str, params: list[Any]) -> pd.DataFrame:
    """Rows come back in the order they were written (DuckDB keeps insertion order), which is stored order:
    checked, and sorted only when not (an ORDER BY of ~700,000 rows costs half a second on its own)."""
    with reading(source) as con:
        frame = arrow_frame(con, sql, params)
    if not frame[ORDER].is_monotonic_increasing:
        frame = frame.sort_values(ORDER, kind="stable")
    return frame.drop(columns=ORDER).reset_index(drop=True)


def summary_days(source: Source, start: date | None, end: date | None, envs: list[str] | None) -> pd.DataFrame:
    """Stored summary days (differing from the charges) of [start, end]."""
    where, params = _days_where(start, end, envs)
    return _rows(source, "summary_days", where, params)


def review(source: Source, week: str) -> dict[str, Any] | None:
    """The stored weekly review of `week` (plain data, decisions not attached), or None."""
    frame = _rows(source, "review", "WHERE week = ?", [week])
    return None if frame.empty else json.loads(frame["review"].iloc[0])
