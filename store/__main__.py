"""Command line for the data lifecycle: `python -m store backup|restore|prune|info|export`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

import duckdb

from cli_args import OneLineParser, positive_int
from private_files import restricted_umask
from store import lifecycle
from store.connection import StoreError
from store.export import DEFAULT_BUCKETS, export


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 instant") from None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m store", description="Back up, restore, prune and inspect the collectors' database."
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    b = sub.add_parser("backup", help="EXPORT DATABASE to Parquet plus a manifest (schema version, row counts)")
    b.add_argument("--db", required=True, help="the DuckDB file to back up")
    b.add_argument("--out", required=True, help="a new (or empty) folder for the backup")
    r = sub.add_parser("restore", help="IMPORT DATABASE into a new file and verify it against the manifest")
    r.add_argument("--from", dest="source", required=True, help="a folder written by `backup`")
    r.add_argument("--db", required=True, help="the DuckDB file to create")
    r.add_argument("--force", action="store_true", help="replace an existing file (it is kept beside, renamed)")
    pr = sub.add_parser("prune", help="retention: drop raw landings and events older than their cut-offs")
    pr.add_argument("--db", required=True)
    pr.add_argument("--raw-days", type=positive_int, default=lifecycle.DEFAULT_RAW_DAYS)
    pr.add_argument("--events-days", type=positive_int, default=lifecycle.DEFAULT_EVENTS_DAYS)
    pr.add_argument("--now", type=_instant, default=None, help="ISO instant the cut-offs count back from (UTC)")
    i = sub.add_parser("info", help="schema version, row counts per public view, file size")
    i.add_argument("--db", required=True)
    i.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    e = sub.add_parser(
        "export",
        help="the public views of one file or of a fleet's shard files as Hive-partitioned Parquet, with a manifest",
    )
    e.add_argument("--db", required=True, action="append", help="a collector's DuckDB file (repeat for each shard)")
    e.add_argument("--out", required=True, help="a new folder, or one an earlier export wrote (updated in place)")
    e.add_argument("--buckets", type=positive_int, default=DEFAULT_BUCKETS, help="key-hash buckets (default 16)")
    return p


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def _run(args: argparse.Namespace) -> int:
    if args.command == "backup":
        done = lifecycle.backup(args.db, args.out)
        rows = sum(v for k, v in done.tables.items() if k != "schema_migrations")
        print(
            f"backed up {args.db} (schema v{done.schema_version}, {len(done.tables)} tables, {rows:,} rows) "
            f"to {done.out_dir}: {_mb(done.bytes)} in {done.seconds:.1f} s"
        )
    elif args.command == "restore":
        done = lifecycle.restore(args.source, args.db, force=args.force)
        rows = sum(v for k, v in done.tables.items() if k != "schema_migrations")
        upgraded = f", upgraded with {', '.join(done.upgraded)}" if done.upgraded else ""
        print(
            f"restored {done.db_path} (schema v{done.schema_version}, {rows:,} rows, counts match the manifest"
            f"{upgraded}) in {done.seconds:.1f} s"
        )
        if done.previous_kept_as is not None:
            print(f"the previous file was kept as {done.previous_kept_as}")
    elif args.command == "prune":
        done = lifecycle.prune(args.db, args.raw_days, args.events_days, args.now)
        print(
            f"removed {done.total:,} rows: raw_landing {done.removed['raw_landing']:,} "
            f"(fetched before {done.raw_before:%Y-%m-%d %H:%M}), usage_event_log {done.removed['usage_event_log']:,} "
            f"(occurred before {done.events_before:%Y-%m-%d %H:%M}) UTC"
        )
    elif args.command == "export":
        done = export(args.db, args.out, args.buckets)
        print(done.line())
        if done.missing_shards():
            print(
                f"python -m store export: warning: shard(s) {', '.join(done.missing_shards())} not given: "
                "their keys are not in the export",
                file=sys.stderr,
            )
    else:
        found = lifecycle.info(args.db)
        if args.json:
            print(
                json.dumps(
                    {
                        "path": str(found.path),
                        "schema_version": found.schema_version,
                        "migrations": found.migrations,
                        "views": found.views,
                        "tables": found.tables,
                        "file_bytes": found.file_bytes,
                        "wal_bytes": found.wal_bytes,
                    },
                    sort_keys=True,
                )
            )
            return 0
        wal = f" (+ {_mb(found.wal_bytes)} write-ahead log)" if found.wal_bytes else ""
        print(
            f"{found.path}: schema v{found.schema_version} ({', '.join(found.migrations)}), "
            f"{_mb(found.file_bytes)}{wal}"
        )
        width = max((len(name) for name in found.views), default=0)
        for name, count in found.views.items():
            print(f"  {name:<{width}}  {count:>12,}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with restricted_umask():
            return _run(args)
    except (StoreError, duckdb.Error) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"python -m store {args.command}: error: {message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"python -m store {args.command}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"python -m store {args.command}: interrupted; nothing was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
