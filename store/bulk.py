"""Bulk load for generators: append whole tables of rows to the store's own tables, in one transaction.

The scale generator (simulator.scale) writes a large database through this, never with SQL of its own, so
the schema lives only in store/migrations. Columns are matched by name and checked against the table;
an id the table takes from a sequence is assigned here when the rows do not carry one, and returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from store.connection import write_transaction

# Tables a generator may fill, and the (id column, sequence) of those numbered by the store.
LOADABLE: dict[str, tuple[str, str] | None] = {
    "key_registry": None,
    "usage_daily": None,
    "usage_event_log": None,
    "job_state": None,
    "job_status_log": None,
    "model_pricing": None,
    "admin_inventory": None,
    "sync_state": None,
    "run_log": ("run_id", "run_seq"),
    "run_item_log": None,
    "raw_landing": ("landing_id", "landing_seq"),
    "quarantine_log": ("quarantine_id", "quarantine_seq"),
    "coverage_gap_log": None,
}


@dataclass(frozen=True)
class Loaded:
    rows: dict[str, int]
    ids: dict[str, list[int]] = field(default_factory=dict)  # sequence ids assigned, in the rows' order


def bulk_load(db_path: str | Path, tables: Mapping[str, pa.Table | pd.DataFrame]) -> Loaded:
    """Append each table's rows (in the order given) in one transaction; unknown tables or columns fail."""
    rows: dict[str, int] = {}
    ids: dict[str, list[int]] = {}
    with write_transaction(db_path) as con:
        con.execute("SET enable_progress_bar = false").fetchall()
        for name, data in tables.items():
            if name not in LOADABLE:
                raise ValueError(f"{name} is not a table the store bulk-loads")
            table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
            known = [r[0] for r in con.execute(f"SELECT name FROM pragma_table_info('{name}')").fetchall()]
            unknown = [c for c in table.column_names if c not in known]
            if unknown:
                raise ValueError(f"{name} has no column(s) {', '.join(unknown)}")
            columns = ", ".join(f'"{c}"' for c in table.column_names)
            numbered = LOADABLE[name]
            con.register("bulk_rows", table)
            try:
                if numbered is not None and numbered[0] not in table.column_names:
                    column, sequence = numbered
                    found = con.execute(
                        f'INSERT INTO {name} ("{column}", {columns}) '
                        f"SELECT nextval('{sequence}'), {columns} FROM bulk_rows RETURNING \"{column}\""
                    ).fetchall()
                    ids[name] = [int(r[0]) for r in found]
                    rows[name] = len(found)
                else:
                    count = con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM bulk_rows").fetchall()
                    rows[name] = int(count[0][0]) if count else 0
            finally:
                con.unregister("bulk_rows")
    return Loaded(rows, ids)


def table_counts(db_path: str | Path) -> dict[str, int]:
    """Rows in each loadable table (a generator's summary line)."""
    with write_transaction(db_path) as con:
        return {name: int(con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]) for name in LOADABLE}
