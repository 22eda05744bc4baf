"""Render a weekly review (the dict of analytics.review.build_review) as JSON, Markdown or self-contained HTML."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import altair as alt
import pandas as pd
import vl_convert as vlc

from analytics.export import _plain
from analytics.review import not_compared_because
from formatting import COLORS, NOTHING, day, moment, number, percent, register_theme
from untrusted import markdown_text

register_theme()  # the report's charts look like the pages' (it draws with Altair anyway)

# Fields that hold instants: shown in the one time format (a day-grain incident's bounds as days).
TIME_FIELDS = ("since", "created_at", "rotated_at", "gap_start", "gap_end", "start", "end", "decided_at")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return _plain(value)


def to_json(review: dict[str, Any]) -> str:
    return json.dumps(_jsonable(review), indent=2, ensure_ascii=False) + "\n"


def _num(value: Any, digits: int = 0) -> str:
    return number(value, digits)


def _pct(value: Any) -> str:
    """A change in percent (20.8 → '+20.8 %')."""
    return NOTHING if value is None else percent(float(value) / 100, 1, sign=True)


def _times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with their instants in the one time format (UTC), days as days."""
    out = []
    for row in rows:
        shown = dict(row)
        for field in TIME_FIELDS:
            if shown.get(field):
                value = shown[field]
                shown[field] = day(value) if row.get("grain") == "day" else moment(value)
        out.append(shown)
    return out


def _md_cell(value: Any) -> str:
    """A table cell: names, owners, notes and errors came from data, so they are text, never Markdown or HTML."""
    return markdown_text("" if value is None else value, block_start=False)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    """A Markdown table; `columns` are (field, header)."""
    if not rows:
        return ["_None._", ""]
    out = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_md_cell(r.get(f)) for f, _ in columns) + " |" for r in rows]
    return [*out, ""]


def _pricing_note(pricing: dict[str, Any] | None) -> str:
    """Which rates priced the expected credits, and why the API's were not used when they were not."""
    if not pricing:
        return ""
    note = f"Pricing used: {pricing['label']}."
    return note + (f" Warning: {pricing['warning']}." if pricing.get("warning") else "")


def sections(review: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], list[tuple[str, str]], str]]:
    """Each report section in meeting order: (title, rows, columns, note), instants in the one time format.
    Shared by Markdown, HTML and the page."""
    return [(title, _times(rows), columns, note) for title, rows, columns, note in _sections(review)]


def _sections(review: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], list[tuple[str, str]], str]]:
    gov, rot, rec, health, anomalies = (
        review["governance"],
        review["rotations"],
        review["reconciliation"],
        review["collector_health"],
        review["anomalies"],
    )
    needed = [
        {
            "key_name": item["key_name"],
            "status": "NEW" if item["new"] else "open",
            "findings": "; ".join(f"{f['label']}{' (new)' if f['new'] else ''}" for f in item["findings"]),
            "last_decision": _decision_text(item["last_decision"]),
        }
        for item in review["decisions_needed"]
    ]
    finding_cols = [("key_name", "Key"), ("label", "Finding"), ("detail", "Detail")]
    not_compared = not_compared_because(review["week"])
    return [
        (
            "Keys needing a decision",
            needed,
            [("key_name", "Key"), ("status", "Status"), ("findings", "Findings"), ("last_decision", "Last decision")],
            "New findings first.",
        ),
        (
            "Stale keys",
            [{**r, "label": r["label"] + (" (new)" if r["new"] else "")} for r in review["stale_keys"]],
            finding_cols,
            "Never used or inactive past the environment's threshold.",
        ),
        (
            "Governance findings opened this week",
            gov["opened"],
            finding_cols,
            f"{gov['open']} open at the end of the week, {gov['previous_open']} at the end of the previous week."
            if gov["available"]
            else "Not computable: the week has not started yet.",
        ),
        ("Governance findings resolved this week", gov["resolved"], finding_cols, ""),
        (
            "New keys",
            review["new_keys"],
            [("key_name", "Key"), ("environment", "Env"), ("owner", "Owner"), ("created_at", "Created")],
            "",
        ),
        ("Rotations due or overdue", rot["due_or_overdue"], finding_cols, ""),
        (
            "Rotated this week",
            rot["rotated_this_week"],
            [("key_name", "Key"), ("environment", "Env"), ("rotated_at", "Rotated")],
            "",
        ),
        (
            "Anomaly incidents",
            anomalies.get("incidents", []),
            [
                ("key_name", "Key"),
                ("metric", "Metric"),
                ("direction", "Direction"),
                ("grain", "Grain"),
                ("severity", "Severity"),
                ("start", "Start"),
                ("end", "End"),
            ],
            (
                f"Detection unavailable: {anomalies.get('reason', '')}."
                if not anomalies.get("available")
                else f"Alert-worthy incidents only; {anomalies.get('minor', 0)} minor ones are on the Anomalies page."
                if anomalies.get("minor")
                else ""
            ),
        ),
        _changes("Top movers by calls", review["top_movers"]["calls"], ("key_name", "Key"), not_compared, ""),
        _changes("Top movers by credits", review["top_movers"]["credits"], ("key_name", "Key"), not_compared, ""),
        _changes(
            "Credits by environment",
            review["credits_by_environment"],
            ("environment", "Environment"),
            not_compared,
            "",
        ),
        _changes(
            "Credits by model",
            review["credits_by_model"],
            ("model", "Model"),
            not_compared,
            "Jobs created in the week.",
        ),
        (
            "Reconciliation",
            [{**r, "category": r["category"].replace("_", " ")} for r in rec["by_category"] if r["count"]],
            [("category", "Category"), ("count", "Count"), ("delta", "Delta (credits)"), ("help", "Meaning")],
            f"{rec['total']} discrepancies, {_num(rec['refunds_due'], 2)} credits refund due. "
            + _pricing_note(rec.get("pricing")),
        ),
        (
            "Collector health: failed items",
            health["failed_items"],
            [
                ("key_name", "Key"),
                ("endpoint", "Endpoint"),
                ("status", "Status"),
                ("error_code", "Error"),
                ("message", "Message"),
            ],
            f"{health['runs']} runs ({', '.join(f'{k}: {v}' for k, v in health['runs_by_status'].items()) or 'none'}); "
            f"trust: {health['trust']}.",
        ),
        (
            "Collector health: coverage gaps",
            health["coverage_gaps"],
            [("key_name", "Key"), ("endpoint", "Endpoint"), ("gap_start", "From"), ("gap_end", "To")],
            "",
        ),
        (
            "Decisions on record",
            [{**d, "decided": _decision_text(d)} for d in review["decisions"]],
            [("key_name", "Key"), ("decided", "Last decision"), ("note", "Note")],
            "",
        ),
    ]


def _decision_text(decision: dict[str, Any] | None) -> str:
    if not decision:
        return "—"
    when = str(decision.get("decided_at") or "")[:10]
    return f"{decision['decision']} by {decision['decided_by']} on {when}"


CHANGE_COLUMNS = [
    ("current", "This week"),
    ("previous", "Previous week"),
    ("change", "Change"),
    ("change_pct", "Change %"),
]


def _changes(
    title: str, rows: list[dict[str, Any]], first: tuple[str, str], not_compared: str, note: str
) -> tuple[str, list[dict[str, Any]], list[tuple[str, str]], str]:
    """A week-over-week section: with its changes when the weeks compare like for like, else this week only."""
    if not not_compared:
        return title, _fmt_change(rows), [first, *CHANGE_COLUMNS], note
    heading = f"Not compared with the week before: {not_compared}; this week's figures only."
    return title, _fmt_change(rows), [first, CHANGE_COLUMNS[0]], f"{note} {heading}".strip()


def _fmt_change(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **r,
            "current": _num(r["current"]),
            "previous": _num(r["previous"]),
            "change": _num(r["change"]),
            "change_pct": _pct(r["change_pct"]),
        }
        for r in rows
    ]


def _headline(review: dict[str, Any]) -> list[str]:
    week, act = review["week"], review["week"]["activity"]
    because = not_compared_because(week)
    if not because:
        lines = [
            f"Week {week['week']} ({week['start'][:10]} to {week['end'][:10]}, compared with {week['previous_week']}).",
            f"Calls {_num(act['calls']['current'])} ({_pct(act['calls']['change_pct'])}), "
            f"jobs {_num(act['jobs']['current'])}, credits {_num(act['credits']['current'], 2)} "
            f"({_pct(act['credits']['change_pct'])}).",
        ]
    else:  # like for like or not at all (the page shows no change either)
        lines = [
            f"Week {week['week']} ({week['start'][:10]} to {week['end'][:10]}; not compared with "
            f"{week['previous_week']}: {because}).",
            f"Calls {_num(act['calls']['current'])}, jobs {_num(act['jobs']['current'])}, "
            f"credits {_num(act['credits']['current'], 2)}.",
        ]
    if not week["has_activity"]:
        lines.append("No calls or jobs were recorded in this week.")
    if not week["complete"]:
        lines.append(f"The week is not over: figures run to {week['generated_at']}.")
    return lines


def to_markdown(review: dict[str, Any]) -> str:
    out = [f"# Weekly key review {review['week']['week']}", "", *(f"{line}  " for line in _headline(review)), ""]
    for title, rows, columns, note in sections(review):
        out += [f"## {title}", ""]
        if note:
            out += [markdown_text(note), ""]  # some notes carry an error message from the data
        out += _table(rows, columns)
    return "\n".join(out).rstrip() + "\n"


def _png(chart: alt.TopLevelMixin) -> str:
    data = vlc.vegalite_to_png(chart.to_dict(), scale=1.5)
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def charts(review: dict[str, Any]) -> list[tuple[str, alt.Chart]]:
    """The report's charts (titles and Altair charts), also shown on the page."""
    daily = pd.DataFrame(review["week"]["daily"], columns=["day", "calls", "credits"])
    daily["day"] = pd.to_datetime(daily["day"]).dt.strftime("%a %d")
    calls = (
        alt.Chart(daily, width=420, height=180)
        .mark_bar(color=COLORS["observed"])
        .encode(x=alt.X("day:N", title=None, sort=None), y=alt.Y("calls:Q", title="calls"))
    )
    # The week before only when the weeks compare like for like (else its bars would be a rise from nothing).
    weeks = (("previous", "previous week"), ("current", "this week"))
    if not_compared_because(review["week"]):
        weeks = weeks[1:]
    env_rows = [
        {"environment": r["environment"], "week": label, "credits": r[field]}
        for r in review["credits_by_environment"]
        for field, label in weeks
    ]
    env = pd.DataFrame(env_rows, columns=["environment", "week", "credits"])
    by_env = (
        alt.Chart(env, width=420, height=180)
        .mark_bar()
        .encode(
            x=alt.X("environment:N", title=None),
            xOffset=alt.XOffset("week:N", sort=["previous week", "this week"]),
            y=alt.Y("credits:Q", title="credits"),
            color=alt.Color(
                "week:N",
                title=None,
                scale=alt.Scale(domain=["previous week", "this week"], range=[COLORS["expected"], COLORS["observed"]]),
                legend=alt.Legend(orient="bottom"),
            ),
        )
    )
    title = "Credits by environment" + ("" if len(weeks) == 1 else ", week over week")
    return [("Calls per day", calls), (title, by_env)]


_CSS = """
@page { size: A4; margin: 14mm; }
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2328;
       max-width: 190mm; margin: 0 auto; font-size: 10.5pt; line-height: 1.4; }
h1 { font-size: 18pt; margin: 0 0 4pt; } h2 { font-size: 12.5pt; margin: 14pt 0 4pt; border-bottom: 1px solid #d0d7de; }
p.note { color: #57606a; margin: 2pt 0 4pt; } p.empty { color: #57606a; font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; }
th, td { border: 1px solid #d0d7de; padding: 2pt 4pt; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } tr { break-inside: avoid; }
.charts { display: flex; flex-wrap: wrap; gap: 8pt; } figure { margin: 0; break-inside: avoid; }
figure img { max-width: 92mm; height: auto; } figcaption { font-size: 9pt; color: #57606a; }
.new { color: #cf222e; font-weight: 600; }
@media print { h2 { break-after: avoid; } }
"""


def to_html(review: dict[str, Any]) -> str:
    """One self-contained HTML file: inline CSS, charts as PNG data URIs, no external URL of any kind."""
    e = html.escape
    week = review["week"]["week"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Weekly key review {e(week)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Weekly key review {e(week)}</h1>",
        *(f'<p class="note">{e(line)}</p>' for line in _headline(review)),
        '<div class="charts">',
    ]
    for title, chart in charts(review):
        parts.append(
            f'<figure><img class="chart" alt="{e(title)}" src="{_png(chart)}">'
            f"<figcaption>{e(title)}</figcaption></figure>"
        )
    parts.append("</div>")
    for title, rows, columns, note in sections(review):
        parts.append(f"<h2>{e(title)}</h2>")
        if note:
            parts.append(f'<p class="note">{e(note)}</p>')
        if not rows:
            parts.append('<p class="empty">None.</p>')
            continue
        head = "".join(f"<th>{e(h)}</th>" for _, h in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{e(str('' if r.get(f) is None else r.get(f)))}</td>" for f, _ in columns) + "</tr>"
            for r in rows
        )
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(review: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return to_json(review)
    if fmt == "md":
        return to_markdown(review)
    if fmt == "html":
        return to_html(review)
    raise ValueError(f"unknown format {fmt!r}")
