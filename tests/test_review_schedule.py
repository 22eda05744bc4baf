"""The weekly review that `collectors serve` writes on a cron: schedule, files, failures that do not stop it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from analytics.review import default_week
from config import ConfigError, load_config
from service.review import write_weekly_review
from service.scheduler import build_scheduler, weekly_review_job

KEY = (
    '[api]\nbase_url = "http://127.0.0.1:9"\n\n'
    '[[keys]]\nname = "api-gateway-prod"\nenvironment = "prod"\nsecret = "rbv_live_aaaaaaaaaaaaaaaa"\n'
)


def test_weekly_cron_schedules_the_review_on_monday_morning(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(KEY + '\n[review]\nweekly_cron = "0 7 * * mon"\nreports_dir = "out"\n', encoding="utf-8")
    scheduler = build_scheduler(load_config(path), tmp_path / "m.duckdb")
    job = next(j for j in scheduler.get_jobs() if j.id == "weekly_review")
    fire = job.trigger.get_next_fire_time(None, datetime(2026, 11, 26, 12, tzinfo=UTC))
    assert fire == datetime(2026, 11, 30, 7, tzinfo=UTC)  # the next Monday, 07:00 UTC


def test_no_cron_means_no_review_job(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(KEY, encoding="utf-8")
    scheduler = build_scheduler(load_config(path), tmp_path / "m.duckdb")
    assert "weekly_review" not in {j.id for j in scheduler.get_jobs()}


@pytest.mark.parametrize(
    ("review", "fragment"),
    [
        ('weekly_cron = "every monday"', "weekly_cron"),
        ('cron = "0 7 * * mon"', "unknown field"),
        ("reports_dir = 3", "reports_dir"),
    ],
)
def test_bad_review_settings_are_one_clear_error(tmp_path, review, fragment):
    path = tmp_path / "keys.toml"
    path.write_text(KEY + f"\n[review]\n{review}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_job_writes_html_markdown_and_json_for_the_last_full_week(collected, tmp_path):
    config = load_config(collected.config_path, secrets=False)
    written = write_weekly_review(
        collected.db_path, tmp_path / "reports", collected.now, config.rules, config.reconciliation
    )
    week = default_week(collected.now)
    assert [p.name for p in written] == [f"review-{week}.html", f"review-{week}.md", f"review-{week}.json"]
    data = json.loads(written[2].read_text(encoding="utf-8"))
    assert data["week"]["week"] == week
    assert "data:image/png;base64," in written[0].read_text(encoding="utf-8")  # charts embedded, no network
    assert not list((tmp_path / "reports").glob(".*partial"))


def test_a_failing_report_is_one_line_and_the_service_goes_on(tmp_path, capsys):
    path = tmp_path / "keys.toml"
    path.write_text(KEY + '\n[review]\nweekly_cron = "0 7 * * mon"\n', encoding="utf-8")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    job = weekly_review_job(load_config(path), tmp_path / "missing.duckdb", blocker / "reports")
    asyncio.run(job())  # must not raise
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[review] weekly report not written:"), err
