"""argparse for every command line here: a usage mistake is one line on stderr and exit 2; shared value types."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other error here."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def shard_spec(text: str) -> tuple[int, int]:
    """`I/N` (shard I of N, numbered 0 … N-1) as (I, N)."""
    index, sep, count = text.strip().partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N, e.g. 0/3 (shards are numbered 0 … N-1)") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"{text!r}: I/N needs N >= 1 and 0 <= I < N, e.g. 0/3 … 2/3")
    return i, n


def check_output(flag: str, out: str, force: bool, inputs: Iterable[str | Path | None]) -> None:
    """Refuse (ValueError, one line) an output file that is one of the command's inputs, or exists without --force.

    An input is never overwritten, even with --force: `review --db X --out X` once replaced a database
    with its own report. A database's write-ahead log (`X.wal`) counts as the database.
    """
    target = Path(out)
    for item in inputs:
        if item is None:
            continue
        source = Path(item)
        for candidate in (source, source.with_name(source.name + ".wal")):
            if _same_file(target, candidate):
                raise ValueError(f"{flag}: {out} is a file this command reads ({source}): choose another file")
    if target.is_dir():
        raise ValueError(f"{flag}: {out} is a folder: give a file name")
    if target.exists() and not force:
        raise ValueError(f"{flag}: {out} already exists: pass --force to replace it")
    if not target.parent.is_dir():
        raise ValueError(f"{flag}: cannot write {out}: the folder {target.parent} does not exist")


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()
