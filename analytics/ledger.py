"""Parse and validate a team's credit ledger CSV (bytes in, a clean DataFrame or row-level errors out)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
REQUIRED_COLUMNS = ("job_id", "credits")
OPTIONAL_COLUMNS = ("key_name", "project_id", "model", "output_format", "duration_seconds", "status", "created_at")
LEDGER_COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "line")
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
    """A parsed ledger: `frame` when valid, otherwise the errors (at most MAX_REPORTED_ERRORS, see `more`)."""

    frame: pd.DataFrame | None
    errors: list[LedgerError] = field(default_factory=list)
    more_errors: int = 0

    @property
    def ok(self) -> bool:
        return self.frame is not None and not self.errors

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


def _normalize_header(name: str) -> str:
    return name.strip().strip('"').strip().lower().replace(" ", "_")


def _pick_delimiter(first_line: str) -> str:
    """Comma by default; spreadsheets in some locales export ';' or tabs, which we accept when obvious."""
    for delimiter in _DELIMITERS:
        names = {_normalize_header(n) for n in first_line.split(delimiter)}
        if all(col in names for col in REQUIRED_COLUMNS):
            return delimiter
    return ","


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def _timestamp(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_ledger(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> LedgerResult:
    """Validate a ledger CSV: required `job_id`, `credits`; optional columns typed; every row checked."""
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

    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_pick_delimiter(first_line))
    try:
        header_row = next(reader)
        while not any(cell.strip() for cell in header_row):
            header_row = next(reader)
    except StopIteration:
        return _failure("the file has no header row")
    except csv.Error as exc:
        return _failure(f"the header cannot be read as CSV ({exc})", line=reader.line_num)
    header = [_normalize_header(name) for name in header_row]
    header_line = reader.line_num

    duplicated = sorted({name for name in header if name and header.count(name) > 1})
    if duplicated:
        return _failure(f"column(s) {', '.join(duplicated)} appear more than once in the header", line=header_line)
    missing = [col for col in REQUIRED_COLUMNS if col not in header]
    if missing:
        found = ", ".join(name for name in header if name) or "none"
        return _failure(
            f"required column(s) {', '.join(missing)} missing; found: {found}. "
            f"The ledger needs {', '.join(REQUIRED_COLUMNS)} and may have {', '.join(OPTIONAL_COLUMNS)}",
            line=header_line,
        )
    position = {name: header.index(name) for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if name in header}

    errors: list[LedgerError] = []
    error_count = 0

    def problem(message: str, line: int, column: str | None = None) -> None:
        nonlocal error_count
        error_count += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(LedgerError(message, line, column))

    records: list[dict[str, object]] = []
    first_line_of: dict[str, int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problem(f"cannot be read as CSV ({exc})", reader.line_num)
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            problem(f"has {len(row)} field(s) but the header has {len(header)}", line)
            continue
        cells = {name: row[index].strip() for name, index in position.items()}
        record: dict[str, object] = {"line": line}

        job_id = cells["job_id"]
        if not job_id:
            problem("job id is empty", line, "job_id")
        elif job_id in first_line_of:
            problem(f"duplicate job id '{job_id}' (first on line {first_line_of[job_id]})", line, "job_id")
        else:
            first_line_of[job_id] = line
        record["job_id"] = job_id

        raw_credits = cells["credits"]
        try:
            credits = _number(raw_credits)
            if credits < 0:
                problem(f"'{raw_credits}' is negative; credits must be 0 or more", line, "credits")
            record["credits"] = credits
        except ValueError:
            shown = raw_credits or "(empty)"
            problem(f"'{shown}' is not a number (use a plain decimal such as 112.5)", line, "credits")

        raw_duration = cells.get("duration_seconds", "")
        if raw_duration:
            try:
                duration = _number(raw_duration)
                if duration < 0:
                    problem(f"'{raw_duration}' is negative", line, "duration_seconds")
                record["duration_seconds"] = duration
            except ValueError:
                problem(f"'{raw_duration}' is not a number of seconds", line, "duration_seconds")

        raw_created = cells.get("created_at", "")
        if raw_created:
            try:
                record["created_at"] = _timestamp(raw_created)
            except ValueError:
                problem(
                    f"'{raw_created}' is not an ISO date or timestamp (e.g. 2025-03-01T12:30:00Z)", line, "created_at"
                )

        raw_status = cells.get("status", "").lower()
        if raw_status:
            status = STATUS_ALIASES.get(raw_status, raw_status)
            if status not in JOB_STATUSES:
                problem(f"'{cells['status']}' is not a job status ({', '.join(JOB_STATUSES)})", line, "status")
            record["status"] = status

        for name in ("key_name", "project_id", "model", "output_format"):
            value = cells.get(name, "")
            if value:
                record[name] = value.lower() if name == "model" else value
        records.append(record)

    if error_count:
        return LedgerResult(frame=None, errors=errors, more_errors=error_count - len(errors))
    if not records:
        return _failure("the ledger has a header but no rows")
    return LedgerResult(frame=_frame(records))


def _frame(records: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(LEDGER_COLUMNS))
    frame["credits"] = frame["credits"].astype("float64")
    frame["duration_seconds"] = frame["duration_seconds"].astype("float64")
    frame["created_at"] = pd.to_datetime(frame["created_at"]).astype("datetime64[us]")
    frame["line"] = frame["line"].astype("int64")
    for name in ("job_id", "key_name", "project_id", "model", "output_format", "status"):
        frame[name] = frame[name].astype("object").where(frame[name].notna(), None)
    return frame


def load_ledger(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> pd.DataFrame:
    """Like `parse_ledger`, but raise LedgerInvalid instead of returning errors."""
    result = parse_ledger(data, max_bytes)
    if not result.ok or result.frame is None:
        raise LedgerInvalid(result)
    return result.frame
