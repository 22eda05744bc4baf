"""Access control: OIDC sign-in via st.login when configured, else a password gate, else open on localhost.

Configure in `.streamlit/secrets.toml`:
  [auth] ... (Streamlit's OIDC settings: redirect_uri, cookie_secret, client_id, client_secret,
             server_metadata_url) → every page requires st.login
  [access] password_hash = "pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"
             → every page requires the password (make a hash with `python -m ui.auth`)
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
import sys
import time
from typing import Any

import streamlit as st

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 300_000


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


def _password_gate(stored_hash: str) -> None:
    st.title("Password required")
    with st.form("access_form"):
        password = st.text_input("Dashboard password", type="password", key="access_password")
        submitted = st.form_submit_button("Unlock", type="primary")
    if submitted:
        if verify_password(password, stored_hash):
            st.session_state["access_granted"] = True
            st.session_state.pop("access_password", None)
            st.rerun()
        failures = st.session_state.get("access_failures", 0) + 1
        st.session_state["access_failures"] = failures
        time.sleep(min(0.2 * failures, 2.0))  # slows guessing without locking the operator out
        st.error("Wrong password.")


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


def require_access() -> bool:
    """True when the visitor may see the pages; otherwise only the sign-in page is navigable.

    The gate is itself the only page given to st.navigation: without any st.navigation call
    Streamlit would fall back to running files from pages/ directly, bypassing the gate.
    """
    kind, stored_hash = _gate_kind()
    if kind == "open":
        return True
    if kind == "oidc" and _logged_in():
        with st.sidebar:
            st.caption(f"Signed in as {st.user.get('email') or st.user.get('name') or 'user'}")
            st.button("Sign out", on_click=st.logout)
        return True
    if kind == "password" and st.session_state.get("access_granted"):
        with st.sidebar:
            if st.button("Lock dashboard"):
                st.session_state["access_granted"] = False
                st.rerun()
        return True
    gate = _oidc_gate if kind == "oidc" else (lambda: _password_gate(stored_hash or ""))
    st.navigation([st.Page(gate, title="Sign in", url_path="sign-in", default=True)], position="hidden").run()
    return False


def main() -> int:
    """`python -m ui.auth`: print a password_hash line for .streamlit/secrets.toml."""
    password = getpass.getpass("Dashboard password: ")
    if len(password) < 8:
        print("error: use at least 8 characters", file=sys.stderr)
        return 2
    if getpass.getpass("Again: ") != password:
        print("error: the passwords differ", file=sys.stderr)
        return 2
    print(f'[access]\npassword_hash = "{hash_password(password)}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
