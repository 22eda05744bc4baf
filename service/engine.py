"""The analytics over a partitioned Parquet export on Dask distributed: one task per key-hash bucket.

Each task opens the export restricted to its bucket's keys (store.parquet.bucket_snapshot) and runs the same
use cases a single file runs (service.keys, service.anomalies, service.credits); what compares keys with each
other (the busiest prod key, prod's traffic profile, the upstream inventory, the summary convention) runs
once over the tasks' small results, with the same analytics code, so the rows equal the single-file path's.
Incidents are per key: their tasks need nothing from each other.

Dask is an optional install (requirements-scale.txt): it is imported when an engine is started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from analytics import credits
from analytics.keys import GroupFindings, KeyFacts, Rules, evaluate_group, evaluate_groups
from analytics.pricing import Pricing
from service.anomalies import Detected, combine_detected, detect_incidents
from service.credits import billing_data
from service.keys import key_facts
from store.parquet import bucket_count, bucket_snapshot


class EngineError(Exception):
    """The engine cannot run (not installed, scheduler unreachable): one line for the user."""


INSTALL_HINT = "pip install -r requirements-scale.txt"
WORKER_WAIT_S = 30.0


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 2, processes: bool = True) -> Iterator[Any]:
    """A Dask client on the scheduler at `scheduler` (`tcp://host:8786`), or on a LocalCluster of `workers`."""
    try:
        from dask.distributed import Client, LocalCluster  # noqa: PLC0415 (the optional install)
    except ImportError:
        raise EngineError(f"the Dask engine is not installed: {INSTALL_HINT}") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        with client:
            try:  # tasks would wait for a worker for ever
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                raise EngineError(
                    f"the Dask scheduler at {scheduler} has no worker after {WORKER_WAIT_S:.0f} s"
                ) from None
            yield client
        return
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=None, silence_logs=40
    )
    with cluster, Client(cluster) as client:
        yield client


def _per_bucket(client: Any, folder: str, task: Callable[..., Any], *args: Any) -> list[Any]:
    """Futures of `task(folder, bucket, *args)` for every bucket of the export."""
    buckets = range(bucket_count(folder))
    return [client.submit(task, folder, b, *args, pure=False) for b in buckets]


# --------------------------------------------------------------------------------------- one bucket each


def _key_group(folder: str, bucket: int, now: datetime, rules: Rules) -> GroupFindings:
    with bucket_snapshot(folder, [bucket]) as source:
        return evaluate_group(KeyFacts.from_frames(key_facts(source, now, rules)), now, rules)


def _incident_group(folder: str, bucket: int, now: datetime, since: datetime | None) -> Detected:
    with bucket_snapshot(folder, [bucket]) as source:
        return detect_incidents(source, now, since)


def _credit_group(
    folder: str, bucket: int, now: datetime, since: datetime | None, settings: credits.ReconcileSettings
) -> credits.GroupReconciliation:
    with bucket_snapshot(folder, [bucket]) as source:
        # As cli.reconcile: every job up to now, discrepancies from `since`.
        data = billing_data(source, None, now, None, settings.pricing, orphans_since=since)
        return credits.reconcile_group(data, settings, now, start=since)


def _votes(group: credits.GroupReconciliation) -> tuple[dict[str, list[int]], Pricing]:
    return group.fits.votes, group.pricing


# --------------------------------------------------------------------------------------------- the fleet


def key_findings(client: Any, folder: str | Path, now: datetime, rules: Rules) -> pd.DataFrame:
    """Every key finding (analytics.keys.FINDING_COLUMNS), as service.keys.evaluate_findings on one file."""
    groups = client.gather(_per_bucket(client, str(folder), _key_group, now, rules))
    return evaluate_groups(groups, now, rules)


@dataclass(frozen=True)
class FleetIncidents:
    frame: pd.DataFrame
    keys: list[str]


def incidents(client: Any, folder: str | Path, now: datetime, since: datetime | None = None) -> FleetIncidents:
    """Every incident, as service.anomalies.detect_incidents on one file."""
    found: list[Detected] = client.gather(_per_bucket(client, str(folder), _incident_group, now, since))
    fleet = combine_detected(found)
    return FleetIncidents(fleet.incidents, fleet.keys)


@dataclass(frozen=True)
class FleetReconciliation:
    found: pd.DataFrame  # credits.DISCREPANCY_COLUMNS
    pricing: Pricing


def reconcile(
    client: Any,
    folder: str | Path,
    now: datetime,
    since: datetime | None,
    settings: credits.ReconcileSettings,
) -> FleetReconciliation:
    """Every discrepancy from `since` (no ledger), as analytics.credits.reconcile on one file's billing data.

    Two rounds: each bucket judges its jobs and learns what its summary days say of the vendor's convention
    (kept on the workers); the votes are summed into one convention; each bucket then settles its days."""
    groups = _per_bucket(client, str(folder), _credit_group, now, since, settings)
    votes = client.gather([client.submit(_votes, g, pure=False) for g in groups])
    left_out = credits.summary_convention(v for v, _ in votes)
    finished = client.gather([client.submit(credits.finish_reconcile, g, left_out, pure=False) for g in groups])
    return FleetReconciliation(credits.join_reconciliations(finished).found, votes[0][1])
