"""What the analytics commands share: one-line usage errors, instants, the config, where results came from."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli_args import positive_int
from config import DEFAULTS, Config, ConfigError, load_config
from service.engine import EngineError, dask_client  # dask itself is imported only when a cluster starts
from service.results import Provenance
from store import StoreError
from store.parquet import MANIFEST, is_export


class UsageError(Exception):
    """Bad input from the command line, reported as one line."""


def parse_now(text: str | None, flag: str = "--now") -> datetime:
    """An ISO instant as naive UTC (no offset means UTC); the current time when not given."""
    if not text:
        return datetime.now(UTC).replace(tzinfo=None)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: '{text}' is not an ISO-8601 instant (e.g. 2025-06-02T12:00:00Z)") from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def analysis_config(path: str | Path | None) -> Config:
    """The config as the analysis commands read it (every section checked, no secrets needed); defaults
    without a file."""
    if path is None:
        return DEFAULTS
    try:
        return load_config(path, secrets=False)
    except ConfigError as exc:
        raise UsageError(f"--config: {exc}") from None


def require_db(db: str) -> None:
    if not Path(db).is_file():
        raise UsageError(f"--db: {db} does not exist")


def say_provenance(command: str, what: str, origin: Provenance, explicit_now: bool) -> None:
    """On stderr, when stored results answered: as of when, so a script can tell (stdout keeps its shape)."""
    if origin.stored:
        hint = "" if explicit_now else "; give --now to compute as of another instant"
        print(f"analytics {command}: {what} {origin.sentence()}{hint}", file=sys.stderr)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """--db FILE or --parquet DIR, and the engine that runs over them."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", help="the collectors' DuckDB file")
    source.add_argument(
        "--parquet", metavar="DIR", help="a folder `python -m store export` wrote (one file, or a fleet's shards)"
    )
    parser.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="dask: one task per key bucket of --parquet on Dask distributed (requirements-scale.txt)",
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="with --engine dask: the scheduler (tcp://host:8786); default: local"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=2, help="with --engine dask and no --scheduler: local workers"
    )


def source_of(args: argparse.Namespace) -> str:
    """The file or export folder to read, checked against the engine asked for."""
    if args.scheduler and args.engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    if args.engine == "dask" and not args.parquet:
        raise UsageError("--engine dask reads a Parquet export: give --parquet DIR (`python -m store export`)")
    if args.parquet is None:
        require_db(args.db)
        return args.db
    folder = Path(args.parquet)
    if not folder.is_dir():
        raise UsageError(f"--parquet: {folder} is not a folder")
    if not is_export(folder):
        raise UsageError(f"--parquet: {folder} holds no {MANIFEST}: write one with `python -m store export`")
    return str(folder)


@contextlib.contextmanager
def engine_client(args: argparse.Namespace) -> Iterator[Any]:
    """The Dask client the command's tasks run on (service.engine), errors as one line."""
    try:
        with dask_client(args.scheduler, args.workers) as client:
            yield client
    except EngineError as exc:
        raise UsageError(str(exc)) from None
    except (UsageError, StoreError):
        raise
    except Exception as exc:  # a worker or scheduler failed (e.g. lacks this project): one line, no traceback
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UsageError(f"the Dask engine failed: {type(exc).__name__}: {first}") from None
