"""Access control: OIDC sign-in via st.login when configured, else a password gate, else open on localhost.

Configure in `.streamlit/secrets.toml` (beside dashboard.py):
  [auth] ... (Streamlit's OIDC settings: redirect_uri, cookie_secret, client_id, client_secret,
             server_metadata_url) → every page requires st.login
  [access] password_hash = "pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"
             → every page requires the password (make a hash with `python -m ui.auth`)

Streamlit reads `.streamlit/` from the working directory, so a dashboard started from another folder
would run without its listen address, host allow-list and sign-in: it then serves nothing but a page
saying how to start it. Failed passwords are counted per client address across every session of the
process (a reload does not reset them), logged, and lock that address out for a while.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import math
import os
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from untrusted import log_text, markdown_text

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 300_000
ROOT = Path(__file__).resolve().parents[1]
SETTINGS_DIR = ROOT / ".streamlit"
MAX_FAILURES = 5  # per client address within WINDOW_S; then that address waits until the window frees up
WINDOW_S = 15 * 60
FAILURE_DELAY_S = 1.0

log = logging.getLogger("rbv.auth")
if not log.handlers:  # Streamlit configures only its own loggers; sign-in failures must reach the server log
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(salt), iterations)
    return f"{ALGORITHM}${iterations}${salt}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algorithm, iterations, salt, expected = stored.split("$")
        if algorithm != ALGORITHM:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), bytes.fromhex(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


class SignInThrottle:
    """Failed sign-ins per client address, shared by every session of the process."""

    def __init__(
        self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures, self.window_s, self._clock = max_failures, window_s, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and self._clock() - times[0] >= self.window_s:
            times.popleft()
        return times

    def locked_for(self, client: str) -> float:
        """Seconds until `client` may try again (0: it may try now)."""
        with self._lock:
            times = self._recent(client)
            if len(times) < self.max_failures:
                return 0.0
            return max(0.0, times[-self.max_failures] + self.window_s - self._clock())

    def failed(self, client: str) -> int:
        """Record a failure; returns the failures of `client` within the window."""
        with self._lock:
            times = self._recent(client)
            times.append(self._clock())
            return len(times)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()


THROTTLE = SignInThrottle()


def client_address() -> str:
    """The connecting client's address (Streamlit reports loopback as None: "localhost")."""
    try:
        address = st.context.ip_address
    except Exception:  # no client context (bare script run)
        address = None
    return address if isinstance(address, str) and address else "localhost"


def launch_problem() -> str | None:
    """Why this process must not serve pages, or None: it was started outside the dashboard's folder.

    Streamlit reads `.streamlit/config.toml` and `secrets.toml` from the working directory only; elsewhere
    the dashboard would listen on every interface, check no Host header and require no sign-in.
    """
    here = Path.cwd() / ".streamlit"
    try:
        same = here.exists() and os.path.samefile(here, SETTINGS_DIR)
    except OSError:
        same = False
    if same:
        return None
    return (
        f"This dashboard was started from {Path.cwd()}, so Streamlit did not read its settings and secrets "
        f"in {SETTINGS_DIR} (listen address, allowed hosts, sign-in). Nothing is shown until it is started "
        f"from its own folder: make run, or streamlit run dashboard.py from {ROOT}."
    )


def _secret_section(name: str) -> dict[str, Any] | None:
    try:
        section = st.secrets.get(name)
    except Exception:  # no secrets file at all, or an unreadable one: treat as not configured
        return None
    return dict(section) if section else None


def _oidc_gate() -> None:
    st.title("Sign in required")
    st.write("This dashboard is protected by your identity provider.")
    st.button("Sign in", on_click=st.login, type="primary")


def _minutes(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds / 60))} min"


def _password_gate(stored_hash: str) -> None:
    st.title("Password required")
    client = client_address()
    wait = THROTTLE.locked_for(client)
    if wait > 0:  # no form at all: nothing can be tried from this address until the window frees up
        st.error(f"Too many failed sign-ins from this address: try again in {_minutes(wait)}.")
        return
    with st.form("access_form"):
        password = st.text_input("Dashboard password", type="password", key="access_password")
        submitted = st.form_submit_button("Unlock", type="primary")
    if not submitted:
        return
    if verify_password(password, stored_hash):
        THROTTLE.succeeded(client)
        st.session_state["access_granted"] = True
        st.session_state.pop("access_password", None)
        log.info("dashboard sign-in from %s", log_text(client))
        st.rerun()
    failures = THROTTLE.failed(client)
    log.warning("failed dashboard sign-in from %s (%d in the last %d min)", log_text(client), failures, WINDOW_S // 60)
    time.sleep(FAILURE_DELAY_S)  # slows a script; the per-address limit stops it
    wait = THROTTLE.locked_for(client)
    if wait > 0:
        log.warning("dashboard sign-in locked for %s for %s", log_text(client), _minutes(wait))
        st.error(f"Too many failed sign-ins from this address: try again in {_minutes(wait)}.")
    else:
        st.error("Wrong password.")


def _cannot_start(message: str) -> Callable[[], None]:
    def page() -> None:
        st.title("Cannot start here")
        st.error(markdown_text(message))

    return page


def _logged_in() -> bool:
    try:
        return bool(st.user.is_logged_in)
    except AttributeError:  # st.user has no login state until an identity provider answered
        return False


def _gate_kind() -> tuple[str, str | None]:
    if _secret_section("auth"):  # Streamlit's own OIDC section: an identity provider is set
        return "oidc", None
    access = _secret_section("access")
    if access and access.get("password_hash"):
        return "password", str(access["password_hash"])
    return "open", None


def _only(page: Callable[[], None], title: str, url_path: str) -> None:
    """Register `page` as the only page: without any st.navigation call Streamlit would fall back to running
    files from pages/ directly, bypassing this gate."""
    st.navigation([st.Page(page, title=title, url_path=url_path, default=True)], position="hidden").run()


def operator_identity() -> tuple[bool, str | None]:
    """(signed in, who): the identity provider's e-mail (or name) with OIDC; with the password gate the
    visitor is signed in but anonymous (they say who they are); with no sign-in configured, not signed in."""
    kind, _ = _gate_kind()
    if kind == "oidc" and _logged_in():
        return True, str(st.user.get("email") or st.user.get("name") or "") or None
    if kind == "password" and st.session_state.get("access_granted"):
        return True, None
    return False, None


def require_access() -> bool:
    """True when the visitor may see the pages; otherwise only a sign-in (or start-up error) page is navigable."""
    problem = launch_problem()
    if problem:
        _only(_cannot_start(problem), "Cannot start", "cannot-start")
        return False
    kind, stored_hash = _gate_kind()
    if kind == "open":
        return True
    if kind == "oidc" and _logged_in():
        with st.sidebar:
            who = st.user.get("email") or st.user.get("name") or "user"
            st.caption(f"Signed in as {markdown_text(who, 120)}")
            st.button("Sign out", on_click=st.logout)
        return True
    if kind == "password" and st.session_state.get("access_granted"):
        with st.sidebar:
            if st.button("Lock dashboard"):
                st.session_state["access_granted"] = False
                st.rerun()
        return True
    _only(_oidc_gate if kind == "oidc" else (lambda: _password_gate(stored_hash or "")), "Sign in", "sign-in")
    return False


def enter_through_dashboard() -> None:
    """Pages call this first. Until a process has run `st.navigation` once, Streamlit runs a requested
    pages/ file by itself (its old multipage mode), skipping dashboard.py and its sign-in; such a run is
    turned into a rerun, which goes through dashboard.py."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def main(argv: list[str] | None = None) -> int:
    """`python -m ui.auth`: print a password_hash line for .streamlit/secrets.toml."""
    import argparse

    argparse.ArgumentParser(
        prog="python -m ui.auth",
        description="Ask for the dashboard password twice and print the [access] section for .streamlit/secrets.toml.",
    ).parse_args(argv)
    try:
        password = getpass.getpass("Dashboard password: ")
        again = getpass.getpass("Again: ") if len(password) >= 8 else password
    except (EOFError, KeyboardInterrupt):
        print("\nerror: no password given (it is read from the terminal)", file=sys.stderr)
        return 2
    if len(password) < 8:
        print("error: use at least 8 characters", file=sys.stderr)
        return 2
    if again != password:
        print("error: the passwords differ", file=sys.stderr)
        return 2
    print(f'[access]\npassword_hash = "{hash_password(password)}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
