"""The results refresh reads and computes a key group at a time: on stand-in-collected databases, groups of
three keys store exactly what one group of every key stores (findings, incidents, reconciliation, review)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from service.refresh import refresh_results
from store import key_reads

TABLES = ("key_findings", "incidents", "series_keys", "discrepancies", "credit_days", "summary_days", "review")


def _stored(db: Path) -> dict[str, object]:
    """Every result table's rows in stored order and column types, and what each kind's pointer says."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out: dict[str, object] = {
            t: (
                con.execute(f"DESCRIBE result_{t}").fetchall(),
                con.execute(f"SELECT * FROM result_{t} ORDER BY result_order").fetchall(),
            )
            for t in TABLES
        }
        out["current"] = con.execute(
            "SELECT kind, as_of, data_run_id, window_start, window_end, detail FROM result_current ORDER BY kind"
        ).fetchall()
        return out
    finally:
        con.close()


def _refreshed(source: Path, folder: Path, name: str, group_keys: int, collected) -> dict[str, object]:
    db = folder / f"{name}.duckdb"
    shutil.copyfile(source, db)
    config = collected.config
    refresh_results(
        db, config.rules, config.reconciliation, as_of=collected.now, group_keys=group_keys,
        detect_group_keys=group_keys,
    )  # fmt: skip
    return _stored(db)


def _groups_of(db: Path, keys: set[str], size: int) -> set[int]:
    """Which groups of `size` (in the refresh's key order) hold `keys`."""
    names = key_reads.refresh_key_names(db)
    return {names.index(k) // size for k in keys}


@pytest.mark.parametrize("world", ["collected", "summary_leaves_out"])
def test_groups_of_three_keys_store_what_one_group_of_every_key_stores(world, request, tmp_path):
    collected = request.getfixturevalue(world)
    names = key_reads.refresh_key_names(collected.db_path)
    assert len(names) >= 27  # nine groups and more

    grouped = _refreshed(collected.db_path, tmp_path, "grouped", 3, collected)
    whole = _refreshed(collected.db_path, tmp_path, "whole", len(names) + 1, collected)

    # Something to compare: incidents and discrepancies of keys spread over several groups, a review.
    incident_keys = {row[0] for row in _rows(grouped, "incidents", "key_name")}
    discrepancy_keys = {row[0] for row in _rows(grouped, "discrepancies", "key_name")} - {None}
    assert len(_groups_of(collected.db_path, incident_keys, 3)) >= 3
    assert len(_groups_of(collected.db_path, discrepancy_keys, 3)) >= 2
    assert len(_rows(grouped, "key_findings", "key_name")) > 0
    assert len(_rows(grouped, "credit_days", "key_name")) > 0
    assert len(_rows(grouped, "review", "week")) == 1

    for table in (*TABLES, "current"):
        assert grouped[table] == whole[table], table


def _rows(stored: dict[str, object], table: str, column: str) -> list[tuple]:
    described, rows = stored[table]  # type: ignore[misc]
    position = [c[0] for c in described].index(column)
    return [(row[position],) for row in rows]
