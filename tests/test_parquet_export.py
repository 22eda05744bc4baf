"""The partitioned Parquet export of the collected stand-in world, read back by the dashboard and the analytics:
every public row exported (none of the secrets), idempotent per partition, three shard files exported together
equal to one file, and `--engine dask` on a two-worker cluster printing exactly the `--db` path's rows."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from cli.analytics import main as analytics_main
from service.engine import EngineError, dask_client
from store.export import export
from store.parquet import MANIFEST, VIEWS, open_parquet
from tests.conftest import ADMIN_TOKEN, DASHBOARD, PAST_MIDNIGHT, ROOT, SIM_NOW, collect_once

NOW = SIM_NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
# The analytics commands and what each prints: key findings, incidents (every one), credit discrepancies.
COMMANDS = {"keys": ["keys"], "anomalies": ["anomalies", "--all"], "reconcile": ["reconcile"]}
# Per-key views compared between three shards' export and one file: every column but the instants of collection
# (when a row was written or a poll ran differ between any two runs) and the upstream's per-request ids.
PER_KEY = {
    "keys": "key_name, environment, owner, owner_status, fingerprint, masked_key, created_at, rotated_at",
    "key_daily_usage": "key_name, day, calls, jobs, credits, failed",
    "key_last_used": "key_name, last_used_at",
    "usage_events": "event_id, key_name, occurred_at, endpoint, status_code, job_id, model, credits",
    "jobs": "job_id, key_name, created_at, status, model, duration_seconds, credits_charged, billing_status",
    "job_status_history": "job_id, status",
    "coverage_gaps": "key_name, endpoint, gap_start, gap_end",
    "collector_run_items": "key_name, endpoint, status, attempts, error_code",
}


def _files(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every Parquet file: (sha256, inode, mtime) by its path in the export."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*.parquet"))
    }


def _store_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "store", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _analytics(*args: str, now: str = NOW) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert analytics_main([*args, "--now", now]) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def exported(collected, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "parquet"
    done = _store_cli("export", "--db", str(collected.db_path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "partition file(s) written" in done.stdout
    return out


@pytest.fixture(scope="module")
def sharded(collected, tmp_path_factory) -> Path:
    """The same world collected as three shards (same server, same instant), exported together."""
    folder = tmp_path_factory.mktemp("shards")
    paths = [folder / f"shard-{i}.duckdb" for i in range(3)]
    for i, path in enumerate(paths):
        collect_once(collected.config.for_shard(i, 3), path)
    export(paths, folder / "parquet")
    return folder / "parquet"


@pytest.fixture(scope="module")
def cluster():
    """Two Dask workers (threads of this process) behind a real TCP scheduler the command line connects to."""
    from distributed import LocalCluster  # requirements-scale.txt: `make test` installs it

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local.scheduler_address


def test_every_public_row_is_exported_partitioned_by_day_and_bucket(collected, exported):
    manifest = json.loads((exported / MANIFEST).read_text())
    assert manifest["sources"] == [{"file": collected.db_path.name, "shard": "0/1"}]
    with duckdb.connect(str(collected.db_path), read_only=True) as db, open_parquet(exported) as pq:
        for view in VIEWS:
            in_db = db.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
            assert pq.execute(f"SELECT count(*) FROM {view}").fetchone()[0] == in_db, view
            assert manifest["views"][view]["rows"] == in_db == sum(f["rows"] for f in manifest["views"][view]["files"])
        columns = PER_KEY["jobs"]
        assert (
            pq.execute(f"SELECT {columns} FROM jobs ORDER BY job_id").fetchall()
            == db.execute(f"SELECT {columns} FROM jobs ORDER BY job_id").fetchall()
        )
    jobs = sorted((exported / "jobs").glob("day=*/bucket=*/*.parquet"))
    assert len(jobs) == len(manifest["views"]["jobs"]["files"]) > 90  # 90 days of a handful of buckets
    with duckdb.connect() as con:
        misplaced = con.execute(
            f"SELECT count(*) FROM read_parquet('{exported}/jobs/*/*/*.parquet', hive_partitioning = true) "
            "WHERE CAST(created_at AS DATE) <> day"
        ).fetchone()[0]
        buckets_per_key = con.execute(
            f"SELECT max(n) FROM (SELECT count(DISTINCT bucket) AS n FROM read_parquet("
            f"'{exported}/usage_events/*/*/*.parquet', hive_partitioning = true) GROUP BY key_name)"
        ).fetchone()[0]
    assert misplaced == 0
    assert buckets_per_key == 1


def test_no_secret_is_exported(collected, exported):
    secrets = [k.secret for k in collected.config.keys] + [ADMIN_TOKEN]
    assert secrets and all(len(s) >= 8 for s in secrets)
    with open_parquet(exported) as con:
        for view in VIEWS:
            text = "\n".join(str(row) for row in con.execute(f"SELECT * FROM {view}").fetchall())
            assert not [s for s in secrets if s in text], view
    assert not [s for s in secrets if s in (exported / MANIFEST).read_text()]


def test_exporting_again_leaves_every_partition_untouched(collected, exported):
    before = _files(exported)
    manifest = json.loads((exported / MANIFEST).read_text())
    done = _store_cli("export", "--db", str(collected.db_path), "--out", str(exported))
    assert done.returncode == 0, done.stderr
    assert f"0 partition file(s) written, {len(before)} unchanged, 0 removed" in done.stdout
    assert _files(exported) == before  # same bytes, same inode, same mtime: not even rewritten
    again = json.loads((exported / MANIFEST).read_text())
    assert again["views"] == manifest["views"]
    assert {p.stat().st_mode & 0o077 for p in exported.rglob("*")} == {0}  # owner-only, like the database


def test_three_shards_exported_together_equal_one_file(collected, sharded):
    manifest = json.loads((sharded / MANIFEST).read_text())
    assert manifest["shards"] == {"count": 3, "present": [0, 1, 2]}
    with duckdb.connect(str(collected.db_path), read_only=True) as db, open_parquet(sharded) as pq:
        for view, columns in PER_KEY.items():
            # Each shard's run also read the account-wide endpoints ('*'): those items are once per file.
            where = " WHERE key_name <> '*'" if view == "collector_run_items" else ""
            sql = f"SELECT {columns} FROM {view}{where} ORDER BY ALL"
            assert pq.execute(sql).fetchall() == db.execute(sql).fetchall(), view
        assert (
            pq.execute("SELECT count(*) FROM pricing").fetchone()
            == db.execute("SELECT count(*) FROM pricing").fetchone()
        )  # every shard read the rates: exported once


def test_dask_on_two_workers_prints_the_db_paths_rows(collected, exported, cluster):
    for name, command in COMMANDS.items():
        expected = _analytics(*command, "--db", str(collected.db_path))
        assert len(json.loads(expected)) > 0, name  # the stand-in has findings, incidents and discrepancies
        done = subprocess.run(
            [sys.executable, "-m", "analytics", *command, "--parquet", str(exported), "--engine", "dask",
             "--scheduler", cluster, "--now", NOW],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == expected, name


def test_dask_learns_the_summary_convention_from_every_bucket_as_one_file_does(summary_leaves_out, tmp_path, cluster):
    """The vendor's summary leaves duplicate and orphan charges out: only the days of all buckets together
    teach that as one file's days do."""
    now = PAST_MIDNIGHT.strftime("%Y-%m-%dT%H:%M:%SZ")
    export([summary_leaves_out.db_path], tmp_path / "parquet")
    expected = _analytics("reconcile", "--db", str(summary_leaves_out.db_path), now=now)
    assert {"duplicate_charge", "orphan_charge"} <= {row["category"] for row in json.loads(expected)}
    fleet = _analytics(
        "reconcile", "--parquet", str(tmp_path / "parquet"), "--engine", "dask", "--scheduler", cluster, now=now
    )
    assert fleet == expected


def test_dask_over_three_shards_prints_one_files_rows(collected, sharded):
    """Its own local cluster (two worker processes), over the export of three shard files."""
    for name, command in COMMANDS.items():
        expected = _analytics(*command, "--db", str(collected.db_path))
        done = subprocess.run(
            [sys.executable, "-m", "analytics", *command, "--parquet", str(sharded), "--engine", "dask",
             "--workers", "2", "--now", NOW],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == expected, name


def test_pages_render_from_a_parquet_folder_with_the_files_numbers(collected, exported, monkeypatch):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    monkeypatch.setenv("RBV_CONFIG", str(collected.config_path))
    shown = {}
    for source in (collected.db_path, exported):
        monkeypatch.setenv("RBV_DB", str(source))
        at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
        seen = {}
        for page in ("overview", "keys", "anomalies", "credits", "review", "collection"):
            at.switch_page(f"pages/{page}.py").run()
            assert not at.exception, (source, page, [e.value for e in at.exception])
            assert not at.error, (source, page, [e.value for e in at.error])
            seen[page] = [(m.label, m.value) for m in at.metric]
        shown[source] = seen
        label = f"{'Parquet export' if source == exported else 'Database'}: {source}"
        assert any(label in c.value for c in at.sidebar.caption), [c.value for c in at.sidebar.caption]
    assert shown[exported] == shown[collected.db_path]
    assert shown[exported]["overview"]  # numbers, not an empty state


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "nothing.duckdb"], "no database at nothing.duckdb"),
        (["--db", "{db}", "--db", "{db}"], "both hold shard 0/1"),
        (["--db", "{db}", "--out", "{db}"], "is a file: give a folder"),
    ],
)
def test_bad_export_input_is_one_line_and_leaves_nothing(collected, tmp_path, args, message):
    args = [a.format(db=collected.db_path) for a in args]
    out = ["--out", str(tmp_path / "out")] if "--out" not in args else []
    done = _store_cli("export", *args, *out)
    assert done.returncode == 1
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "{db}", "--engine", "dask"], "--engine dask reads a Parquet export"),
        (["--parquet", "{tmp}"], "holds no manifest.json"),
        (["--db", "{db}", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --engine dask"),
    ],
)
def test_bad_engine_input_is_one_line_and_exit_2(collected, tmp_path, args, message):
    args = [a.format(db=collected.db_path, tmp=tmp_path) for a in args]
    done = subprocess.run(
        [sys.executable, "-m", "analytics", "keys", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_unreachable_scheduler_is_one_line(exported):
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    done = subprocess.run(
        [sys.executable, "-m", "analytics", "keys", "--parquet", str(exported), "--engine", "dask",
         "--scheduler", "tcp://127.0.0.1:9", "--now", NOW],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_manifest_naming_files_outside_its_folder_is_refused(exported, tmp_path):
    manifest = json.loads((exported / MANIFEST).read_text())
    manifest["views"]["keys"]["files"][0]["path"] = "keys/../../../etc/passwd"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    done = subprocess.run(
        [sys.executable, "-m", "analytics", "keys", "--parquet", str(tmp_path), "--now", NOW],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "is not a valid manifest: view keys: file 'keys/../../../etc/passwd'" in done.stderr, done.stderr


def test_the_engine_is_optional(monkeypatch):
    """The commands import Dask only when a cluster starts; without it, `--engine dask` says how to install it."""
    done = subprocess.run(
        [sys.executable, "-c", "import sys, cli.analytics, store.__main__; print('dask' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "False", done.stderr
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if requirements-scale.txt were not installed
    with pytest.raises(EngineError, match="not installed: pip install -r requirements-scale.txt"):
        with dask_client():
            pass


def test_exporting_some_shards_of_a_split_says_which_are_missing(sharded, tmp_path):
    files = [str(sharded.parent / f"shard-{i}.duckdb") for i in (0, 1)]
    done = _store_cli("export", "--db", files[0], "--db", files[1], "--out", str(tmp_path / "two"))
    assert done.returncode == 0, done.stderr
    assert "(shards 0/3, 1/3)" in done.stdout
    assert "warning: shard(s) 2/3 not given: their keys are not in the export" in done.stderr
