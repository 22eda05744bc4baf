"""AppTest for the Credits page: totals against the stand-in's truth, filters, drill-down and ledger upload."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import ui.tables
from simulator.ledger import write_ledger
from tests.conftest import PAST_MIDNIGHT, ROOT, SIM_NOW, deferred_downloads
from ui.settings import Settings

PAGE = str(ROOT / "pages" / "credits.py")


@pytest.fixture
def page_env(collected, monkeypatch):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    return collected


def open_page(collected, range_choice: str = "Last 90 days") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["settings"] = Settings(db_path=collected.db_path, config_path=collected.config_path, demo=False)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="range_choice").set_value(range_choice).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def discrepancy_table(at: AppTest):
    return next(d.value for d in at.dataframe if "refund_due" in d.value.columns)


def expected_refunds(world) -> float:
    total = 0.0
    for issue in world.billing_issues():
        if issue["category"] in ("overcharged", "failed_but_charged", "duplicate_charge", "orphan_charge"):
            total += issue["charged_credits"] - issue["expected_credits"]
    return total


def test_totals_table_and_drill_down(page_env):
    at = open_page(page_env)
    world = page_env.world
    refunds = float(metric(at, "Refunds due").replace(",", ""))
    assert refunds == pytest.approx(expected_refunds(world), abs=0.05)
    for label in ("Charged", "Expected", "Net difference", "Per successful output"):
        assert metric(at, label) not in ("", "—")

    table = discrepancy_table(at)
    truth = {(t["category"], t["job_id"] or t["day"]) for t in world.billing_issues()}
    shown = {(r.category, r.job_id if isinstance(r.job_id, str) else r.day) for r in table.itertuples()}
    assert shown == truth

    at.multiselect(key="disc_category").set_value(["duplicate_charge"]).run()
    assert not at.exception
    filtered = discrepancy_table(at)
    assert set(filtered["category"]) == {"duplicate_charge"} and len(filtered) == 3

    target = filtered.iloc[0]
    option = next(o for o in at.selectbox(key="disc_drill").options if str(target["job_id"]) in o)
    at.selectbox(key="disc_drill").set_value(option).run()
    assert not at.exception
    events = next(d.value for d in at.dataframe if "event_id" in d.value.columns)
    charges = events[(events["credits"] > 0) & (events["method"] == "POST")]
    assert len(charges) >= 2, "a duplicate charge drills into its charge events"
    assert len(at.get("download_button")) >= 1


def test_a_long_discrepancy_list_shows_its_first_rows_says_how_many_and_the_csv_keeps_all(page_env, monkeypatch):
    """10,000 keys can have tens of thousands of discrepancies: the table and the drill-down list show the first
    SHOWN_ROWS (3 here), a caption says how many of how many and how to narrow, the CSV (written when clicked)
    holds every row, and a filter that leaves few enough shows them all without the caption."""
    monkeypatch.setattr(ui.tables, "SHOWN_ROWS", 3)
    written = deferred_downloads(monkeypatch)
    at = open_page(page_env)
    total = len(page_env.world.billing_issues())
    assert total > 3
    assert len(discrepancy_table(at)) == 3
    assert any(f"Showing 3 of {total:,} discrepancies" in c.value and "filter" in c.value for c in at.caption)
    assert len(at.selectbox(key="disc_drill").options) == 1 + 3
    csvs = {name.split("_2")[0]: data.decode() for name, data in written}
    assert len(csvs["credit_discrepancies"].strip().splitlines()) == 1 + total  # header and every row
    # The event coverage table is capped too (keys with gaps first); its CSV has every key.
    keys = len(page_env.config.keys)
    assert any(f"Showing 3 of {keys:,} keys (most gaps first)" in c.value for c in at.caption)
    assert len(csvs["event_coverage"].strip().splitlines()) == 1 + keys

    at.multiselect(key="disc_category").set_value(["duplicate_charge"]).run()
    assert len(discrepancy_table(at)) == 3
    assert not any("Showing 3 of" in c.value and "discrepancies" in c.value for c in at.caption)


def test_key_and_day_filters(page_env):
    at = open_page(page_env)
    table = discrepancy_table(at)
    key = table["key_name"].dropna().iloc[0]
    at.multiselect(key="disc_key").set_value([key]).run()
    assert set(discrepancy_table(at)["key_name"]) == {key}
    day = discrepancy_table(at)["day"].iloc[0]
    at.selectbox(key="disc_day").set_value(day).run()
    assert not at.exception
    narrowed = discrepancy_table(at)
    assert set(narrowed["day"]) == {day} and set(narrowed["key_name"]) == {key}


def test_ledger_upload_adds_ledger_categories(page_env, tmp_path):
    path = tmp_path / "ledger.csv"
    issues = write_ledger(page_env.world, path, SIM_NOW)
    at = open_page(page_env)
    before = metric(at, "Refunds due")
    at.file_uploader(key="ledger_upload").upload("ledger.csv", path.read_bytes(), "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error
    assert any("ledger.csv" in s.value for s in at.success)
    table = discrepancy_table(at)
    ledger_rows = table[table["category"].isin(["missing_in_provider", "missing_in_ledger", "ledger_mismatch"])]
    assert {(r.category, r.job_id) for r in ledger_rows.itertuples()} == {(i["category"], i["job_id"]) for i in issues}
    assert metric(at, "Refunds due") == before

    # Narrowed to dev keys, the ledger is still matched against every job: nothing turns "missing".
    at.multiselect(key="env_filter").set_value(["dev"]).run()
    assert not at.exception
    table = discrepancy_table(at)
    ledger_rows = table[table["category"].isin(["missing_in_provider", "missing_in_ledger", "ledger_mismatch"])]
    dev_issues = {
        (i["category"], i["job_id"]) for i in issues if page_env.world.key(i["key_name"]).environment == "dev"
    }
    assert {(r.category, r.job_id) for r in ledger_rows.itertuples()} == dev_issues


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("job_id,credits,key_name\njob_1,4,caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
        (b"job_id,credits\njob_1,4\njob_2,four\njob_1,5\n", "line 3, column 'credits': 'four' is not a number"),
    ],
)
def test_bad_upload_shows_inline_errors_and_keeps_the_page(page_env, content, message):
    at = open_page(page_env, "Last 30 days")
    charged = metric(at, "Charged")
    at.file_uploader(key="ledger_upload").upload("bad.csv", content, "text/csv").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "bad.csv" in errors[0] and message in errors[0]
    assert metric(at, "Charged") == charged, "a bad ledger never changes what was collected"
    table = discrepancy_table(at)
    assert not set(table["category"]) & {"missing_in_provider", "missing_in_ledger", "ledger_mismatch"}


def test_missing_database_shows_an_empty_state(tmp_path, monkeypatch):
    monkeypatch.setenv("RBV_NOW", SIM_NOW.isoformat())
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["settings"] = Settings(db_path=tmp_path / "none.duckdb", config_path=None, demo=False)
    at.run()
    assert not at.exception
    assert any("No collected data yet" in i.value for i in at.info)


def test_unknown_headers_get_a_mapping_step(page_env, tmp_path):
    path = tmp_path / "ledger.csv"
    issues = write_ledger(page_env.world, path, SIM_NOW)
    lines = path.read_text(encoding="utf-8").splitlines()
    # The team's own words for the two required columns, a `;` file with decimal commas.
    header = lines[0].replace("job_id", "Reference").replace("credits", "Amount").split(",")
    rows = [line.split(",") for line in lines[1:]]
    text = "\n".join([";".join(header)] + [";".join(c.replace(".", ",") if i == 1 else c for i, c in enumerate(r))
                                           for r in rows])  # fmt: skip
    at = open_page(page_env)
    at.file_uploader(key="ledger_upload").upload("ours.csv", text.encode(), "text/csv").run()
    assert not at.exception and not at.error
    assert any("`job_id`, `credits` were not recognised" in w.value for w in at.warning)
    file_id = next(k for k in at.session_state if str(k).startswith("ledger_map_job_id_")).removeprefix(
        "ledger_map_job_id_"
    )
    at.selectbox(key=f"ledger_map_job_id_{file_id}").set_value("Reference").run()
    assert not at.success, "nothing is judged until both required columns are chosen"
    at.selectbox(key=f"ledger_map_credits_{file_id}").set_value("Amount").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("ours.csv" in s.value for s in at.success)
    table = discrepancy_table(at)
    ledger_rows = table[table["category"].isin(["missing_in_provider", "missing_in_ledger", "ledger_mismatch"])]
    assert {(r.category, r.job_id) for r in ledger_rows.itertuples()} == {(i["category"], i["job_id"]) for i in issues}


def test_an_oversize_ledger_is_refused_before_it_is_read(page_env, tmp_path, monkeypatch):
    import analytics.ledger

    config = tmp_path / "keys.toml"
    config.write_text(page_env.config_path.read_text(encoding="utf-8") + "\n[reconciliation]\nledger_max_mb = 1\n")
    parsed: list[int] = []
    real = analytics.ledger.parse_ledger
    monkeypatch.setattr(
        analytics.ledger, "parse_ledger", lambda data, *a, **k: parsed.append(len(data)) or real(data, *a, **k)
    )
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["settings"] = Settings(db_path=page_env.db_path, config_path=config, demo=False)
    at.run()
    data = b"job_id,credits\n" + b"job_x,1\n" * 200_000
    at.file_uploader(key="ledger_upload").upload("big.csv", data, "text/csv").run()
    assert not at.exception
    [error] = [e.value for e in at.error]
    assert "**big.csv** cannot be used: the file is 1.5 MB; the limit is 1 MB" in error
    assert parsed == [], "the size alone refused it: the page never parsed it"
    at.file_uploader(key="ledger_upload").upload("small.csv", b"job_id,credits\njob_x,1\n", "text/csv").run()
    assert parsed == [len(b"job_id,credits\njob_x,1\n")], "a file under the limit is parsed (the spy works)"


def test_an_explained_summary_day_is_shown_as_explained(summary_leaves_out, monkeypatch):
    monkeypatch.setenv("RBV_NOW", PAST_MIDNIGHT.isoformat())
    at = open_page(summary_leaves_out, "Last 7 days")
    assert any("differs from the jobs and charge events only by listed" in c.value for c in at.caption)
    table = discrepancy_table(at)
    assert "summary_mismatch" not in set(table[table["day"] == "2026-11-19"]["category"])
    at.multiselect(key="disc_category").set_value(["orphan_charge"]).run()
    option = at.selectbox(key="disc_drill").options[1]
    at.selectbox(key="disc_drill").set_value(option).run()
    assert not at.exception
    explained = [i.value for i in at.info if i.value.startswith("Explained: the usage summary of")]
    assert len(explained) == 1 and "so it is not reported again as a summary mismatch" in explained[0]
