"""Command line for the analytics: `python -m analytics keys|anomalies|reconcile|review ...`."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

# Each command lives in its own module exposing `register(subparsers)` and `run(args) -> int`.
COMMANDS = {
    "keys": "analytics.cli_keys",
    "anomalies": "analytics.cli_anomalies",
    "reconcile": "analytics.cli_reconcile",
    "review": "analytics.cli_review",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), like every other error here."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m analytics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
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
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
