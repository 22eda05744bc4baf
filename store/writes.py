"""Idempotent writes for the collectors: upserts by natural key that report how many rows changed."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from store.connection import StoreError
from store.results import first_row

KeyRows = Sequence[pa.Table]  # per-key tables from `key_records`, written in one statement


_TIME = pa.timestamp("us")


def _table(schema: pa.Schema, tuples: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Rows as tuples in `schema`'s column order -> an Arrow table.

    A first collection writes hundreds of thousands of rows and the writer shares the GIL with the HTTP
    loop: Arrow converts tuples to a struct array in C, 8x faster than transposing them into columns
    and 80x faster than a pandas frame built from dicts.
    """
    return pa.Table.from_struct_array(pa.array(tuples, type=pa.struct(list(schema))))


@functools.cache
def _record_type(kind: str, width: int) -> pa.StructType:
    """The row type of `kind`'s records `width` fields wide, key_name first: built once per kind and width,
    not for each of the tens of thousands of per-key tables a first collection makes."""
    return pa.struct(list(_RECORD_SCHEMAS[kind])[: 1 + width])


def key_records(kind: str, key_name: str, records: Sequence[tuple[Any, ...]]) -> pa.Table:
    """One key's records of `kind` (daily, events, jobs: tuples in that table's field order after key_name)
    as a compact Arrow table, built when they arrive: a run holds what waits to be written in this form
    (~100 bytes a row) rather than as Python objects (~600), which is most of what bounds its memory.
    The columns stamped with the write's time are added when the batch is written."""
    if not records:
        return pa.table({"key_name": pa.array([], pa.string())})  # nothing to write (skipped)
    row_type = _record_type(kind, len(records[0]))
    return pa.Table.from_struct_array(pa.array([(key_name, *record) for record in records], type=row_type))


def _records_table(per_key: KeyRows, schema: pa.Schema, unique: Sequence[str], now: datetime) -> pa.Table:
    """Per-key tables (`key_records`) -> one Arrow table with `now` in every remaining column of `schema`;
    only the last row per `unique` is kept. No Python runs per row: whole-column operations only."""
    parts = [t for t in per_key if t.num_rows]
    if not parts:
        return schema.empty_table()
    table = pa.concat_tables(parts).combine_chunks()
    n = table.num_rows
    stamp = pa.array(np.full(n, np.datetime64(now, "us")), type=_TIME)
    for extra in list(schema)[table.num_columns :]:
        table = table.append_column(extra, stamp)
    last = table.append_column("_row", pa.array(np.arange(n))).group_by(list(unique), use_threads=False)
    positions = last.aggregate([("_row", "max")])["_row_max"]
    return table if len(positions) == n else table.take(positions)


def _changed(con: duckdb.DuckDBPyConnection, sql: str, table: pa.Table) -> int:
    if len(table) == 0:
        return 0
    con.register("incoming", table)
    try:
        row = first_row(con.execute(sql))
    finally:
        con.unregister("incoming")
    return int(row[0]) if row else 0


_REGISTRY = pa.schema(
    [
        ("key_name", pa.string()),
        ("environment", pa.string()),
        ("owner", pa.string()),
        ("owner_status", pa.string()),
        ("fingerprint", pa.string()),
        ("masked_key", pa.string()),
        ("created_at", _TIME),
        ("rotated_at", _TIME),
        ("first_seen_at", _TIME),
        ("updated_at", _TIME),
    ]
)


def sync_key_registry(con: duckdb.DuckDBPyConnection, keys: Iterable[dict[str, Any]], now: datetime) -> int:
    """Make the registry match the config: upsert configured keys, mark the rest unconfigured."""
    fields = itemgetter(*_REGISTRY.names[:-2])
    rows = [(*fields(k), now, now) for k in keys]
    columns = _REGISTRY.names
    tracked = ["environment", "owner", "owner_status", "fingerprint", "masked_key", "created_at", "rotated_at"]
    changed = _changed(
        con,
        f"""
        INSERT INTO key_registry ({", ".join(columns)}, configured)
        SELECT {", ".join(columns)}, TRUE FROM incoming
        ON CONFLICT (key_name) DO UPDATE SET
            {", ".join(f"{c} = excluded.{c}" for c in tracked)},
            configured = TRUE, updated_at = excluded.updated_at
        WHERE NOT key_registry.configured
           OR {" OR ".join(f"key_registry.{c} IS DISTINCT FROM excluded.{c}" for c in tracked)}
    """,
        _table(_REGISTRY, rows),
    )
    names = [r[0] for r in rows]
    removed = first_row(
        con.execute(
            "UPDATE key_registry SET configured = FALSE, updated_at = ? "
            "WHERE configured AND NOT list_contains(?, key_name)",
            [now, names],
        )
    )
    return changed + (int(removed[0]) if removed else 0)


_DAILY = pa.schema(
    [
        ("key_name", pa.string()),
        ("day", pa.date32()),
        ("calls", pa.int64()),
        ("jobs", pa.int64()),
        ("credits", pa.float64()),
        ("failed", pa.int64()),
        ("fetched_at", _TIME),
    ]
)


def upsert_daily_usage(con: duckdb.DuckDBPyConnection, per_key: KeyRows, now: datetime) -> int:
    """Daily rows of many keys in one statement (per-key tables); the last row of a key-day wins."""
    return _changed(
        con,
        """
        MERGE INTO usage_daily AS u USING incoming AS i ON u.key_name = i.key_name AND u.day = i.day
        WHEN MATCHED AND (u.calls <> i.calls OR u.jobs <> i.jobs OR u.credits <> i.credits OR u.failed <> i.failed)
            THEN UPDATE SET calls = i.calls, jobs = i.jobs, credits = i.credits, failed = i.failed,
                fetched_at = i.fetched_at
        WHEN NOT MATCHED THEN INSERT (key_name, day, calls, jobs, credits, failed, fetched_at)
            VALUES (i.key_name, i.day, i.calls, i.jobs, i.credits, i.failed, i.fetched_at)
    """,
        _records_table(per_key, _DAILY, ["key_name", "day"], now),
    )


_EVENTS = pa.schema(
    [
        ("key_name", pa.string()),
        ("event_id", pa.string()),
        ("occurred_at", _TIME),
        ("endpoint", pa.string()),
        ("method", pa.string()),
        ("status_code", pa.int32()),
        ("request_id", pa.string()),
        ("job_id", pa.string()),
        ("model", pa.string()),
        ("credits", pa.float64()),
        ("first_seen_at", _TIME),
    ]
)
_EVENT_COLUMNS = ["event_id", "key_name", *_EVENTS.names[2:]]


def insert_events(con: duckdb.DuckDBPyConnection, per_key: KeyRows, now: datetime) -> int:
    """Insert new event ids; a known event only changes when its charge settles (credits appear later)."""
    return _changed(
        con,
        f"""
        MERGE INTO usage_event_log AS e USING incoming AS i ON e.key_name = i.key_name AND e.event_id = i.event_id
        WHEN MATCHED AND e.credits IS DISTINCT FROM i.credits THEN UPDATE SET credits = i.credits
        WHEN NOT MATCHED THEN INSERT ({", ".join(_EVENT_COLUMNS)})
            VALUES ({", ".join(f"i.{c}" for c in _EVENT_COLUMNS)})
    """,
        _records_table(per_key, _EVENTS, ["event_id"], now),
    )


_JOBS = pa.schema(
    [
        ("key_name", pa.string()),
        ("job_id", pa.string()),
        ("created_at", _TIME),
        ("status", pa.string()),
        ("progress", pa.float64()),
        ("model", pa.string()),
        ("output_format", pa.string()),
        ("duration_seconds", pa.float64()),
        ("credits_charged", pa.float64()),
        ("billing_status", pa.string()),
        ("output_url", pa.string()),
        ("error", pa.string()),
        ("first_seen_at", _TIME),
        ("last_seen_at", _TIME),
    ]
)
_JOB_COLUMNS = ["job_id", "key_name", *_JOBS.names[2:]]
_RECORD_SCHEMAS = {"daily": _DAILY, "events": _EVENTS, "jobs": _JOBS}
_JOB_TRACKED = _JOBS.names[3:12]


def upsert_jobs(con: duckdb.DuckDBPyConnection, per_key: KeyRows, now: datetime) -> int:
    """Upsert jobs by id and record each newly observed status (the lifecycle audit trail)."""
    incoming = _records_table(per_key, _JOBS, ["job_id"], now)
    changed = _changed(
        con,
        f"""
        MERGE INTO job_state AS j USING incoming AS i ON j.key_name = i.key_name AND j.job_id = i.job_id
        WHEN MATCHED AND ({" OR ".join(f"j.{c} IS DISTINCT FROM i.{c}" for c in _JOB_TRACKED)}) THEN UPDATE SET
            {", ".join(f"{c} = i.{c}" for c in _JOB_TRACKED)}, last_seen_at = i.last_seen_at
        WHEN NOT MATCHED THEN INSERT ({", ".join(_JOB_COLUMNS)}) VALUES ({", ".join(f"i.{c}" for c in _JOB_COLUMNS)})
    """,
        incoming,
    )
    changed += _changed(
        con,
        """
        MERGE INTO job_status_log AS s USING incoming AS i ON s.job_id = i.job_id AND s.status = i.status
        WHEN NOT MATCHED THEN INSERT (job_id, status, observed_at) VALUES (i.job_id, i.status, i.first_seen_at)
    """,
        incoming,
    )
    return changed


_PRICING = pa.schema([("model", pa.string()), ("credits_per_minute", pa.float64()), ("fetched_at", _TIME)])


def upsert_pricing(con: duckdb.DuckDBPyConnection, rates: dict[str, float], now: datetime) -> int:
    return _changed(
        con,
        """
        INSERT INTO model_pricing SELECT model, credits_per_minute, fetched_at FROM incoming
        ON CONFLICT (model) DO UPDATE SET credits_per_minute = excluded.credits_per_minute,
            fetched_at = excluded.fetched_at
        WHERE model_pricing.credits_per_minute <> excluded.credits_per_minute
    """,
        _table(_PRICING, [(model, rate, now) for model, rate in rates.items()]),
    )


_INVENTORY = pa.schema(
    [
        ("key_fingerprint", pa.string()),
        ("client_id", pa.string()),
        ("name", pa.string()),
        ("note", pa.string()),
        ("enabled", pa.bool_()),
        ("created_at", _TIME),
        ("last_used_at", _TIME),
        ("fetched_at", _TIME),
    ]
)
_INVENTORY_COLUMNS = _INVENTORY.names[:-1]


def replace_inventory(con: duckdb.DuckDBPyConnection, rows: Sequence[Any], now: datetime) -> int:
    """The admin inventory is a snapshot: keys gone upstream leave it; the first row per fingerprint wins."""
    fields = attrgetter(*_INVENTORY_COLUMNS)
    first = {r.key_fingerprint: (*fields(r), now) for r in reversed(rows)}
    gone = first_row(
        con.execute(
            "DELETE FROM admin_inventory WHERE NOT list_contains(?, key_fingerprint)",
            [list(first)],
        )
    )
    changed = _changed(
        con,
        f"""
        INSERT INTO admin_inventory SELECT {", ".join(_INVENTORY_COLUMNS)}, fetched_at FROM incoming
        ON CONFLICT (key_fingerprint) DO UPDATE SET
            {", ".join(f"{c} = excluded.{c}" for c in _INVENTORY_COLUMNS[1:])}, fetched_at = excluded.fetched_at
        WHERE {" OR ".join(f"admin_inventory.{c} IS DISTINCT FROM excluded.{c}" for c in _INVENTORY_COLUMNS[1:])}
    """,
        _table(_INVENTORY, list(first.values())),
    )
    return changed + (int(gone[0]) if gone else 0)


_CURSORS = pa.schema(
    [("key_name", pa.string()), ("endpoint", pa.string()), ("cursor", pa.string()), ("updated_at", _TIME)]
)


def set_cursors(
    con: duckdb.DuckDBPyConnection, cursors: Sequence[tuple[str, str, dict[str, Any]]], now: datetime
) -> int:
    """Store (key_name, endpoint, cursor) triples, the last per key and endpoint; unchanged ones are not rewritten."""
    latest = {(k, e): json.dumps(c, sort_keys=True, default=str) for k, e, c in cursors}
    return _changed(
        con,
        """
        INSERT INTO sync_state SELECT key_name, endpoint, cursor, updated_at FROM incoming
        ON CONFLICT (key_name, endpoint) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at
        WHERE sync_state.cursor IS DISTINCT FROM excluded.cursor
    """,
        _table(_CURSORS, [(k, e, c, now) for (k, e), c in latest.items()]),
    )


def add_coverage_gaps(
    con: duckdb.DuckDBPyConnection, gaps: Sequence[tuple[str, str, datetime, datetime]], now: datetime
) -> int:
    """Record (key_name, endpoint, gap_start, gap_end) windows the collector could not see."""
    changed = 0
    for key_name, endpoint, gap_start, gap_end in gaps:  # rare: one statement each is fine
        row = first_row(
            con.execute(
                "INSERT INTO coverage_gap_log VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [key_name, endpoint, gap_start, gap_end, now],
            )
        )
        changed += int(row[0]) if row else 0
    return changed


_LANDINGS = pa.schema(
    [
        ("endpoint", pa.string()),
        ("key_name", pa.string()),
        ("key_fingerprint", pa.string()),
        ("fetched_at", _TIME),
        ("request_id", pa.string()),
        ("http_status", pa.int32()),
        ("body_sha256", pa.string()),
        ("body_zstd", pa.binary()),
    ]
)


def land_raw(con: duckdb.DuckDBPyConnection, landings: Sequence[dict[str, Any]]) -> int:
    """Keep bodies as received (dicts of endpoint, key_name, key_fingerprint, fetched_at, request_id,
    http_status, and body: a store.landing.PackedBody); a body already held for the same key and endpoint
    is not stored again, so an unchanged poll lands nothing."""
    fields = itemgetter(*_LANDINGS.names[:-2])
    rows = [(*fields(landing), *landing["body"]) for landing in landings]
    first = {(row[0], row[1], row[-2]): row for row in reversed(rows)}
    return _changed(
        con,
        """
        INSERT INTO raw_landing (landing_id, endpoint, key_name, key_fingerprint, fetched_at, request_id,
                                 http_status, body_sha256, body_zstd)
        SELECT nextval('landing_seq'), i.endpoint, i.key_name, i.key_fingerprint, i.fetched_at, i.request_id,
               i.http_status, i.body_sha256, i.body_zstd
        FROM incoming i
        WHERE NOT EXISTS (
            SELECT 1 FROM raw_landing r WHERE r.endpoint = i.endpoint
              AND r.key_name IS NOT DISTINCT FROM i.key_name AND r.body_sha256 = i.body_sha256)
    """,
        _table(_LANDINGS, list(first.values())),
    )


def quarantine(
    con: duckdb.DuckDBPyConnection,
    *,
    endpoint: str,
    key_name: str | None,
    fetched_at: datetime,
    request_id: str | None,
    reason: str,
    record: Any,
) -> int:
    text = record if isinstance(record, str) else json.dumps(record, default=str)
    exists = first_row(
        con.execute(
            """
        SELECT 1 FROM quarantine_log WHERE endpoint = ? AND key_name IS NOT DISTINCT FROM ?
          AND reason = ? AND record IS NOT DISTINCT FROM ? LIMIT 1
    """,
            [endpoint, key_name, reason, text],
        )
    )
    if exists:
        return 0
    con.execute(
        "INSERT INTO quarantine_log VALUES (nextval('quarantine_seq'), ?, ?, ?, ?, ?, ?)",
        [endpoint, key_name, fetched_at, request_id, reason, text],
    ).fetchall()
    return 1


class ShardMismatch(StoreError):
    """The file holds another shard of the fleet than the collector writing to it."""


def claim_shard(con: duckdb.DuckDBPyConnection, shard: int, shards: int, now: datetime) -> None:
    """Record which shard (I of N) this file holds on its first collection; refuse a collector of another."""
    row = first_row(con.execute("SELECT shard, shards FROM collector_shard"))
    if row is None:
        con.execute("INSERT INTO collector_shard VALUES (TRUE, ?, ?, ?)", [shard, shards, now]).fetchall()
        return
    if (int(row[0]), int(row[1])) != (shard, shards):
        held = "every key (not sharded)" if int(row[1]) == 1 else f"shard {row[0]}/{row[1]}"
        asked = "every key (no --shard)" if shards == 1 else f"shard {shard}/{shards}"
        raise ShardMismatch(f"this database holds {held}; this collector writes {asked}: give each shard its own --db")


def start_run(con: duckdb.DuckDBPyConnection, *, mode: str, endpoints: str, keys_total: int, now: datetime) -> int:
    """Record a run; runs left 'running' by a dead process of ours are marked abandoned first."""
    for run_id, pid in con.execute("SELECT run_id, pid FROM run_log WHERE status = 'running'").fetchall():
        if pid is not None and not _pid_alive(pid):
            con.execute(
                "UPDATE run_log SET status = 'abandoned', message = 'process ended mid-run' WHERE run_id = ?", [run_id]
            ).fetchall()
    row = first_row(
        con.execute(
            """
        INSERT INTO run_log (run_id, started_at, status, mode, endpoints, keys_total, pid)
        VALUES (nextval('run_seq'), ?, 'running', ?, ?, ?, ?) RETURNING run_id
    """,
            [now, mode, endpoints, keys_total, os.getpid()],
        )
    )
    assert row is not None
    return int(row[0])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def finish_run(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    *,
    status: str,
    keys_ok: int,
    requests: int,
    retries: int,
    rows_written: int,
    message: str,
    now: datetime,
) -> None:
    con.execute(
        """
        UPDATE run_log SET finished_at = ?, status = ?, keys_ok = ?, requests = ?, retries = ?,
            rows_written = ?, message = ? WHERE run_id = ?
    """,
        [now, status, keys_ok, requests, retries, rows_written, message, run_id],
    ).fetchall()


_RUN_ITEMS = pa.schema(
    [
        ("key_name", pa.string()),
        ("endpoint", pa.string()),
        ("status", pa.string()),
        ("attempts", pa.int32()),
        ("error_code", pa.string()),
        ("message", pa.string()),
        ("request_id", pa.string()),
        ("run_id", pa.int64()),
        ("finished_at", _TIME),
    ]
)


def record_run_items(
    con: duckdb.DuckDBPyConnection, run_id: int, items: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Per key and endpoint outcomes of a run (dicts of key_name, endpoint, status, attempts, error_code,
    message, request_id); the last one per key and endpoint wins."""
    fields = itemgetter(*_RUN_ITEMS.names[:-2])
    latest = {(item["key_name"], item["endpoint"]): (*fields(item), run_id, now) for item in items}
    _changed(
        con,
        f"""
        INSERT INTO run_item_log SELECT run_id, {", ".join(_RUN_ITEMS.names[:-2])}, finished_at FROM incoming
        ON CONFLICT (run_id, key_name, endpoint) DO UPDATE SET status = excluded.status,
            attempts = excluded.attempts, error_code = excluded.error_code, message = excluded.message,
            request_id = excluded.request_id, finished_at = excluded.finished_at
    """,
        _table(_RUN_ITEMS, list(latest.values())),
    )


def prune(con: duckdb.DuckDBPyConnection, *, raw_before: datetime, events_before: datetime) -> int:
    """Retention: drop raw bodies and events older than their cut-offs."""
    removed = 0
    for sql, cutoff in (
        ("DELETE FROM raw_landing WHERE fetched_at < ?", raw_before),
        ("DELETE FROM usage_event_log WHERE occurred_at < ?", events_before),
    ):
        row = first_row(con.execute(sql, [cutoff]))
        removed += int(row[0]) if row else 0
    return removed


def retention_cutoffs(now: datetime, raw_days: int, events_days: int) -> tuple[datetime, datetime]:
    return now - timedelta(days=raw_days), now - timedelta(days=events_days)


@dataclass
class Batch:
    """What many collector outcomes write, gathered so one transaction runs one statement per table.

    Rows and the cursors that cover them go into the same batch, so they still commit together.
    """

    daily: list[pa.Table] = field(default_factory=list)  # per-key tables from `key_records`
    events: list[pa.Table] = field(default_factory=list)
    jobs: list[pa.Table] = field(default_factory=list)
    gaps: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)
    cursors: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    # Whole-snapshot writes (pricing, the admin inventory): (function of this module, its arguments before
    # `now`), data rather than closures, so a batch can be handed to another process.
    snapshots: list[tuple[Callable[..., int], tuple[Any, ...]]] = field(default_factory=list)

    def compact(self) -> None:
        """Each kind's per-key tables as one: a batch crosses to the collector's store worker pickled, and
        pickling a table costs about a millisecond whatever its size (500 one-key tables: 0.43 s to pickle and
        0.32 s to load again; the same rows as one table: 5 ms)."""
        for kind in ("daily", "events", "jobs"):
            parts = [t for t in getattr(self, kind) if t.num_rows]
            setattr(self, kind, [pa.concat_tables(parts).combine_chunks()] if parts else [])

    def write(self, con: duckdb.DuckDBPyConnection, now: datetime) -> int:
        """Apply everything gathered; returns the rows changed."""
        changed = sum(write(con, *args, now) for write, args in self.snapshots)
        changed += upsert_daily_usage(con, self.daily, now)
        changed += insert_events(con, self.events, now)
        changed += upsert_jobs(con, self.jobs, now)
        changed += add_coverage_gaps(con, self.gaps, now)
        return changed + set_cursors(con, self.cursors, now)
