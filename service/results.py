"""Stored results: whether a face may use them for its `now` and settings, and how to say how fresh they are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from store import Source, StoreError, result_tables
from store.result_tables import ResultMeta


def settings_tag(settings: Any) -> str:
    """What identifies the settings a result was computed with (frozen dataclasses print every field)."""
    return repr(settings)


# Pages judge to the minute (so reruns share a cache entry): results stamped within that minute stand for it.
SAME_MINUTE = timedelta(minutes=1)


def usable(source: Source, kind: str, now: datetime, **settings: Any) -> ResultMeta | None:
    """The stored `kind` of results when they can stand for a computation as of `now` with these settings.

    They can when they were computed at or before `now` (or within its minute) with the same settings; an
    explicit `now` before them (replaying the past) or other settings compute on the fly, with the same code.
    """
    try:
        meta = result_tables.current_results(source).get(kind)
    except StoreError:
        return None
    if meta is None or meta.as_of >= now + SAME_MINUTE:
        return None
    if any(meta.detail.get(name) != settings_tag(value) for name, value in settings.items()):
        return None
    return meta


@dataclass(frozen=True)
class Provenance:
    """Where a page's or command's findings came from: stored (computed when, from which run) or just now."""

    as_of: datetime
    meta: ResultMeta | None
    newest_run_at: datetime | None = None  # the newest collection finished, when newer than the results

    @property
    def stored(self) -> bool:
        return self.meta is not None

    @property
    def stale(self) -> bool:
        return self.newest_run_at is not None

    def sentence(self) -> str:
        if self.meta is None:
            return f"computed just now, as of {self.as_of:%Y-%m-%d %H:%M} UTC (no stored results cover this)"
        run = f"collection run {self.meta.data_run_id}" if self.meta.data_run_id is not None else "no collection"
        text = f"computed {self.as_of:%Y-%m-%d %H:%M} UTC by the collector's refresh {self.meta.refresh_id}, from {run}"
        if self.stale:
            text += f"; stale: newer data was collected at {self.newest_run_at:%Y-%m-%d %H:%M} UTC"
        return text


def provenance(source: Source, now: datetime, meta: ResultMeta | None) -> Provenance:
    """Provenance of results; stored ones are stale when a collection finished after the run they reflect."""
    if meta is None:
        return Provenance(now, None)
    mark = result_tables.data_mark(source)
    newer = mark.run_id is not None and (meta.data_run_id is None or mark.run_id > meta.data_run_id)
    return Provenance(meta.as_of, meta, mark.finished_at if newer else None)
