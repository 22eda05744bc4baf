"""The only package that talks to DuckDB: connections, migrations, writes and read queries."""

from store.connection import Snapshot, Source, StoreError, StoreNotReady, read_connection, snapshot, write_transaction

__all__ = [
    "Snapshot",
    "Source",
    "StoreError",
    "StoreNotReady",
    "read_connection",
    "snapshot",
    "write_transaction",
]
