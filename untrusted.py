"""Text and URLs that came from outside (config, upstream API, uploads, the page), made safe for where they go.

One rule per destination, shared by every layer (this module imports nothing of the product's):
- `markdown_text`: shown literally wherever Markdown is rendered (Streamlit elements and labels, the
  Markdown review export); never a link, image, HTML, emphasis, directive, icon or formula.
- `log_text`: one log line; control characters are written as escapes, so no line can be forged.
- `check_url`: an http(s) URL without credentials, spaces or link-local/metadata hosts; the message of
  the error it raises never contains the URL (webhook URLs are secrets).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that can open an inline
# construct mid-line: emphasis/strikethrough, code, links and images, raw HTML, entities, math, tables.
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>!|~$#&")
# The renderer also rewrites plain *text* after parsing (GFM autolink literals: `http://`, `www.`, e-mail;
# Streamlit's `:material/…:` icons and `:emoji:` shortcodes), where a backslash no longer exists. An
# invisible WORD JOINER breaks each trigger without changing what is shown.
WORD_JOINER = "\u2060"
_COLON_TRIGGER = re.compile(r":(?=[^\s\d])|(?<!\d):(?=\d)")
_WWW_DOT = re.compile(r"(?i)(?<=www)\.")
_LINE_START = re.compile(r"^(?:([-+=])|(\d+)([.)]))")


def one_line(value: object) -> str:
    """Every control, format or separator character becomes a space; runs of spaces collapse."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in str(value)).split())


def markdown_text(value: object, limit: int | None = None, *, block_start: bool = True) -> str:
    """`value` as Markdown source that renders as exactly its text, on one line, cut to `limit` characters.

    `block_start=False` where the text cannot open a block (a table cell, mid-sentence): a leading `-`,
    `+` or `1.` is then left as it is, which keeps numbers like -3 readable in a raw Markdown file.
    """
    text = one_line(value)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    escaped = "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)
    escaped = _COLON_TRIGGER.sub(":" + WORD_JOINER, escaped)
    escaped = _WWW_DOT.sub(WORD_JOINER + ".", escaped).replace("@", WORD_JOINER + "@")
    if not block_start:
        return escaped
    # Line-start syntax (list items, setext headings, ordered lists) can act when the text opens a block.
    return _LINE_START.sub(lambda m: "\\" + m[1] if m[1] else m[2] + "\\" + m[3], escaped, count=1)


def log_text(value: object, limit: int = 2000) -> str:
    """`value` for one log line: control and separator characters written as escapes (`\\n`, `\\x1b`)."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


# ---------------------------------------------------------------------------------------------- URLs

MAX_URL_LENGTH = 2048
# Cloud instance-metadata endpoints outside 169.254.0.0/16 (AWS IPv6, Alibaba, Azure's wire server),
# and the names they answer to.
_METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200", "168.63.129.16"))
_METADATA_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)


class UnsafeURL(ValueError):
    """A URL that must not be used; the message says why and never contains the URL."""


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP a host names literally, in every spelling the resolver accepts (`2852039166`, `0xa9.0xfe.…`)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[0-9a-fA-FxX.]+", host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_url(url: object, *, allow_link_local: bool = False) -> str:
    """The URL itself when it is safe to call; otherwise UnsafeURL saying what is wrong (not echoing it).

    Loopback is allowed (the stand-in and tests run there); link-local and cloud metadata addresses are
    refused unless `allow_link_local`. Host names are judged as written, not resolved.
    """
    if not isinstance(url, str) or not url:
        raise UnsafeURL("is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"is longer than {MAX_URL_LENGTH:,} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise UnsafeURL("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise UnsafeURL("is not a well-formed URL (check the host and port)") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeURL("is not an http(s) URL")
    if "@" in parts.netloc:
        raise UnsafeURL("must not contain a user name or password")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURL("has no host")
    if not port_ok:
        raise UnsafeURL("has an invalid port")
    address = _address(host)
    if address is not None and (address.is_unspecified or address.is_multicast):
        raise UnsafeURL("points at an address no server answers on")
    metadata = host.lower() in _METADATA_NAMES or (
        address is not None and (address.is_link_local or address in _METADATA_ADDRESSES)
    )
    if metadata and not allow_link_local:
        raise UnsafeURL("points at a link-local or cloud metadata address (set allow_link_local = true to allow it)")
    return url


def http_link(url: object) -> str | None:
    """`url` when it may be shown as a clickable link (an http(s) URL), else None."""
    try:
        return check_url(url, allow_link_local=True)
    except UnsafeURL:
        return None
