"""Cached access to the store's typed reads and the service's use cases, with empty states instead of tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import streamlit as st

from config import DEFAULTS, Config, ConfigError, load_config
from service.results import Provenance
from store import StoreError, StoreNotReady, reads
from ui.format import plain

P = ParamSpec("P")
T = TypeVar("T")
CACHE_TTL_S = 30


class _List(tuple):
    """A list argument, frozen for the cache key and thawed for the call."""


def _freeze(value: Any) -> Any:
    return _List(value) if isinstance(value, list) else value


def _thaw(value: Any) -> Any:
    return list(value) if isinstance(value, _List) else value


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _cached(name: str, _func: Callable[..., Any], args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    # The function is called by reference; its qualified name keys the cache (Streamlit cannot hash functions).
    return _func(*map(_thaw, args), **{k: _thaw(v) for k, v in kwargs})


def read(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call a store read or a service use case, passed by reference, through a short TTL cache keyed by its
    arguments (lists count as tuples)."""
    frozen = tuple(sorted((k, _freeze(v)) for k, v in kwargs.items()))
    return _cached(f"{func.__module__}.{func.__qualname__}", func, tuple(map(_freeze, args)), frozen)


def forget_reads() -> None:
    """Drop every cached read (after this session changed the store: a smoke check collected jobs)."""
    _cached.clear()


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _config(path: str | None, modified: float) -> tuple[Config, str | None]:
    if path is None:
        return DEFAULTS, None
    try:
        return load_config(path, secrets=False), None
    except ConfigError as exc:
        return DEFAULTS, f"{exc}; using the default settings"


def page_config(config_path: Path | None) -> tuple[Config, str | None]:
    """The dashboard's view of the key config (no secrets needed) and, when it cannot be used, why (defaults
    then apply). Re-read when the file changes."""
    if config_path is None:
        return _config(None, 0.0)
    try:
        modified = Path(config_path).stat().st_mtime
    except OSError:
        modified = -1.0
    return _config(str(config_path), modified)


def provenance_caption(what: str, origin: Provenance) -> None:
    """Say when a page's findings were computed; warn when newer data was collected since."""
    text = f"{what.capitalize()} {origin.sentence()}."
    if origin.stale:
        st.warning(text, icon=":material/update:")
    else:
        st.caption(text)


def guard_store(db_path: Any) -> bool:
    """Show a clear empty state or error when the database cannot be read; True when it can."""
    try:
        read(reads.freshness, db_path)
    except StoreNotReady as exc:
        st.info(
            f"No collected data yet. {plain(exc, None)}.\n\n"
            f"Collect once with `python -m collectors once --config CONFIG --db {db_path}`, "
            "or start the demo with `make run`."
        )
        return False
    except StoreError as exc:
        st.error(f"Cannot read the database: {plain(exc, None)}")
        return False
    return True


def hour_of(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)
