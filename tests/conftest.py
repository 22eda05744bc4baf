"""Shared fixtures: the stand-in API on a free loopback port, and a database collected from it."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from collectors.sync import RunSummary
from config import Config, load_config
from service.collection import collect_and_refresh
from simulator.config_writer import write_config
from simulator.server import ServerHandle, start_server
from simulator.world import World

# Every chart a page draws is checked against Vega-Lite's schema here (the product skips that per rerun).
os.environ["RBV_VALIDATE_CHARTS"] = "1"

# A fixed instant makes the stand-in's world, and every truth derived from it, reproducible.
SIM_NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
SIM_SEED = 7
SIM_KEYS = 30
ADMIN_TOKEN = "sim-admin-token"
ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = str(ROOT / "dashboard.py")  # AppTest resolves relative paths against the calling file


@dataclass
class Collected:
    """A stand-in world, served over loopback, collected once into a real DuckDB file."""

    world: World
    server: ServerHandle
    config_path: Path
    config: Config
    db_path: Path
    first_run: RunSummary

    @property
    def now(self) -> datetime:
        return SIM_NOW.replace(tzinfo=None)

    @property
    def base_url(self) -> str:
        return self.server.base_url


def deferred_downloads(monkeypatch) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every download a page writes only when clicked (a large table's CSV): each is
    written at once here, as a click would."""
    written: list[tuple[str, bytes]] = []
    original = MediaFileManager.add_deferred

    def click(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        written.append((file_name or str(mimetype), data_callable()))
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", click)
    return written


def make_world(**kwargs) -> World:
    params = {"seed": SIM_SEED, "n_keys": SIM_KEYS, "days": 90, "now": SIM_NOW} | kwargs
    return World(**params)


def write_sim_config(server: ServerHandle, path: Path, extra: str = "") -> Path:
    write_config(server.world, path, server.base_url)
    if extra:
        path.write_text(path.read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    return path


def collect_once(config: Config, db_path: Path, at: datetime = SIM_NOW, **kwargs) -> RunSummary:
    """One collection as of `at` (the stand-in's frozen clock), then the results refresh, as `collectors once`
    runs them: the pages and commands read what the refresh stored."""
    done = asyncio.run(collect_and_refresh(config, db_path, now=lambda: at.replace(tzinfo=None), **kwargs))
    return done.run


@pytest.fixture(scope="session")
def admin_token_env():
    previous = os.environ.get("RBV_ADMIN_TOKEN")
    os.environ["RBV_ADMIN_TOKEN"] = ADMIN_TOKEN
    yield ADMIN_TOKEN
    if previous is None:
        os.environ.pop("RBV_ADMIN_TOKEN", None)
    else:
        os.environ["RBV_ADMIN_TOKEN"] = previous


def collect_world(folder: Path, world: World, shapes: dict[str, str] | None = None) -> Collected:
    """Serve `world` (in the wire `shapes` given) and collect it once, as of its clock, into `folder`."""
    server = start_server(world, admin_token=ADMIN_TOKEN, shapes=shapes)
    config_path = write_sim_config(server, folder / "keys.toml")
    config = load_config(config_path)
    db_path = folder / "monitor.duckdb"
    first = collect_once(config, db_path, at=world.now())
    return Collected(world, server, config_path, config, db_path, first)


# At 00:30 the stand-in's duplicate charges (placed 50-95 minutes before its clock) fall on yesterday, a
# settled summary day, beside its orphan charges: the days where a vendor's summary may count them or not.
PAST_MIDNIGHT = datetime(2026, 11, 20, 0, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def summary_leaves_out(tmp_path_factory, admin_token_env) -> Collected:
    """A world whose daily usage summary leaves duplicate and orphan charges out, collected at PAST_MIDNIGHT."""
    world = make_world(now=PAST_MIDNIGHT, summary_excludes=("duplicate_charge", "orphan_charge"))
    done = collect_world(tmp_path_factory.mktemp("summary_leaves_out"), world)
    yield done
    done.server.stop()


@pytest.fixture(scope="session")
def unreadable_pricing(tmp_path_factory, admin_token_env) -> Collected:
    """The default world collected while its pricing endpoint answers with rates nobody can read."""
    done = collect_world(tmp_path_factory.mktemp("unreadable_pricing"), make_world(), {"pricing": "unreadable"})
    yield done
    done.server.stop()


@pytest.fixture(scope="session")
def collected(tmp_path_factory, admin_token_env) -> Collected:
    """The default stand-in world (frozen at SIM_NOW) collected once; tests must not write to it."""
    folder = tmp_path_factory.mktemp("collected")
    world = make_world()
    server = start_server(world, admin_token=ADMIN_TOKEN)
    config_path = write_sim_config(server, folder / "keys.toml")
    config = load_config(config_path)
    db_path = folder / "monitor.duckdb"
    first = collect_once(config, db_path)
    yield Collected(world, server, config_path, config, db_path, first)
    server.stop()


# A small world caught during one of its labelled incidents: billing-worker-prod's credits spike runs from 13:00
# to 17:00 on 2 November. Collected as the spike is under way, an hour later, and once it has been over for
# three hours: the instants the alert lifecycle tests check at.
LIFECYCLE_AT = {
    "spike": datetime(2026, 11, 2, 16, 10, tzinfo=UTC),
    "later": datetime(2026, 11, 2, 17, 20, tzinfo=UTC),
    "over": datetime(2026, 11, 2, 20, 10, tzinfo=UTC),
}


@dataclass
class Lifecycle:
    world: World
    server: ServerHandle
    config_path: Path  # the stand-in's key config (secrets included)
    dbs: dict[str, Path]  # a copy of the database as collected at each LIFECYCLE_AT instant

    @staticmethod
    def at(name: str) -> datetime:
        return LIFECYCLE_AT[name].replace(tzinfo=None)


@pytest.fixture(scope="session")
def lifecycle(tmp_path_factory, admin_token_env) -> Lifecycle:
    """Three keys, 40 days, collected at each LIFECYCLE_AT instant (the stand-in's clock set to it); read-only."""
    import shutil

    folder = tmp_path_factory.mktemp("lifecycle")
    world = make_world(n_keys=3, days=40)
    server = start_server(world, admin_token=ADMIN_TOKEN)
    config_path = write_sim_config(server, folder / "keys.toml")
    config = load_config(config_path)
    db = folder / "monitor.duckdb"
    dbs = {}
    for name, at in LIFECYCLE_AT.items():
        world.clock.set(at)
        collect_once(config, db, at=at)
        dbs[name] = folder / f"{name}.duckdb"
        shutil.copy(db, dbs[name])
    yield Lifecycle(world, server, config_path, dbs)
    server.stop()
