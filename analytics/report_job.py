"""Writes the weekly key review as HTML, Markdown and JSON into a folder: the collector service's Monday job."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from analytics import credits
from analytics.cli_keys import rules_from_file
from analytics.review import build_review, default_week, load_inputs
from analytics.review_render import render
from private_files import make_private_dir, write_private
from store.state_file import state_path

FORMATS = ("html", "md", "json")


def write_weekly_review(
    db_path: str | Path, out_dir: str | Path, config_path: str | Path | None, now: datetime
) -> list[Path]:
    """Render the last full ISO week before `now` (naive UTC) into `out_dir/review-YYYY-Www.{html,md,json}`.

    Each file is written beside its target and renamed into place, so a reader never sees half a report;
    files are owner-only (0600, see private_files), and the same week written again replaces its files.
    Raises the CLI's UsageError / ReconcileConfigError for a bad config and StoreError for the database.
    """

    week = default_week(now)
    rules = rules_from_file(config_path)
    settings = credits.load_settings(config_path)
    state = state_path(db_path)
    review = build_review(load_inputs(db_path, week, now, rules, settings, state), week, now)
    folder = make_private_dir(out_dir)
    return [write_private(folder / f"review-{week}.{fmt}", render(review, fmt), replace=True) for fmt in FORMATS]
