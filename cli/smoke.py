"""`python -m collectors smoke`: a smoke check per key, for a deploy pipeline (exit 0 pass, 1 fail, 2 config)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from cli_args import OneLineParser
from config import ConfigError, load_config
from private_files import restricted_umask
from service.smoke import run_smoke_checks, select_keys
from store import StoreError
from untrusted import log_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser(
        "smoke",
        help="check each key end to end: a success path and a failure path (exit 0 all pass, 1 any fails, 2 config)",
    )
    assert isinstance(cmd, OneLineParser)
    cmd.add_argument("--config", required=True, help="key config TOML")
    cmd.add_argument("--db", required=True, help="DuckDB file: the checks are stored there, their jobs collected")
    cmd.add_argument(
        "--key", action="append", metavar="NAME", help="check this key (repeatable); default: keys with smoke = true"
    )
    cmd.add_argument("--base-url", help="override [api] base_url")
    cmd.add_argument("--format", choices=("text", "json"), default="text", help="json: one JSON list of checks")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, args.base_url)
        keys = select_keys(config, args.key)
        with restricted_umask():
            result = asyncio.run(run_smoke_checks(config, args.db, keys, trigger="cli"))
    except ConfigError as exc:
        print(f"config error: {log_text(exc)}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"database error: {log_text(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"database error: cannot use {args.db}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result.rows()))
    for verdict in result.verdicts:
        obs = verdict.observation
        if args.format == "text":
            word = "PASS" if verdict.ok else "FAIL"
            line = f"{word} {obs.key_name} {obs.path}: {verdict.status}"
            if obs.job_id:
                charged = "?" if obs.credits_charged is None else f"{obs.credits_charged:.2f}"
                expected = "?" if verdict.credits_expected is None else f"{verdict.credits_expected:.2f}"
                line += f", job {obs.job_id}, {charged} credits charged (expected {expected}) in {obs.seconds:.1f} s"
            print(log_text(line + ("" if verdict.ok else f" — {verdict.detail}")))
        elif not verdict.ok:  # the JSON row keeps its shape: the why goes to stderr
            print(log_text(f"FAIL {obs.key_name} {obs.path}: {verdict.detail}"), file=sys.stderr)
    print(f"model {result.model}, rates {log_text(result.pricing_label)}", file=sys.stderr)
    if result.alerts_opened:
        print(f"{result.alerts_opened} alert(s) opened", file=sys.stderr)
    if result.alert_error:
        print(f"alerts: {log_text(result.alert_error)}", file=sys.stderr)
    if result.store_error:
        print(f"the results were not stored: {log_text(result.store_error)}", file=sys.stderr)
    return 0 if result.ok else 1
