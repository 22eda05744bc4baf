"""The one visual language and the rules behind honest charts: formatting, like-for-like comparisons, unknown
spans (not zeros), routes, and incidents read worst first."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import altair as alt
import numpy as np
import pandas as pd

import formatting
from analytics.incidents import by_day, in_words, is_open, window, worst_first
from analytics.traffic import (
    Unknown,
    combine_known,
    daily_unknown,
    endpoint_route,
    hourly_calls_unknown,
    like_for_like,
    mask_unknown,
    partial_period,
    rollup,
    unknown_everywhere,
)

BERLIN = ZoneInfo("Europe/Berlin")


def test_numbers_times_and_labels_read_the_same_everywhere():
    assert formatting.count(190188.07) == "190,188"
    assert formatting.credits(190188.07) == "190,188.07"
    assert formatting.signed(-8158) == "\u22128,158" and formatting.signed(12) == "+12" and formatting.signed(0) == "0"
    assert formatting.signed(-3, minus="-") == "-3"  # what Streamlit's metric reads a sign from
    assert formatting.percent(0.153) == "15 %" and formatting.percent(-0.2, sign=True) == "\u221220 %"
    assert formatting.count(None) == formatting.count(np.nan) == "—"
    assert formatting.moment(datetime(2026, 11, 20, 12, 0)) == "2026-11-20 12:00 UTC"
    assert formatting.moment(datetime(2026, 11, 20, 12, 0), BERLIN) == "2026-11-20 13:00 CET"
    assert formatting.label("credits_charged") == "Credits charged" and formatting.label("key_name") == "Key"
    assert formatting.label("some_new_field") == "Some new field"


def test_exports_carry_absolute_times_and_human_headings():
    frame = pd.DataFrame({"key_name": ["a"], "last_used_at": [pd.Timestamp("2026-11-20 11:00")], "calls_30d": [1234]})
    out = formatting.for_export(frame, BERLIN)
    assert list(out.columns) == ["Key", "Last used", "Calls, 30 days"]
    assert out.iloc[0].tolist() == ["a", "2026-11-20 12:00 CET", 1234]  # a number stays a number


def test_a_rise_in_failures_or_credits_is_never_green():
    assert formatting.delta_color("failed") == formatting.delta_color("credits") == "inverse"  # up = red
    assert formatting.delta_color("calls") == formatting.delta_color("jobs") == "off"  # volume is neither


def test_one_theme_is_registered_and_active():
    formatting.register_theme()
    assert alt.theme.active == formatting.THEME
    config = alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x="x:Q").to_dict()["config"]
    assert config["range"]["category"] == formatting.CATEGORY_PALETTE
    formatting.register_theme()  # idempotent
    assert alt.theme.active == formatting.THEME and alt.theme.names().count(formatting.THEME) == 1


def test_complete_days_are_compared_with_as_many_days_before():
    read_at = datetime(2026, 11, 20, 12, 0)
    found = like_for_like(date(2026, 10, 22), date(2026, 11, 20), date(2026, 8, 22), read_at)
    assert found.current == (date(2026, 10, 22), date(2026, 11, 19))  # today is in progress: left out
    assert found.previous == (date(2026, 9, 23), date(2026, 10, 21))
    assert found.partial_day == date(2026, 11, 20) and found.comparable
    assert "29 complete days 2026-10-22 – 2026-11-19 against the 29 days before" in found.note


def test_no_change_where_nothing_comparable_was_collected():
    read_at = datetime(2026, 11, 20, 12, 0)
    ninety = like_for_like(date(2026, 8, 23), date(2026, 11, 20), date(2026, 8, 22), read_at)
    assert not ninety.comparable and ninety.previous is None
    assert "nothing was collected before 2026-08-22" in ninety.note
    today_only = like_for_like(date(2026, 11, 20), date(2026, 11, 20), date(2026, 8, 22), read_at)
    assert today_only.current is None and not today_only.comparable
    past = like_for_like(date(2026, 10, 1), date(2026, 10, 7), date(2026, 8, 22), read_at)
    assert past.partial_day is None and past.current == (date(2026, 10, 1), date(2026, 10, 7))


def test_hours_before_event_polling_are_unknown_not_zero():
    start, end = datetime(2026, 11, 19), datetime(2026, 11, 20, 12)
    spans = hourly_calls_unknown(
        start,
        end,
        covered_since=datetime(2026, 11, 20, 9, 30),
        gaps=[(datetime(2026, 11, 20, 10, 10), datetime(2026, 11, 20, 10, 40))],
        read_at=datetime(2026, 11, 20, 11, 5),
    )
    assert [(s.start.hour, s.end.hour) for s in spans] == [(0, 10), (10, 11)]
    assert spans[0].start == pd.Timestamp(start) and "before event polling began" in spans[0].reason
    assert "overflowed" in spans[1].reason
    hours = rollup(pd.DataFrame({"hour": [datetime(2026, 11, 20, 11)], "calls": [7]}), "hour", ["calls"], "hour",
                   start=start, end=datetime(2026, 11, 20, 12))  # fmt: skip
    masked = mask_unknown(hours, ["calls"], spans, "hour")
    assert masked["calls"].iloc[:35].isna().all(), "before coverage and inside the gap: unknown"
    assert masked["calls"].iloc[35] == 7 and masked["calls"].notna().sum() == 1
    assert partial_period(datetime(2026, 11, 20, 11, 5), "hour") == pd.Timestamp("2026-11-20 11:00")
    never = hourly_calls_unknown(start, end, None, [], None)
    assert len(never) == 1 and "never polled" in never[0].reason


def test_days_outside_the_usage_summary_are_unknown():
    spans = daily_unknown(date(2026, 8, 1), date(2026, 11, 25), date(2026, 8, 22), datetime(2026, 11, 20, 12))
    assert [(s.start.date(), s.end.date()) for s in spans] == [
        (date(2026, 8, 1), date(2026, 8, 22)),
        (date(2026, 11, 21), date(2026, 11, 26)),
    ]
    assert "starts on 2026-08-22" in spans[0].reason and "not collected yet" in spans[1].reason


def test_a_group_is_unknown_where_any_of_its_keys_is():
    series = pd.DataFrame({"key_name": ["a", "b", "a", "b"], "period": [1, 1, 2, 2], "calls": [1.0, np.nan, 2.0, 3.0]})
    out = combine_known(series, ["calls"], pd.Series({"a": "prod", "b": "prod"}), "environment")
    assert np.isnan(out["calls"].iloc[0]) and out["calls"].iloc[1] == 5.0
    t = pd.Timestamp
    shared = unknown_everywhere(
        [[Unknown(t("2026-11-01"), t("2026-11-20 09:00"), "a")], [Unknown(t("2026-11-01"), t("2026-11-20 10:00"), "b")]]
    )
    assert shared == [Unknown(t("2026-11-01"), t("2026-11-20 09:00"), "a")]  # drawn grey only where all are unknown


def test_endpoints_are_grouped_by_route():
    assert endpoint_route("GET /v1/jobs/job_58e4c1a2") == "GET /v1/jobs/{id}"
    assert endpoint_route("POST /v1/jobs/job_abc123/start") == "POST /v1/jobs/{id}/start"
    assert endpoint_route("GET /v1/usage/summary") == "GET /v1/usage/summary"
    assert endpoint_route("GET /v1/jobs/3f2a9c1e-1111-2222-3333-444455556666") == "GET /v1/jobs/{id}"


def _incident(key, severity, start, end, grain="hour", share=0.3, score=0.7, metric="calls"):
    return {
        "key_name": key, "metric": metric, "direction": "spike", "start": pd.Timestamp(start),
        "end": pd.Timestamp(end), "peak_score": score, "expected": 0.2, "observed": 12.0, "grain": grain,
        "severity": severity, "day_share": share, "alert_worthy": True,
    }  # fmt: skip


def test_incidents_worst_first_open_now_and_per_day():
    now = datetime(2026, 11, 20, 12, 30)
    found = pd.DataFrame(
        [
            _incident("a", "low", "2026-11-20 08:00", "2026-11-20 11:00", share=0.9),
            _incident("b", "high", "2026-11-18 08:00", "2026-11-19 02:00", share=0.6),
            _incident("c", "medium", "2026-11-19 00:00", "2026-11-19 00:00", grain="day"),
            _incident("d", "high", "2026-11-01 08:00", "2026-11-01 09:00", share=2.0),
        ]
    )
    assert is_open(found, now).tolist() == [True, False, True, False]  # the last scored hour, or day
    assert worst_first(found)["key_name"].tolist() == ["d", "b", "c", "a"]
    recent = window(found, now, hours=24 * 7)
    assert recent["key_name"].tolist() == ["b", "c", "a"] and recent["open"].tolist() == [False, True, True]
    strip = by_day(found, date(2026, 11, 17), date(2026, 11, 20))
    assert strip[strip["key_name"] == "b"]["day"].dt.day.tolist() == [18, 19]
    assert set(strip["key_name"]) == {"a", "b", "c"}
    assert in_words(found.iloc[0]) == "12 calls where about 0.2 were expected, over 4 hours"
    assert in_words(found.iloc[2]).endswith("over 1 day")
