"""Command line for the analytics: `python -m analytics keys|anomalies|reconcile|review|budgets|alerts|annotate ...`."""

from __future__ import annotations

import sys

from cli import alerts, annotate, anomalies, budgets, keys, reconcile, review
from cli_args import OneLineParser
from private_files import restricted_umask

# Each command's module exposes `register(subparsers)` and `run(args) -> int`.
COMMANDS = {
    "keys": keys,
    "anomalies": anomalies,
    "reconcile": reconcile,
    "review": review,
    "budgets": budgets,
    "alerts": alerts,
    "annotate": annotate,
}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m analytics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for module in COMMANDS.values():
        module.register(sub)
    args = parser.parse_args(argv)
    with restricted_umask():
        return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
