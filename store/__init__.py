"""The only package that talks to DuckDB: connections, migrations, writes and read queries."""

from store.connection import StoreError, StoreNotReady, read_connection, write_transaction

__all__ = ["StoreError", "StoreNotReady", "read_connection", "write_transaction"]
