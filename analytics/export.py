"""Row exports for CLIs and download buttons: JSON, and CSV that spreadsheets cannot execute."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: Any) -> Any:
    """Neutralize text that a spreadsheet would run as a formula (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def _plain(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is pd.NaT or (not isinstance(value, str | bytes) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def to_records(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else [dict(r) for r in rows]
    return [{k: _plain(v) for k, v in r.items()} for r in records]


def to_json(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> str:
    return json.dumps(to_records(rows), indent=2, ensure_ascii=False)


def to_csv(rows: pd.DataFrame | Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    records = to_records(rows)
    fields = list(columns) if columns else (list(records[0]) if records else [])
    buffer = io.StringIO()
    # "\r\n" as the terminator makes the writer quote any cell holding a lone CR, which a spreadsheet
    # would otherwise read as a row break (and run what follows it as a new, unprefixed cell).
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: safe_cell("" if record.get(k) is None else record.get(k)) for k in fields})
    return buffer.getvalue().replace("\r\n", "\n")


def csv_frame(frame: pd.DataFrame) -> bytes:
    """A DataFrame as safe CSV bytes for st.download_button."""
    return to_csv(frame, list(frame.columns)).encode("utf-8")
