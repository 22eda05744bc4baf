"""What the collectors need to know before fetching: cursors and the jobs already held per key."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.connection import Source, StoreNotReady, reading


@dataclass
class CollectorState:
    cursors: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    job_status: dict[str, dict[str, str]] = field(default_factory=dict)
    # The vendor's stored inventory: fingerprints it lists as disabled (None: no inventory collected yet).
    disabled_fingerprints: frozenset[str] | None = None
    # When each key's usage endpoints were last tried (a disabled key is tried again once its interval passed).
    last_tried: dict[str, datetime] = field(default_factory=dict)

    def cursor(self, key_name: str, endpoint: str) -> dict[str, Any] | None:
        return self.cursors.get((key_name, endpoint))

    def jobs_of(self, key_name: str) -> dict[str, str]:
        return self.job_status.get(key_name, {})


def load_collector_state(db_path: Source, key_names: list[str] | None = None, with_jobs: bool = True) -> CollectorState:
    """Cursors, known job statuses, the keys disabled upstream and when each key was last tried (for the given
    keys, or all); empty for a new database.

    Job statuses are the bulk (every job ever seen): runs that do not collect jobs skip them.
    """
    state = CollectorState()
    params: list[Any] = []
    where = ""
    if key_names is not None:
        where, params = "WHERE list_contains(?, key_name)", [list(key_names)]
    try:
        with reading(db_path) as con:
            inventory = con.execute("SELECT key_fingerprint, enabled FROM admin_keys").fetchall()
            if inventory:
                state.disabled_fingerprints = frozenset(fp for fp, enabled in inventory if enabled is False)
            key_filter = "AND list_contains(?, key_name)" if key_names is not None else ""
            for key_name, tried in con.execute(
                "SELECT key_name, max(finished_at) FROM run_item_log "
                f"WHERE endpoint IN ('summary', 'events', 'jobs') {key_filter} GROUP BY key_name",
                params,
            ).fetchall():
                state.last_tried[key_name] = tried
            for key_name, endpoint, cursor in con.execute(
                f"SELECT key_name, endpoint, cursor FROM sync_state {where}", params
            ).fetchall():
                state.cursors[(key_name, endpoint)] = json.loads(cursor) if cursor else {}
            if not with_jobs:
                return state
            for key_name, job_id, status in con.execute(
                f"SELECT key_name, job_id, status FROM job_state {where}", params
            ).fetchall():
                state.job_status.setdefault(key_name, {})[job_id] = status
    except StoreNotReady:
        pass
    return state
