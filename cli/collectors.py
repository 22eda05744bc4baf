"""Command line: `python -m collectors once|serve --config FILE --db FILE` (the service's collection and
schedule), `python -m collectors refresh --db FILE` (recompute the stored results, e.g. after a rules change),
`python -m collectors smoke` (a smoke check per key) and `python -m collectors admin` (key actions)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

from cli import admin, smoke
from cli_args import OneLineParser, non_negative, positive_int, shard_spec
from config import Config, ConfigError, load_config
from private_files import restricted_umask
from service.collection import apply_retention, collect_and_refresh
from store import StoreError
from store.writes import ShardMismatch
from untrusted import log_text


class OneLineFormatter(logging.Formatter):
    """Log records whose text (upstream error messages, names) cannot forge a line: control characters escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = log_text(record.message)
        return super().formatMessage(record)


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m collectors", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name, help_text in (
        ("once", "collect every endpoint for every key once, then exit"),
        ("serve", "keep collecting on a schedule until SIGTERM/SIGINT"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", required=True, help="key config TOML")
        cmd.add_argument("--db", required=True, help="DuckDB file to write")
        cmd.add_argument("--base-url", help="override [api] base_url")
        cmd.add_argument("--concurrency", type=positive_int, help="requests in flight at once")
        cmd.add_argument("--backoff-scale", type=non_negative, help="multiply retry waits (tests use 0.01)")
        cmd.add_argument("--endpoints", help="comma-separated subset: pricing,admin,summary,events,jobs")
        cmd.add_argument(
            "--shard",
            type=shard_spec,
            metavar="I/N",
            help="collect only the keys whose fingerprint hashes to shard I of N (0 … N-1), into this --db alone",
        )
        cmd.add_argument("-v", "--verbose", action="store_true", help="log every request attempt")
        if name == "serve":
            cmd.add_argument("--run-first", action="store_true", help="collect everything once at start")
    cmd = sub.add_parser("refresh", help="recompute the stored findings from what is collected, then exit")
    cmd.add_argument("--db", required=True, help="the collectors' DuckDB file")
    cmd.add_argument("--config", help="key config TOML ([rules], [reconciliation], [pricing]); secrets not needed")
    cmd.add_argument("--now", help="compute as of this ISO instant (UTC if no offset); default: now")
    smoke.add_parser(sub)
    admin.add_parser(sub)
    return parser


def _refresh(args: argparse.Namespace) -> int:
    from cli.common import UsageError, analysis_config, parse_now, require_db
    from service.refresh import refresh_results

    try:
        now = parse_now(args.now)
        config = analysis_config(args.config)
        require_db(args.db)
        done = refresh_results(args.db, config.rules, config.reconciliation, as_of=now)
    except UsageError as exc:
        print(f"python -m collectors refresh: error: {log_text(exc)}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"database error: {log_text(exc)}", file=sys.stderr)
        return 1
    print(done.line())
    return 0


def _apply_overrides(config: Config, args: argparse.Namespace) -> Config:
    settings = config.collector
    if args.concurrency:
        settings = dataclasses.replace(settings, concurrency=args.concurrency)
    if args.backoff_scale is not None:
        settings = dataclasses.replace(settings, backoff_scale=args.backoff_scale)
    config = dataclasses.replace(config, collector=settings)
    return config.for_shard(*args.shard) if args.shard else config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "refresh":
        with restricted_umask():
            return _refresh(args)
    if args.command in ("smoke", "admin"):
        return (smoke if args.command == "smoke" else admin).run(args)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[handler])
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    with restricted_umask():
        return _run(args)


def _progress(message: str) -> None:
    print(log_text(message), file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    try:
        config = _apply_overrides(load_config(args.config, args.base_url), args)
        endpoints = None
        if args.endpoints:
            from collectors.endpoints import ENDPOINTS

            endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
            unknown = [e for e in endpoints if e not in ENDPOINTS]
            if unknown:
                raise ConfigError(f"unknown endpoint(s) {', '.join(unknown)}; known: {', '.join(ENDPOINTS)}")
        if args.command == "once":
            kwargs = {"endpoints": endpoints} if endpoints else {}
            done = asyncio.run(collect_and_refresh(config, args.db, progress=_progress, **kwargs))
            apply_retention(config, args.db)
            summary = done.run
            print(summary.line())
            if done.results is not None:  # stdout keeps its one line; the refresh is reported beside progress
                print(done.results.line(), file=sys.stderr)
            elif done.results_error is not None:
                print(f"results not refreshed: {log_text(done.results_error)}", file=sys.stderr)
            return 0 if summary.keys_ok or not config.keys else 1
        from service.scheduler import serve

        return serve(config, args.db, run_first=args.run_first)
    except ConfigError as exc:
        print(f"config error: {log_text(exc)}", file=sys.stderr)
        return 2
    except ShardMismatch as exc:
        print(f"error: {args.db}: {log_text(exc)}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"database error: {log_text(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. --db under a path that is a file: cannot create the database there
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"database error: cannot create {args.db}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
