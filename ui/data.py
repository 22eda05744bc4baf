"""Cached access to the store's read functions, with empty states instead of tracebacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from store import StoreError, StoreNotReady, reads
from ui.format import plain

T = TypeVar("T")
CACHE_TTL_S = 30


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _cached(func_name: str, db_path: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return getattr(reads, func_name)(db_path, *args, **dict(kwargs))


def read(func: Callable[..., T], db_path: Any, *args: Any, **kwargs: Any) -> T:
    """Call a `store.reads` function through a short TTL cache (keyed by its arguments)."""
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
    args = tuple(tuple(a) if isinstance(a, list) else a for a in args)
    return _cached(func.__name__, str(db_path), args, frozen)


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
