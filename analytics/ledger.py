"""Parse and validate a team's credit ledger (bytes in, a clean DataFrame or row-level errors out).

Teams keep ledgers their own way: CSV with `,` `;` or tab, header names in their own words (aliases
below, or a mapping the user picks), numbers with thousands separators or a decimal comma, or JSON
Lines. Every parser here is linear in its input, and every bound (bytes, line length, lines, columns)
is checked before the work that depends on it, so a hostile file costs milliseconds, not hours.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Far above any real ledger (a row is ~100 bytes, ~10 columns) and low enough that checking is instant.
MAX_COLUMNS = 500
MAX_LINE_BYTES = 64 * 1024
MAX_ROWS = 1_000_000
REQUIRED_COLUMNS = ("job_id", "credits")
OPTIONAL_COLUMNS = ("key_name", "project_id", "model", "output_format", "duration_seconds", "status", "created_at")
LEDGER_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "line")
# Header names teams use for each column, after normalisation (lower snake case); the canonical name wins.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "job_id": ("id", "job", "jobid", "job_ref", "job_reference", "job_uuid", "provider_job_id", "removebg_job_id"),
    "credits": ("credit", "credits_charged", "charged_credits", "credits_used", "credit_cost", "cost_credits",
                "credits_billed", "billed_credits", "charge_credits"),
    "key_name": ("key", "api_key", "api_key_name", "key_label"),
    "project_id": ("project", "project_name"),
    "model": ("model_name", "tier"),
    "output_format": ("format", "output"),
    "duration_seconds": ("duration", "duration_s", "seconds", "video_seconds", "length_seconds", "video_duration"),
    "status": ("state", "job_status", "outcome"),
    "created_at": ("created", "date", "timestamp", "time", "submitted_at", "created_on", "job_created_at"),
}  # fmt: skip
_ALIAS_OF = {alias: canonical for canonical, aliases in HEADER_ALIASES.items() for alias in aliases}
JOB_STATUSES = ("pending", "processing", "completed", "failed")
# Teams write statuses in their own words; these are unambiguous, anything else is an error.
STATUS_ALIASES = {
    "complete": "completed",
    "done": "completed",
    "success": "completed",
    "succeeded": "completed",
    "successful": "completed",
    "error": "failed",
    "errored": "failed",
    "failure": "failed",
    "queued": "pending",
    "running": "processing",
    "in_progress": "processing",
}
_DELIMITERS = (",", ";", "\t")
MAX_REPORTED_ERRORS = 50


@dataclass(frozen=True)
class LedgerError:
    """One problem with the ledger: where (file line and column, when known) and why."""

    message: str
    line: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


@dataclass(frozen=True)
class LedgerResult:
    """A parsed ledger: `frame` when valid, otherwise the errors (at most MAX_REPORTED_ERRORS, see `more`).

    When the header was readable but the required columns could not be recognised, `columns` lists the
    file's own column names and `missing` the required ones, so a page can ask which is which (`mapping`).
    """

    frame: pd.DataFrame | None
    errors: list[LedgerError] = field(default_factory=list)
    more_errors: int = 0
    columns: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    recognized: dict[str, str] = field(default_factory=dict)  # canonical column -> the file's name for it
    file_format: str = "csv"  # csv | jsonl

    @property
    def ok(self) -> bool:
        return self.frame is not None and not self.errors

    @property
    def needs_mapping(self) -> bool:
        return bool(self.missing) and bool(self.columns)

    def error_lines(self) -> list[str]:
        lines = [str(e) for e in self.errors]
        if self.more_errors:
            lines.append(f"… and {self.more_errors} more problem(s) not listed")
        return lines


class LedgerInvalid(Exception):
    """Raised by `load_ledger` when the ledger cannot be used; carries the full result."""

    def __init__(self, result: LedgerResult) -> None:
        self.result = result
        super().__init__("; ".join(result.error_lines()))


def describe_size(size: int) -> str:
    if size >= 1_048_576:
        return f"{size / 1_048_576:.1f} MB".replace(".0 MB", " MB")
    if size >= 1024:
        return f"{size / 1024:.1f} KB".replace(".0 KB", " KB")
    return f"{size} bytes"


def _failure(message: str, line: int | None = None, column: str | None = None) -> LedgerResult:
    return LedgerResult(frame=None, errors=[LedgerError(message, line, column)])


def _decode(data: bytes) -> str | LedgerResult:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        return _failure(
            f"the file is not UTF-8 text (byte 0x{byte} at offset {exc.start}); "
            "it looks like Latin-1/Windows-1252 — save or export it as UTF-8 CSV",
            line=line,
        )


def _bounds(data: bytes) -> LedgerResult | None:
    """Refuse a file with too many lines or a line too long, in one vectorised pass over its bytes."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    lines = len(ends) + (0 if data.endswith(b"\n") else 1)
    if lines > MAX_ROWS + 1:
        return _failure(f"the file has {lines:,} lines; the limit is {MAX_ROWS:,} rows (split the ledger by period)")
    starts = np.concatenate(([0], ends + 1))
    stops = np.concatenate((ends, [len(data)]))
    lengths = stops - starts
    longest = int(np.argmax(lengths)) if len(lengths) else 0
    if len(lengths) and lengths[longest] > MAX_LINE_BYTES:
        return _failure(
            f"the line is {describe_size(int(lengths[longest]))} long; the limit is {describe_size(MAX_LINE_BYTES)} "
            "(is this a ledger with one row per line?)",
            line=longest + 1,
        )
    return None


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\s\-./]+")


def normalize_header(name: str) -> str:
    """`Job ID`, `jobId`, `job-id` and `"job_id"` all become `job_id`."""
    text = name.strip().strip('"').strip()
    text = _CAMEL.sub("_", text).lower()
    return _SEPARATORS.sub("_", text).strip("_")


def _canonical(name: str) -> str | None:
    normal = normalize_header(name)
    if normal in HEADER_ALIASES:
        return normal
    return _ALIAS_OF.get(normal)


def _assign(names: list[str], mapping: Mapping[str, str] | None) -> dict[str, int]:
    """Canonical column -> position: the user's mapping first, then exact names, then aliases (first wins)."""
    position: dict[str, int] = {}
    chosen = dict(mapping or {})
    for canonical, original in chosen.items():
        if canonical in HEADER_ALIASES and original in names:
            position[canonical] = names.index(original)
    taken = set(position.values())
    exact = {normalize_header(n): i for i, n in reversed(list(enumerate(names)))}
    for canonical in HEADER_ALIASES:
        if canonical not in position and canonical in exact and exact[canonical] not in taken:
            position[canonical] = exact[canonical]
            taken.add(exact[canonical])
    for index, name in enumerate(names):
        canonical = _canonical(name)
        if canonical and canonical not in position and index not in taken:
            position[canonical] = index
            taken.add(index)
    return position


def _pick_delimiter(first_line: str) -> str:
    """The delimiter under which the header names the required columns; else the most frequent one."""
    for delimiter in _DELIMITERS:
        if delimiter not in first_line:
            continue
        found = {_canonical(n) for n in first_line.split(delimiter)}
        if all(col in found for col in REQUIRED_COLUMNS):
            return delimiter
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


# --- numbers: thousands separators and a decimal comma -------------------------------------------------

_GROUPED = {
    ".": re.compile(r"^[+-]?\d{1,3}(?:[,\s'’]\d{3})+(?:\.\d*)?$"),  # 1,234.5  1 234.5  1'234.5
    ",": re.compile(r"^[+-]?\d{1,3}(?:[.\s'’]\d{3})+(?:,\d*)?$"),  # 1.234,5  1 234,5
}
_PLAIN = {".": re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"), ",": re.compile(r"^[+-]?(?:\d+,?\d*|,\d+)$")}
_AMBIGUOUS = re.compile(r"^[+-]?\d{1,3}(?:[.,]\d{3})+$")  # "1,234" and "1.234": a thousand, or one and a bit


def decimal_mark(values: Iterable[str], default: str = ".") -> str:
    """The decimal mark a column's values use: the one the unambiguous values show most, else `default`."""
    votes: Counter[str] = Counter()
    for raw in values:
        text = raw.strip()
        if not text or _AMBIGUOUS.match(text):
            continue
        dot, comma = text.rfind("."), text.rfind(",")
        if dot >= 0 or comma >= 0:
            votes["." if dot > comma else ","] += 1
    if votes[","] == votes["."]:
        return default
    return "," if votes[","] > votes["."] else "."


def parse_number(text: str, decimal: str = ".") -> float:
    """A finite number written with `decimal` as its decimal mark and optional thousands grouping."""
    clean = text.strip().replace("\u00a0", " ").replace("\u202f", " ")
    if _GROUPED[decimal].match(clean):
        clean = re.sub(r"[,.\s'’]", lambda m: "." if m.group(0) == decimal else "", clean)
    elif _PLAIN[decimal].match(clean):
        clean = clean.replace(",", ".")
    else:
        raise ValueError("not a number")
    value = float(clean)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def _timestamp(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):  # JSON Lines: epoch seconds or ms
        seconds = value / 1000 if abs(value) >= 1e11 else value
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    text = str(value).strip()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


# --- rows -------------------------------------------------------------------------------------------------


class _Problems:
    """Collects row problems; keeps the first MAX_REPORTED_ERRORS and counts the rest."""

    def __init__(self) -> None:
        self.errors: list[LedgerError] = []
        self.count = 0

    def __call__(self, message: str, line: int | None, column: str | None = None) -> None:
        self.count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LedgerError(message, line, column))


def _text_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a JSON number used as an id: 123.0 is job 123
    return str(value).strip()


def _records(rows: Iterable[tuple[int, dict[str, Any]]], problem: _Problems, decimal: str) -> list[dict[str, Any]]:
    """Typed, validated records from (line, {canonical column: raw value}) pairs."""
    rows = list(rows)
    marks = {
        name: decimal_mark((str(r[name]) for _, r in rows if isinstance(r.get(name), str)), decimal)
        for name in ("credits", "duration_seconds")
    }
    records: list[dict[str, Any]] = []
    first_line_of: dict[str, int] = {}
    for line, cells in rows:
        record: dict[str, Any] = {"line": line}
        job_id = _text_cell(cells.get("job_id"))
        if not job_id:
            problem("job id is empty", line, "job_id")
        elif job_id in first_line_of:
            problem(f"duplicate job id '{job_id}' (first on line {first_line_of[job_id]})", line, "job_id")
        else:
            first_line_of[job_id] = line
        record["job_id"] = job_id

        raw_credits = cells.get("credits")
        try:
            credits = _value(raw_credits, marks["credits"])
            if credits < 0:
                problem(f"'{_text_cell(raw_credits)}' is negative; credits must be 0 or more", line, "credits")
            record["credits"] = credits
        except ValueError:
            shown = _text_cell(raw_credits) or "(empty)"
            problem(f"'{shown}' is not a number (use a plain decimal such as 112.5)", line, "credits")

        raw_duration = cells.get("duration_seconds")
        if _text_cell(raw_duration):
            try:
                duration = _value(raw_duration, marks["duration_seconds"])
                if duration < 0:
                    problem(f"'{_text_cell(raw_duration)}' is negative", line, "duration_seconds")
                record["duration_seconds"] = duration
            except ValueError:
                problem(f"'{_text_cell(raw_duration)}' is not a number of seconds", line, "duration_seconds")

        raw_created = cells.get("created_at")
        if _text_cell(raw_created):
            try:
                record["created_at"] = _timestamp(raw_created)
            except (ValueError, OverflowError, OSError):
                problem(
                    f"'{_text_cell(raw_created)}' is not an ISO date or timestamp (e.g. 2025-03-01T12:30:00Z)",
                    line,
                    "created_at",
                )

        raw_status = _text_cell(cells.get("status")).lower()
        if raw_status:
            status = STATUS_ALIASES.get(raw_status, raw_status)
            if status not in JOB_STATUSES:
                problem(f"'{_text_cell(cells.get('status'))}' is not a job status ({', '.join(JOB_STATUSES)})", line,
                        "status")  # fmt: skip
            record["status"] = status

        for name in ("key_name", "project_id", "model", "output_format"):
            value = _text_cell(cells.get(name))
            if value:
                record[name] = value.lower() if name == "model" else value
        records.append(record)
    return records


def _value(raw: Any, decimal: str) -> float:
    if isinstance(raw, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            raise ValueError("not finite")
        return float(raw)
    return parse_number("" if raw is None else str(raw), decimal)


def _result(records: list[dict[str, Any]], problem: _Problems, file_format: str) -> LedgerResult:
    if problem.count:
        return LedgerResult(frame=None, errors=problem.errors, more_errors=problem.count - len(problem.errors),
                            file_format=file_format)  # fmt: skip
    if not records:
        return LedgerResult(frame=None, errors=[LedgerError("the ledger has a header but no rows")],
                            file_format=file_format)  # fmt: skip
    return LedgerResult(frame=_frame(records), file_format=file_format)


def _missing(position: Mapping[str, int], names: list[str], line: int | None, file_format: str) -> LedgerResult:
    missing = [col for col in REQUIRED_COLUMNS if col not in position]
    found = ", ".join(name for name in names if name.strip()) or "none"
    what = "column(s)" if file_format == "csv" else "field(s)"
    return LedgerResult(
        frame=None,
        errors=[
            LedgerError(
                f"required {what} {', '.join(missing)} missing; found: {found}. "
                f"The ledger needs {', '.join(REQUIRED_COLUMNS)} and may have {', '.join(OPTIONAL_COLUMNS)} "
                "(or a name they are known by, e.g. 'Job ID', 'credits_charged'): rename the columns, or map them on "
                "the Credits page",
                line,
            )
        ],
        columns=[n for n in names if n.strip()],
        missing=missing,
        recognized={canonical: names[index] for canonical, index in position.items()},
        file_format=file_format,
    )


def _parse_csv(text: str, mapping: Mapping[str, str] | None) -> LedgerResult:
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    delimiter = _pick_delimiter(first_line)
    if first_line.count(delimiter) + 1 > MAX_COLUMNS:
        return _failure(f"the header has {first_line.count(delimiter) + 1:,} columns; the limit is {MAX_COLUMNS}",
                        line=1)  # fmt: skip
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header_row = next(reader)
        while not any(cell.strip() for cell in header_row):
            header_row = next(reader)
    except StopIteration:
        return _failure("the file has no header row")
    except csv.Error as exc:
        return _failure(f"the header cannot be read as CSV ({exc})", line=reader.line_num)
    header_line = reader.line_num
    if len(header_row) > MAX_COLUMNS:
        return _failure(f"the header has {len(header_row):,} columns; the limit is {MAX_COLUMNS}", line=header_line)
    normalized = [normalize_header(name) for name in header_row]
    duplicated = sorted(name for name, count in Counter(n for n in normalized if n).items() if count > 1)
    if duplicated:
        return _failure(f"column(s) {', '.join(duplicated)} appear more than once in the header", line=header_line)
    names = [name.strip().strip('"').strip() for name in header_row]
    position = _assign(names, mapping)
    if any(col not in position for col in REQUIRED_COLUMNS):
        return _missing(position, names, header_line, "csv")

    problem = _Problems()

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                problem(f"cannot be read as CSV ({exc})", reader.line_num)
                return
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header_row):
                problem(f"has {len(row)} field(s) but the header has {len(header_row)}", reader.line_num)
                continue
            yield reader.line_num, {name: row[index] for name, index in position.items()}

    # Spreadsheets that write `;` between cells write a decimal comma in them.
    records = _records(rows(), problem, "," if delimiter == ";" else ".")
    return _result(records, problem, "csv")


def _parse_jsonl(text: str, mapping: Mapping[str, str] | None) -> LedgerResult:
    problem = _Problems()
    objects: list[tuple[int, dict[str, Any]]] = []
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as exc:
            problem(f"is not a JSON object ({exc.args[0] if exc.args else exc})", line)
            continue
        if not isinstance(item, dict):
            problem(f"is a JSON {type(item).__name__}, not an object", line)
            continue
        if len(item) > MAX_COLUMNS:
            return _failure(f"the object has {len(item):,} fields; the limit is {MAX_COLUMNS}", line=line)
        objects.append((line, item))
    if not objects:
        return _result([], problem, "jsonl")
    first_line, first = objects[0]
    names = list(first)
    position = _assign(names, mapping)
    if any(col not in position for col in REQUIRED_COLUMNS):
        return _missing(position, names, first_line, "jsonl")
    # Objects may differ in their keys: each distinct key list is mapped once.
    plans: dict[tuple[str, ...], dict[str, str]] = {}

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for line, item in objects:
            keys = tuple(item)
            plan = plans.get(keys)
            if plan is None:
                found = _assign(list(keys), mapping)
                plan = plans[keys] = {canonical: keys[index] for canonical, index in found.items()}
            yield line, {canonical: item[key] for canonical, key in plan.items()}

    records = _records(rows(), problem, ".")
    return _result(records, problem, "jsonl")


def parse_ledger(
    data: bytes, max_bytes: int = DEFAULT_MAX_BYTES, mapping: Mapping[str, str] | None = None
) -> LedgerResult:
    """Validate a ledger (CSV or JSON Lines): required `job_id`, `credits`; optional columns typed; every row
    checked. `mapping` names the file's column for a canonical one ({"job_id": "Ref"}) where aliases fail."""
    if len(data) > max_bytes:
        return _failure(
            f"the file is {describe_size(len(data))}; the limit is {describe_size(max_bytes)} "
            "(split the ledger by period, or raise [reconciliation] ledger_max_mb)"
        )
    text = _decode(data)
    if isinstance(text, LedgerResult):
        return text
    if not text.strip():
        return _failure("the file is empty; expected a CSV header with at least job_id and credits")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        return _failure("the file contains NUL bytes; it is not a text CSV", line=line)
    too_big = _bounds(data)
    if too_big is not None:
        return too_big
    if text.lstrip()[:1] == "{":
        return _parse_jsonl(text, mapping)
    return _parse_csv(text, mapping)


def _frame(records: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(LEDGER_COLUMNS))
    frame["credits"] = frame["credits"].astype("float64")
    frame["duration_seconds"] = frame["duration_seconds"].astype("float64")
    frame["created_at"] = pd.to_datetime(frame["created_at"]).astype("datetime64[us]")
    frame["line"] = frame["line"].astype("int64")
    for name in ("job_id", "key_name", "project_id", "model", "output_format", "status"):
        frame[name] = frame[name].astype("object").where(frame[name].notna(), None)
    return frame


def load_ledger(
    data: bytes, max_bytes: int = DEFAULT_MAX_BYTES, mapping: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Like `parse_ledger`, but raise LedgerInvalid instead of returning errors."""
    result = parse_ledger(data, max_bytes, mapping)
    if not result.ok or result.frame is None:
        raise LedgerInvalid(result)
    return result.frame
