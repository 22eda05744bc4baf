"""Annotations: added from the command line (or the page), and the markers that appear by themselves: key
rotations from the config, decisions recorded in the weekly review, failing smoke checks (their alerts)."""

from __future__ import annotations

import contextlib
import io
from datetime import datetime, timedelta

import pandas as pd

from analytics.__main__ import main as analytics_main
from service.alerts import clear_alerts, raise_alert
from service.annotations import markers
from store.decisions import Decision, record
from store.state_file import state_path


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = analytics_main(argv)
    return code, out.getvalue(), err.getvalue()


def test_annotate_and_the_markers_that_come_by_themselves(collected, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    db = str(collected.db_path)
    code, out, err = _run(["annotate", "--db", db, "--key", "api-gateway-prod", "--at", "2026-11-18T09:30:00Z",
                           "--text", "v2.4 deployed", "--by", "ci"])  # fmt: skip
    assert code == 0 and out.startswith("annotation 1: deploy on api-gateway-prod at 2026-11-18 09:30 UTC"), err
    code, _, _ = _run(["annotate", "--db", db, "--key", "search-staging", "--at", "2026-11-19T10:00",
                       "--text", "load test", "--kind", "note"])  # fmt: skip
    assert code == 0
    record(
        state_path(db), Decision("api-gateway-prod", "rotate", "lead", "due", "2026-W46"), datetime(2026, 11, 17, 10)
    )
    assert raise_alert(db, "smoke_check", "api-gateway-prod", "success_path", datetime(2026, 11, 19, 6), collected.now)
    assert not raise_alert(
        db, "smoke_check", "api-gateway-prod", "success_path", datetime(2026, 11, 19, 6), collected.now
    )

    found = markers(db, datetime(2026, 8, 1), collected.now, ["api-gateway-prod"]).frame
    kinds = dict(zip(found["kind"], found["text"], strict=False))
    assert kinds["deploy"] == "v2.4 deployed" and kinds["decision"] == "rotate (lead): due"
    assert kinds["smoke_check"] == "smoke check failed: success path"
    rotations = {k.name: k.rotated_at for k in collected.config.keys if k.rotated_at and k.rotated_at <= collected.now}
    assert len(rotations) >= 3  # the stand-in's config rotates several keys
    everyone = markers(db, datetime(2025, 1, 1), collected.now, None).frame
    shown = everyone[everyone["kind"] == "rotation"]
    assert dict(zip(shown["key_name"], shown["at"], strict=True)) == {k: pd.Timestamp(v) for k, v in rotations.items()}
    assert "search-staging" not in set(found["key_name"])  # another key's marker stays on its own charts
    assert found["at"].is_monotonic_increasing
    staging = markers(db, datetime(2026, 11, 18, 10), collected.now, ["search-staging"]).frame
    assert staging["text"].tolist() == ["load test"]
    # A smoke check that passes again resolves its alert (the marker of the failure stays).
    assert clear_alerts(db, "smoke_check", "api-gateway-prod", "success_path", collected.now + timedelta(hours=1)) == 1
    assert "smoke_check" in set(markers(db, datetime(2026, 11, 1), collected.now, None).frame["kind"])


def test_annotate_refuses_bad_input_in_one_line(collected, tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    db = str(collected.db_path)
    cases = [
        (["--key", "no-such-key", "--at", "2026-11-18T09:30:00Z", "--text", "x"], "no configured key named"),
        (["--key", "api-gateway-prod", "--at", "yesterday", "--text", "x"], "--at: 'yesterday' is not an ISO"),
        (["--key", "api-gateway-prod", "--at", "2026-11-18", "--text", "two\nlines"], "printable characters"),
    ]
    for extra, message in cases:
        code, _, err = _run(["annotate", "--db", db, *extra])
        assert code == 2 and message in err and err.count("\n") == 1, err
    assert (
        not (tmp_path / "state.duckdb").exists()
        or markers(db, datetime(2026, 1, 1), collected.now, None).frame.query("kind == 'deploy'").empty
    )


def test_an_unreadable_state_file_leaves_its_markers_out_and_says_so(collected, tmp_path, monkeypatch):
    broken = tmp_path / "state.duckdb"
    broken.write_bytes(b"not a database at all" * 100)
    monkeypatch.setenv("RBV_STATE_DB", str(broken))
    found = markers(str(collected.db_path), datetime(2025, 1, 1), collected.now, None)
    assert set(found.unreadable) == {"entered markers", "review decisions", "smoke-check failures"}
    assert set(found.frame["kind"]) == {"rotation"}  # the database's own markers still show


def test_the_key_page_says_which_markers_it_could_not_read(collected, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT, SIM_NOW
    from ui.annotations import _markers
    from ui.settings import Settings

    _markers.clear()  # the chart markers are cached per process: another test may have read this database's
    (tmp_path / "state.duckdb").write_bytes(b"not a database at all" * 100)
    monkeypatch.setenv("RBV_STATE_DB", str(tmp_path / "state.duckdb"))
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    at = AppTest.from_file(str(ROOT / "pages" / "key_detail.py"), default_timeout=120)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    at.query_params["key"] = "api-gateway-prod"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("Not marked: entered markers, review decisions") for c in at.caption)
