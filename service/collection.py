"""Collection as the service runs it: collect, apply retention, then refresh the stored results."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from collectors.sync import PER_KEY_ORDER, RunSummary, collect, prune_store, utc_now
from config import Config
from service.refresh import RefreshSummary, refresh_results

if TYPE_CHECKING:  # the transport is the test seam; only collectors.http_client does HTTP
    from collectors.http_client import AsyncTransport


@dataclass(frozen=True)
class Collected:
    run: RunSummary
    results: RefreshSummary | None
    results_error: str | None = None  # the refresh failed: the collection stands, pages compute on the fly


async def collect_and_refresh(
    config: Config,
    db_path: str | Path,
    *,
    endpoints: Sequence[str] = ("pricing", "admin", *PER_KEY_ORDER),
    mode: str = "once",
    transport: AsyncTransport | None = None,
    now: Callable[[], datetime] = utc_now,
    progress: Callable[[str], None] | None = None,
    refresh: bool = True,
) -> Collected:
    """One collection, then the results refresh as of the collector's clock (when any key was collected)."""
    run = await collect(
        config, db_path, endpoints=endpoints, mode=mode, transport=transport, now=now, progress=progress
    )
    if not (refresh and run.keys_ok):
        return Collected(run, None)
    try:
        return Collected(run, refresh_results(db_path, config.rules, config.reconciliation, as_of=now()))
    except Exception as exc:  # logged as failed in result_refresh_log; the data collected is kept either way
        return Collected(run, None, f"{type(exc).__name__}: {exc}")


def apply_retention(config: Config, db_path: str | Path, now: datetime | None = None) -> int:
    return prune_store(config, db_path, now)
