"""Command line: `python -m simulator --port 8765 [--seed 7] [--keys 30] [--days 90] ...`."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading

from private_files import restrict_umask

from .clock import Clock, parse_instant
from .config_writer import write_config
from .faults import FaultSpec, FaultSpecError, parse_faults
from .ledger import write_ledger
from .server import DEFAULT_ADMIN_TOKEN, start_server
from .shapes import ACCEPTED, PRICING_SHAPES, RECORD_SHAPES, ShapeError, parse_shapes
from .world import SUMMARY_EXCLUDABLE, World


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulator", description="Stand-in RemoveBGVideo API on 127.0.0.1.")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0 = any free port)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keys", type=int, default=30, help="number of keys in the world")
    p.add_argument("--days", type=int, default=90, help="days of history before the anchor")
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every API response")
    p.add_argument("--faults", default=None, help="e.g. rate429=0.1,rate5xx=0.05,malformed=0.01,drop=0.01,timeout=0.01")
    p.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds sent with injected 429s")
    p.add_argument("--timeout-s", type=float, default=30.0, help="how long an injected timeout stalls")
    p.add_argument("--now", default=None, help="freeze the world clock at this ISO instant (UTC)")
    p.add_argument("--write-config", metavar="FILE", help="write the key config TOML for this world")
    p.add_argument("--write-ledger", metavar="FILE", help="write the team ledger CSV for this world")
    p.add_argument("--ledger-days", type=int, default=30, help="days the ledger covers, ending now")
    p.add_argument(
        "--shapes",
        default=None,
        help=f"answer record kinds in other JSON shapes, e.g. pricing=mixed,jobs=camel (pricing: "
        f"{', '.join(PRICING_SHAPES)}; summary, events, jobs: {', '.join(RECORD_SHAPES)}); "
        f"accepted by the contract: {', '.join(ACCEPTED['pricing'])} and camel",
    )
    p.add_argument(
        "--summary-excludes",
        default="",
        help="categories the daily usage summary leaves out of its credits, e.g. duplicate_charge,orphan_charge "
        "(default: it counts every charge)",
    )
    p.add_argument("--admin-token", default=DEFAULT_ADMIN_TOKEN)
    p.add_argument("--no-serve", action="store_true", help="only write the requested files, then exit")
    p.add_argument("--warm", action="store_true", help="precompute what a first collection reads (benchmarks)")
    return p


def _fail(message: str) -> int:
    print(f"simulator: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    restrict_umask()  # the config it writes holds the world's secrets
    try:
        faults = parse_faults(args.faults, FaultSpec(retry_after=args.retry_after, timeout_s=args.timeout_s))
    except FaultSpecError as exc:
        return _fail(f"bad --faults: {exc}")
    try:
        shapes = parse_shapes(args.shapes)
    except ShapeError as exc:
        return _fail(f"bad --shapes: {exc}")
    excludes = frozenset(c.strip() for c in args.summary_excludes.split(",") if c.strip())
    if excludes - set(SUMMARY_EXCLUDABLE):
        return _fail(f"bad --summary-excludes: known categories are {', '.join(SUMMARY_EXCLUDABLE)}")
    if args.keys < 1 or args.days < 1 or not 0 <= args.port <= 65535:
        return _fail("--keys and --days must be >= 1 and --port in 0..65535")
    try:
        clock = Clock(parse_instant(args.now)) if args.now else Clock(None)
    except ValueError:
        return _fail(f"bad --now: {args.now!r} is not an ISO-8601 instant")
    world = World(seed=args.seed, n_keys=args.keys, days=args.days, now=clock, summary_excludes=excludes)
    if args.warm:
        print(f"warming: {world.warm()} key-days computed", flush=True)
        # Millions of long-lived warmed objects: keep the cyclic GC from rescanning them per request.
        gc.freeze()
    handle = None
    if not args.no_serve:
        try:
            handle = start_server(world, args.port, faults, args.latency_ms, args.admin_token, shapes)
        except OSError as exc:
            return _fail(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}")
    port = handle.port if handle else args.port
    if args.write_config:
        write_config(world, args.write_config, f"http://127.0.0.1:{port}")
    if args.write_ledger:
        write_ledger(world, args.write_ledger, world.now(), args.ledger_days)
    if handle is None:
        return 0
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"stand-in API on {handle.base_url} (seed {args.seed}, {args.keys} keys, {args.days} days)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
