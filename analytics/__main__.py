"""Command line for the analytics: `python -m analytics keys|anomalies|reconcile|review ...`."""

from __future__ import annotations

import importlib
import sys

from cli_args import OneLineParser
from private_files import restricted_umask

# Each command lives in its own module exposing `register(subparsers)` and `run(args) -> int`.
COMMANDS = {
    "keys": "analytics.cli_keys",
    "anomalies": "analytics.cli_anomalies",
    "reconcile": "analytics.cli_reconcile",
    "review": "analytics.cli_review",
}


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m analytics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    modules = {}
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
        modules[name] = module
    args = parser.parse_args(argv)
    with restricted_umask():
        return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
