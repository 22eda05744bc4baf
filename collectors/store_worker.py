"""The collector's store worker: reads each key group's state and writes the collection runs' batches, in
order, in a process of its own.

Fetching (HTTP, parsing) and writing (Arrow conversion, DuckDB) each keep a core busy on a large fleet; in one
process they share one GIL, and DuckDB's calls, which release and retake it many times a batch, wait behind
the event loop each time (3,000 keys: 24 s without writes, 72 s with them on a thread). The worker is one
long-lived child per collector process, started on first use (`python -m collectors.store_worker`, a socket
pair between them), so runs after the first pay nothing for it. What crosses the socket is plain data: no
secrets (keys are reduced to their fingerprint before they are queued), nothing that runs code.

If the collector dies, the worker reads end-of-file and exits after the transaction it is in, which commits
whole or not at all (cursors advance only with their rows).
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import ctypes.util
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from store import StoreError, writes
from store.collector_state import CollectorState, load_collector_state
from store.connection import HeldWriter


@dataclass
class PreparedBatch:
    """What one flush writes, as plain data: rows and cursors (writes.Batch), landed bodies, quarantined
    records and the per key and endpoint outcomes of the run."""

    batch: writes.Batch = field(default_factory=writes.Batch)
    landings: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    run_items: list[dict[str, Any]] = field(default_factory=list)


def _malloc_trim_function() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: its allocator returns memory its own way
        return None


_MALLOC_TRIM = _malloc_trim_function()


def release_memory() -> None:
    """Hand the memory a batch used back to the system (glibc keeps freed blocks of many sizes otherwise:
    a 3,000-key collection grew 215 -> 530 MB with under 50 MB alive)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


# The worker keeps the file open between batches (see store.connection.HeldWriter) only while they come back
# to back: it releases it when no call has come for IDLE_RELEASE_S (a small run's batches, a second apart
# (collectors.sync.FLUSH_INTERVAL_S), each release it, so readers get in between as before), when a run ends
# ("release"), and after HOLD_S at the latest. After a release for time held it leaves the file closed for
# READER_WINDOW_S, longer than a waiting reader sleeps between tries (store.connection's backoff), or a
# reader would only get in by luck while the next batch is already waiting: at most READER_WINDOW_S / HOLD_S
# of the writer's time, and a reader waits at most about HOLD_S. An idle release leaves the same window.
HOLD_S = 5.0
IDLE_RELEASE_S = 0.5
READER_WINDOW_S = 0.4
# DuckDB's own memory while writing (it spills beyond) and its threads: with the batch size, what bounds the
# worker's memory. Since the history tables lost their indexes (migration 006) nothing DuckDB holds grows with
# the file beyond this cap. Replaying one 10,000-key first collection's batches (126, 3.65 M rows): 256 MB
# with indexes took 80 s of CPU and peaked at 535 MB; without them, 192 MB: 41 s, 443 MB; 128 MB: 44 s,
# 383 MB; 64 MB: 66 s, 319 MB (it re-reads what it evicted). One thread: the second bought no time on a
# machine whose cores the collector and the API share, and cost 40 MB.
MEMORY_LIMIT = "128MB"
THREADS = 1
_HELD = HeldWriter(HOLD_S, MEMORY_LIMIT, THREADS)


def load_state(db_path: str | Path, key_names: list[str], with_jobs: bool) -> CollectorState:
    """Cursors and known jobs of these keys, read through the worker's connection."""
    return load_collector_state(_HELD.snapshot(db_path), key_names, with_jobs)


def write_batch(db_path: str | Path, run_id: int, prepared: PreparedBatch) -> int:
    """One transaction: bodies, quarantine, rows with their cursors, run items; returns the rows changed."""
    changed = 0
    with _HELD.transaction(db_path) as con:
        now = datetime.now(UTC).replace(tzinfo=None)
        writes.land_raw(con, [dict(landing, fetched_at=now) for landing in prepared.landings])
        for reject in prepared.rejects:
            changed += writes.quarantine(con, fetched_at=now, **reject)
        changed += prepared.batch.write(con, now)
        writes.record_run_items(con, run_id, prepared.run_items, now)
    return changed


_CALLS: dict[str, Callable[..., Any]] = {"state": load_state, "write": write_batch, "release": _HELD.release}


def _serve(conn: Connection) -> None:
    """The worker's loop: (name, args) in, ("ok", result) or (kind of error, message) out, until EOF."""
    try:
        _serve_calls(conn)
    finally:
        _HELD.release()


def _serve_calls(conn: Connection) -> None:
    reopen_at = 0.0
    while True:
        try:
            if _HELD.held and not conn.poll(IDLE_RELEASE_S):
                _HELD.release()  # a pause: let readers in
                # Its checkpoint can take most of a second, and a call that came meanwhile would reopen the file
                # at once: a reader then waited through several holds (9 s at 3,000 keys).
                reopen_at = time.monotonic() + READER_WINDOW_S
                continue
            message = conn.recv()
        except (EOFError, OSError):
            return
        if not _HELD.held and (wait := reopen_at - time.monotonic()) > 0:
            time.sleep(wait)  # the readers' window after a long hold
        name, args = message
        del message
        try:
            reply = ("ok", _CALLS[name](*args))
        except StoreError as exc:
            reply = ("store", str(exc))
        except Exception as exc:  # reported to the collector, which raises it there
            reply = ("error", f"{type(exc).__name__}: {exc}")
        del args
        try:
            conn.send(reply)
        except OSError:
            return
        if _HELD.due():
            _HELD.release()  # checkpoint while the collector prepares its next batch
            reopen_at = time.monotonic() + READER_WINDOW_S
        release_memory()


class StoreWorker:
    """The collector process's store worker: calls run one at a time, in the order made, in the child."""

    def __init__(self) -> None:
        # One thread sends every call: each thread that allocates gets a malloc arena of its own to keep.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collector-store")
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _start(self) -> Connection:
        mine, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "collectors.store_worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                cwd=_ROOT,
                start_new_session=True,  # Ctrl-C and the terminal's signals are for the collector, which decides
            )
        finally:
            theirs.close()
        self._conn = Connection(mine.detach())
        return self._conn

    def _stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=60)  # the end of the socket ends it, after the transaction it is in
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def call_now(self, name: str, *args: Any) -> Any:
        """Blocking: send one call and wait for its answer (a dead worker is restarted by the next call)."""
        with self._lock:
            conn = self._conn if self._conn is not None and self._proc and self._proc.poll() is None else None
            if conn is None:
                self._stop()
                conn = self._start()
            try:
                conn.send((name, args))
                release_memory()
                kind, value = conn.recv()
            except (EOFError, OSError) as exc:
                self._stop()
                raise StoreError(f"the collector's store worker ended unexpectedly ({type(exc).__name__})") from None
        if kind == "store":
            raise StoreError(value)
        if kind == "error":
            raise RuntimeError(f"store worker: {value}")
        return value

    async def call(self, name: str, *args: Any) -> Any:
        """The call on a thread of its own, so the event loop goes on fetching meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self.call_now, name, *args)

    def close(self) -> None:
        """End the worker (the next call starts another)."""
        with self._lock:
            self._stop()


_ROOT = str(Path(__file__).resolve().parents[1])
_WORKER = StoreWorker()
atexit.register(_WORKER.close)


def store_worker() -> StoreWorker:
    """This process's store worker (one per collector process, shared by its runs)."""
    return _WORKER


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
