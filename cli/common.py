"""What the analytics commands share: one-line usage errors, instants, the config, where results came from."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from config import DEFAULTS, Config, ConfigError, load_config
from service.results import Provenance


class UsageError(Exception):
    """Bad input from the command line, reported as one line."""


def parse_now(text: str | None, flag: str = "--now") -> datetime:
    """An ISO instant as naive UTC (no offset means UTC); the current time when not given."""
    if not text:
        return datetime.now(UTC).replace(tzinfo=None)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: '{text}' is not an ISO-8601 instant (e.g. 2025-06-02T12:00:00Z)") from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def analysis_config(path: str | Path | None) -> Config:
    """The config as the analysis commands read it (every section checked, no secrets needed); defaults
    without a file."""
    if path is None:
        return DEFAULTS
    try:
        return load_config(path, secrets=False)
    except ConfigError as exc:
        raise UsageError(f"--config: {exc}") from None


def require_db(db: str) -> None:
    if not Path(db).is_file():
        raise UsageError(f"--db: {db} does not exist")


def say_provenance(command: str, what: str, origin: Provenance, explicit_now: bool) -> None:
    """On stderr, when stored results answered: as of when, so a script can tell (stdout keeps its shape)."""
    if origin.stored:
        hint = "" if explicit_now else "; give --now to compute as of another instant"
        print(f"analytics {command}: {what} {origin.sentence()}{hint}", file=sys.stderr)
