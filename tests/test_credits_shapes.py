"""Reconciliation over loopback against the stand-in answering in other wire shapes: the same discrepancies
whatever the shape, the published rates (and saying so) when pricing cannot be read, and every credit of
difference reported once when the vendor's daily summary leaves duplicate and orphan charges out."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import httpx
import pytest

from analytics.__main__ import main as analytics_main
from config import load_config
from simulator import shapes
from simulator.server import start_server
from store import reads
from tests.conftest import (
    ADMIN_TOKEN,
    PAST_MIDNIGHT,
    SIM_NOW,
    collect_once,
    collect_world,
    make_world,
    write_sim_config,
)

NOW_ARG = SIM_NOW.isoformat().replace("+00:00", "Z")
JUDGED = ("category", "key_name", "job_id", "day", "expected_credits", "charged_credits", "delta")


def reconcile(db: Path, now: str = NOW_ARG, *extra: str) -> tuple[list[dict], str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = analytics_main(["reconcile", "--db", str(db), "--now", now, "--format", "json", *extra])
    assert code == 0, err.getvalue()
    return json.loads(out.getvalue()), err.getvalue()


def judged(rows: list[dict]) -> list[tuple]:
    return sorted(tuple(row[c] for c in JUDGED) for row in rows)


def set_shapes(base_url: str, chosen: dict[str, str]) -> None:
    """Through the stand-in's own control route, over loopback."""
    answer = httpx.post(f"{base_url}/_sim/shapes", json=chosen, timeout=10)
    assert answer.status_code == 200 and all(answer.json()[k] == v for k, v in chosen.items()), answer.text


@pytest.fixture(scope="module")
def shaped(collected, tmp_path_factory):
    """The session's stand-in world on a second server whose shapes we change; usage, events and jobs
    collected once without pricing, so each pricing shape is collected into its own copy."""
    server = start_server(collected.world, admin_token=ADMIN_TOKEN)
    folder = tmp_path_factory.mktemp("shaped")
    config = load_config(write_sim_config(server, folder / "keys.toml"))
    base = folder / "base.duckdb"
    assert collect_once(config, base, endpoints=("summary", "events", "jobs")).keys_ok > 0
    yield server, config, base, folder
    server.stop()


def with_pricing(shaped, shape: str) -> tuple[Path, str]:
    server, config, base, folder = shaped
    db = folder / f"pricing_{shape}.duckdb"
    shutil.copyfile(base, db)
    assert not base.with_name(base.name + ".wal").exists(), "the collector checkpoints when it closes"
    set_shapes(server.base_url, {"pricing": shape})
    try:
        run = collect_once(config, db, endpoints=("pricing",))
    finally:
        set_shapes(server.base_url, {})
    return db, run.status


@pytest.fixture(scope="module")
def canonical(shaped) -> list[dict]:
    db, status = with_pricing(shaped, "canonical")
    assert status == "ok"
    rows, err = reconcile(db)
    assert "pricing: from the API (read " in err and "warning" not in err
    assert {r["pricing_source"] for r in rows} == {"api"}
    assert {"overcharged", "undercharged", "missing_output"} <= {r["category"] for r in rows}
    return rows


@pytest.mark.parametrize("shape", [s for s in shapes.ACCEPTED["pricing"] if s != "canonical"])
def test_every_pricing_shape_finds_the_same_discrepancies(shaped, canonical, shape):
    db, status = with_pricing(shaped, shape)
    assert status == "ok"
    rows, err = reconcile(db)
    assert judged(rows) == judged(canonical)
    assert {r["pricing_source"] for r in rows} == {"api"} and "warning" not in err


@pytest.mark.parametrize("shape", ["unreadable", "unavailable"])
def test_without_readable_pricing_the_published_rates_find_them_and_say_so(shaped, canonical, shape):
    db, status = with_pricing(shaped, shape)
    assert status == "partial", "a run that could not read pricing is not ok"
    rows, err = reconcile(db)
    assert judged(rows) == judged(canonical), "the published rates find the same over- and undercharges"
    assert {r["pricing_source"] for r in rows} == {"published"}
    lines = err.splitlines()
    assert lines[0].startswith("pricing: the vendor's published rates (RemoveBGVideo's public API docs")
    assert lines[1].startswith("warning: the API's pricing has been unreadable since ")
    why = "unreadable: all 4 record(s) quarantined" if shape == "unreadable" else "not_found"
    assert why in lines[1] and "fallback rates are used" in lines[1]
    if shape == "unreadable":
        [item] = reads.freshness(db).unreadable
        assert item.endpoint == "pricing"


def test_config_rates_come_before_the_published_ones(shaped, canonical, tmp_path):
    db, _ = with_pricing(shaped, "unreadable")
    config = tmp_path / "keys.toml"
    config.write_text(
        "[pricing]\nrates = { original = 60, light = 45, pro = 180 }\n", encoding="utf-8"
    )  # `human` is missing here: it falls through to the published rate
    rows, err = reconcile(db, NOW_ARG, "--config", str(config))
    assert judged(rows) == judged(canonical)
    assert err.splitlines()[0] == (
        "pricing: light, original, pro from config [pricing]; human the vendor's published rates "
        "(RemoveBGVideo's public API docs, GET /api/pricing, as of 2026-11-30)"
    )
    sources = Counter(r["pricing_source"] for r in rows)
    assert set(sources) <= {"config", "published", "config+published"} and sources["config+published"] > 0


def test_other_record_shapes_collect_the_same_store_and_discrepancies(collected, shaped, canonical, tmp_path):
    server, config, _, _ = shaped
    db = tmp_path / "camel.duckdb"
    set_shapes(server.base_url, {"summary": "camel", "events": "camel", "jobs": "camel"})
    try:
        run = collect_once(config, db)
    finally:
        set_shapes(server.base_url, {})
    assert run.status == collected.first_run.status and run.keys_ok == collected.first_run.keys_ok
    views = ["jobs", "usage_events", "key_daily_usage", "job_status_history", "pricing"]
    assert reads.table_counts(db, views) == reads.table_counts(collected.db_path, views)
    assert reads.freshness(db).quarantined == reads.freshness(collected.db_path).quarantined
    rows, _ = reconcile(db)
    assert judged(rows) == judged(canonical)


# --- every credit of difference reported once -------------------------------------------------------------


@pytest.fixture(scope="module", params=["counts all", "leaves out"])
def summary_world(request, tmp_path_factory, admin_token_env):
    """The world at PAST_MIDNIGHT whose summary counts every charge, and the one that leaves some out."""
    if request.param == "leaves out":
        done = request.getfixturevalue("summary_leaves_out")
        yield done.world, done.db_path
        return
    done = collect_world(tmp_path_factory.mktemp("summary_counts_all"), make_world(now=PAST_MIDNIGHT))
    yield done.world, done.db_path
    done.server.stop()


def test_no_credit_appears_in_two_rows(summary_world):
    world, db = summary_world
    rows, _ = reconcile(db, PAST_MIDNIGHT.isoformat().replace("+00:00", "Z"))
    truth = {(t["category"], t["key_name"], t["job_id"] or "", t["day"]): t for t in world.billing_issues()}
    found = {(r["category"], r["key_name"], r["job_id"], r["day"]): r for r in rows}
    assert sorted(set(found) - set(truth)) == [], "extra rows"
    assert sorted(set(truth) - set(found)) == [], "missing rows"
    for key, expected in truth.items():
        assert found[key]["charged_credits"] == pytest.approx(expected["charged_credits"], abs=0.011), key
        assert found[key]["expected_credits"] == pytest.approx(expected["expected_credits"], abs=0.011), key
    charges = {(r["key_name"], r["day"]) for r in rows if r["category"] in ("duplicate_charge", "orphan_charge")}
    assert len(charges) >= 4, "the duplicate and orphan charges share settled summary days"
    mismatched = {(r["key_name"], r["day"]) for r in rows if r["category"] == "summary_mismatch"}
    assert not charges & mismatched, "a duplicate or orphan charge was reported again as a summary mismatch"
