"""The vocabulary every layer shares: environments and their aliases, the key-naming rule, fingerprint, mask.

A leaf: it imports nothing of the product, so collectors, the store, analytics, the service and the pages
can all speak it.
"""

from __future__ import annotations

import hashlib
import re

ENVIRONMENTS = ("prod", "staging", "dev")
ENVIRONMENT_ALIASES = {
    "prod": "prod",
    "production": "prod",
    "prd": "prod",
    "staging": "staging",
    "stg": "staging",
    "stage": "staging",
    "dev": "dev",
    "development": "dev",
    "local": "dev",
    "sandbox": "dev",
}
# `<service>-<env>` or the vendor's `<env>-<purpose>`: lower-case words joined by hyphens.
NAME_SHAPE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$")
_TOKEN_SPLIT = re.compile(r"[-_.\s]+")


def normalize_environment(value: str) -> str | None:
    """prod, staging or dev for a name or alias (`production`, `stg`, `sandbox`, …); None when unknown."""
    return ENVIRONMENT_ALIASES.get(value.strip().lower())


def name_tokens(name: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(name.strip().lower()) if t]


def environment_from_name(name: str) -> str | None:
    """The environment a key's name claims (`api-gateway-prod`, `prod-main`), or None."""
    for token in reversed(name_tokens(name)):
        if token in ENVIRONMENT_ALIASES:
            return ENVIRONMENT_ALIASES[token]
    return None


def is_well_formed_name(name: str) -> bool:
    """Lower-case, hyphen-separated `<service>-<env>` or the vendor's environment-first `<env>-<purpose>`."""
    if not NAME_SHAPE.match(name):
        return False
    tokens = name.split("-")
    return tokens[-1] in ENVIRONMENT_ALIASES or tokens[0] in ENVIRONMENT_ALIASES


def is_generic_name(name: str, generic_words: tuple[str, ...]) -> bool:
    """True when the name's words, environment and numbers aside, are all generic (test1, key-new, temp)."""
    words = [t.rstrip("0123456789") for t in name_tokens(name) if t not in ENVIRONMENT_ALIASES]
    words = [w for w in words if w]
    return bool(words) and all(w in generic_words for w in words)


def fingerprint(secret: str) -> str:
    """Stable, non-reversible identity of a secret (matches the vendor inventory's key_fingerprint)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]


def mask_secret(secret: str) -> str:
    """The form pages and exports may show: the secret's prefix and last four characters (`rbv_…9f2c`)."""
    prefix = secret.split("_", 1)[0] + "_" if "_" in secret[:8] else ""
    return f"{prefix}…{secret[-4:]}" if len(secret) >= 8 else "…"
