"""Files and folders the product writes are owner-only (0600 / 0700) unless `RBV_UMASK` says otherwise.

Entry points (the CLIs, `collectors serve`, the dashboard) call `restrict_umask()`, so files DuckDB creates
itself (the database, its write-ahead log, temporary files) are owner-only too; the helpers here set the
mode explicitly, so library callers get the same result. `RBV_UMASK=027` would give 0640 / 0750.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

UMASK_ENV = "RBV_UMASK"
DEFAULT_UMASK = 0o077


def configured_umask() -> int:
    """`RBV_UMASK` as an octal umask (e.g. 077, 027), or 077; an unusable value falls back to 077 with a warning."""
    raw = os.environ.get(UMASK_ENV, "").strip()
    if not raw:
        return DEFAULT_UMASK
    try:
        value = int(raw, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        print(f"warning: {UMASK_ENV} must be an octal umask such as 077 or 027; using 077", file=sys.stderr)
        return DEFAULT_UMASK
    return value


def file_mode() -> int:
    return 0o666 & ~configured_umask()


def dir_mode() -> int:
    return 0o777 & ~configured_umask()


def restrict_umask() -> int:
    """Set the process umask from `RBV_UMASK` (default 077); returns the previous one."""
    return os.umask(configured_umask())


@contextlib.contextmanager
def restricted_umask() -> Iterator[None]:
    """The configured umask for the duration of one command (restored after, for in-process callers)."""
    previous = restrict_umask()
    try:
        yield
    finally:
        os.umask(previous)


def make_private_dir(path: str | Path) -> Path:
    """Create `path` (and missing parents) with the private folder mode; existing folders are left alone."""
    folder = Path(path)
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, dir_mode())
    return folder


def secure_file(path: str | Path) -> None:
    """Give a file someone else created (DuckDB) the private file mode."""
    os.chmod(path, file_mode())


def write_private(path: str | Path, data: str | bytes, *, replace: bool) -> Path:
    """Write `data` to `path` with the private file mode, atomically (beside it, then renamed into place).

    Refuses (FileExistsError) to replace an existing file unless `replace`.
    """
    target = Path(path)
    if target.exists() and not replace:
        raise FileExistsError(f"{target} already exists")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, file_mode())
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), file_mode())  # O_CREAT's mode is filtered by the umask; this is exact
            handle.write(payload)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return target


def write_secret(path: str | Path, text: str) -> Path:
    """Write a secret to a new file that only its owner can read (0600 whatever RBV_UMASK says); an existing
    file is never replaced (FileExistsError): the secret would be lost, or another one destroyed."""
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text.rstrip("\n") + "\n")
    return target
