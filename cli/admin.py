"""`python -m collectors admin disable|enable|rotate`: key actions through the admin API, behind the guardrails;
one JSON line with the outcome, which the `key_actions` audit also records."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

from cli_args import OneLineParser, check_output
from collectors.sync import utc_now
from config import ConfigError, load_config
from private_files import restricted_umask, write_secret
from service.key_actions import (
    ActionRequest,
    ActionResult,
    Preview,
    access_for,
    perform_action,
    preview_action,
    refuse,
)
from store import StoreError
from untrusted import log_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    admin = sub.add_parser("admin", help="disable, enable or rotate a key through the admin API (audited)")
    actions = admin.add_subparsers(dest="action", required=True, parser_class=OneLineParser)
    for name, text in (("disable", "disable a key (refused with traffic in the last 24 h unless --force)"),
                       ("enable", "enable a disabled key"),
                       ("rotate", "create the replacement of a key; its secret is shown once")):  # fmt: skip
        cmd = actions.add_parser(name, help=text)
        cmd.add_argument("--config", required=True, help="key config TOML ([actions] enabled = true, admin token)")
        cmd.add_argument("--db", required=True, help="the collectors' DuckDB file (traffic facts, audit)")
        cmd.add_argument("--key", required=True, metavar="NAME", help="the key (or a rotated key still tracked)")
        cmd.add_argument("--base-url", help="override [api] base_url")
        cmd.add_argument("--actor", help="who acts (default: the login name)")
        cmd.add_argument("--dry-run", action="store_true", help="check and say what would happen; change nothing")
        if name == "rotate":
            cmd.add_argument("--new-name", required=True, metavar="NAME", help="the replacement's <service>-<env> name")
            cmd.add_argument("--secret-out", metavar="FILE", help="write the new secret here (0600) instead of stdout")
            cmd.add_argument("--reason", help="why (recorded in the audit)")
        else:
            cmd.add_argument("--reason", required=True, help="why (recorded in the audit)")
            cmd.add_argument("--yes", action="store_true", help="do not ask for confirmation")
            cmd.add_argument("--force", action="store_true", help="disable despite traffic in the last 24 h")


def _confirmed(preview: Preview, args: argparse.Namespace) -> bool:
    if args.action == "rotate" or args.dry_run or getattr(args, "yes", False):
        return True
    if not sys.stdin.isatty():
        return False
    name = preview.target.key_name if preview.target else args.key
    print(f"Type the key name ({name}) to confirm: ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip() == name


def _print(result: ActionResult, secret_file: str | None) -> None:
    line = result.line()
    if result.secret is not None:
        if secret_file:
            line["secret_file"] = secret_file
        else:
            line["secret"] = result.secret  # shown this once; the audit and the database never hold it
    print(json.dumps(line))
    if result.audit_error:
        print(f"the audit row was not written: {log_text(result.audit_error)}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, args.base_url)
        secret_out = getattr(args, "secret_out", None)
        if secret_out:  # checked before the key exists: a secret with nowhere to go would be lost
            check_output("--secret-out", secret_out, False, [args.config, args.db])
    except ConfigError as exc:
        print(f"config error: {log_text(exc)}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"python -m collectors admin: error: {log_text(exc)}", file=sys.stderr)
        return 2
    actor = args.actor or getpass.getuser()
    access = access_for(config, actor, signed_in=True)
    request = ActionRequest(
        action=args.action, key_name=args.key, actor=actor, face="cli", reason=args.reason,
        force=getattr(args, "force", False), dry_run=args.dry_run, new_name=getattr(args, "new_name", None),
    )  # fmt: skip
    try:
        with restricted_umask():
            preview = asyncio.run(preview_action(config, args.db, request, access))
            print(log_text(preview.confirmation(utc_now())), file=sys.stderr)
            if preview.allowed and not _confirmed(preview, args):
                result = refuse(args.db, preview, access, "not confirmed: rerun with --yes, or type the key name")
            else:
                result = asyncio.run(perform_action(config, args.db, request, access))
            written = None
            if result.secret is not None and secret_out:
                try:
                    written = str(write_secret(secret_out, result.secret))
                except OSError as exc:  # the key exists now: its secret must reach the operator somehow
                    print(f"could not write {secret_out} ({exc.strerror or exc}); the secret follows", file=sys.stderr)
            _print(result, written)
    except StoreError as exc:
        print(f"database error: {log_text(exc)}", file=sys.stderr)
        return 1
    return 0 if result.outcome in ("done", "dry_run") else 1
