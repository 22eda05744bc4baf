"""The collector's store worker lets readers in: after every release of the file, for whatever reason, it
leaves it closed for a reader's window before the next call opens it again."""

from __future__ import annotations

import threading
import time
from multiprocessing import Pipe

import pytest

from collectors import store_worker


class RecordingHeld:
    """Stands in for the worker's held connection: records when the file is opened and released."""

    def __init__(self, due_after: float | None = None) -> None:
        self.events: list[tuple[str, float]] = []
        self.held = False
        self.due_after = due_after
        self.opened = 0.0

    def touch(self) -> str:
        if not self.held:
            self.opened = time.monotonic()
            self.events.append(("open", self.opened))
            self.held = True
        return "done"

    def release(self) -> None:
        if self.held:
            time.sleep(0.2)  # the checkpoint on close, during which the next call arrives
            self.events.append(("release", time.monotonic()))
            self.held = False

    def due(self) -> bool:
        return self.held and self.due_after is not None and time.monotonic() - self.opened >= self.due_after

    def times(self, kind: str) -> list[float]:
        return [at for what, at in self.events if what == kind]


def _serve(monkeypatch: pytest.MonkeyPatch, held: RecordingHeld):
    monkeypatch.setattr(store_worker, "_HELD", held)
    monkeypatch.setattr(store_worker, "_CALLS", {"touch": held.touch})
    ours, theirs = Pipe()
    worker = threading.Thread(target=store_worker._serve_calls, args=(theirs,), daemon=True)
    worker.start()
    return ours, worker


def _call(conn) -> None:
    conn.send(("touch", ()))
    assert conn.recv() == ("ok", "done")


@pytest.mark.parametrize(
    ("why", "due_after"), [("idle", None), ("held long enough", 0.0)], ids=["idle release", "release when due"]
)
def test_the_file_stays_closed_for_readers_after_every_release(monkeypatch, why, due_after):
    held = RecordingHeld(due_after)
    conn, worker = _serve(monkeypatch, held)
    try:
        _call(conn)
        if why == "idle":
            # Idle past IDLE_RELEASE_S: the worker releases; the next call arrives during that release.
            time.sleep(store_worker.IDLE_RELEASE_S + 0.05)
        _call(conn)
        released, reopened = held.times("release")[0], held.times("open")[1]
        assert reopened - released >= store_worker.READER_WINDOW_S * 0.95
    finally:
        conn.close()
        worker.join(timeout=5)
    assert not worker.is_alive()
