"""Where the dashboard's data lives: `-- --db FILE --config FILE` arguments or RBV_* environment variables."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DB = Path("data") / "monitor.duckdb"


@dataclass(frozen=True)
class Settings:
    db_path: Path
    config_path: Path | None
    demo: bool


def load_settings(argv: list[str] | None = None) -> Settings:
    """Command-line arguments after `--` win over RBV_DB / RBV_CONFIG / RBV_DEMO."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    parser.add_argument("--config")
    parser.add_argument("--demo", action="store_true")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    db = args.db or os.environ.get("RBV_DB") or str(DEFAULT_DB)
    config = args.config or os.environ.get("RBV_CONFIG") or None
    demo = args.demo or os.environ.get("RBV_DEMO", "") not in ("", "0", "false")
    return Settings(db_path=Path(db), config_path=Path(config) if config else None, demo=demo)
