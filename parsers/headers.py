"""Decode raw header values: RFC 2047 words, 8-bit bytes, addresses, message ids and dates."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from email.header import decode_header
from email.utils import getaddresses, parsedate_to_datetime

from parsers.charsets import decode_bytes
from parsers.model import Address

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CRLF = re.compile(r"[\r\n\x00]+")
_MSGID = re.compile(r"<([^<>]*)>")
# An encoded word with a space inside its text is malformed but common (broken mailers);
# stdlib refuses it, so it is repaired before decoding.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?(.*?)\?=")


# Lone surrogates (UTF-7 and JSON's "\ud800" make them) cannot be stored as UTF-8 and show
# as nothing or garbage; bidirectional controls (embeddings, overrides, isolates and the
# marks) make a subject or a name display other than it reads ("Trojan Source").
_SURROGATES = re.compile("[\ud800-\udfff]")
_INVISIBLE = re.compile("[\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def strip_invisible(value: str, bidi: bool = True) -> str:
    """VALUE without lone surrogates and (with BIDI) bidirectional control characters."""
    if value.isascii():
        return value
    return (_INVISIBLE if bidi else _SURROGATES).sub("", value)


def clean(value: str) -> str:
    """Unfold a header value and remove any CR, LF or NUL left (safe for outgoing headers),
    and lone surrogates and bidirectional controls (safe to store and to show)."""
    value = strip_invisible(value)
    # Most values are one line: the substitutions would change nothing, and cost two regex calls.
    if "\n" not in value and "\r" not in value and "\x00" not in value:
        return value
    return _CRLF.sub(" ", _FOLD.sub("", value))


def _encoded_words(value: str) -> list[tuple[bytes | str, str | None]]:
    def _fix(m: re.Match[str]) -> str:
        return m.group(0).replace(" ", "_") if m.group(2) in "qQ" else m.group(0).replace(" ", "")

    try:
        return decode_header(_ENCODED_WORD.sub(_fix, value))
    except Exception:
        return [(value, None)]


def decode_value(raw: bytes | str, defects: list[str] | None = None, where: str = "header") -> str:
    """Decode one raw header value to clean text.

    `raw` is bytes, or text holding bytes as latin-1 (how mime.py carries raw values); text
    with characters beyond latin-1 is taken as already decoded. Folding line breaks are kept
    until RFC 2047 decoding, as the stdlib does, so whitespace between words comes out the same.
    """
    found: list[str] = []
    if isinstance(raw, str) and raw and max(raw) > "\xff":
        text = raw
    else:
        data = raw if isinstance(raw, bytes) else raw.encode("latin-1")
        text, found = decode_bytes(data, None, where) if not data.isascii() else (data.decode(), [])
    if "=?" in text:
        pieces: list[str] = []
        for chunk, charset in _encoded_words(text):
            if isinstance(chunk, str):
                pieces.append(chunk)
            elif charset is None:
                pieces.append(chunk.decode("raw-unicode-escape", "replace"))
            else:
                piece, more = decode_bytes(chunk, charset, where)
                found.extend(more)
                pieces.append(piece)
        text = "".join(pieces)
    if defects is not None:
        defects.extend(found)
    return clean(text).strip()


# An unquoted display name with specials before <addr>: "Team [Ops] <ops@x>", "A | B <a@x>".
_ODD_NAME = re.compile(r'(^|,)(\s*)([^,"<>]*[\[\]|][^,"<>]*?)(\s*<[^<>,]*>)')


def _quote_odd_names(value: str) -> str:
    """Quote display names that hold `[`, `]` or `|`: unquoted, the address parser reads
    `[...]` as a domain literal and yields bogus addresses such as "Ops"."""
    if "[" not in value and "|" not in value:
        return value
    return _ODD_NAME.sub(_quoted, value)


def _quoted(match: re.Match[str]) -> str:
    name = match.group(3).strip().replace("\\", "\\\\").replace('"', '\\"')
    return f'{match.group(1)}{match.group(2)}"{name}"{match.group(4)}'


def parse_addresses(raw: str | None, defects: list[str], where: str) -> list[Address]:
    """Mailboxes of an address header (raw value, bytes as latin-1); names RFC 2047-decoded."""
    if not raw:
        return []
    addresses, found = _parsed_addresses(raw, where)
    defects.extend(found)
    return list(addresses)


# Cached: the same few From/To/Cc values recur (a customer writes many times, and every
# request is to the same support address), and the email package's parser is slow.
@functools.lru_cache(maxsize=4096)
def _parsed_addresses(raw: str, where: str) -> tuple[tuple[Address, ...], tuple[str, ...]]:
    found: list[str] = []
    out: list[Address] = []
    try:
        pairs = getaddresses([_quote_odd_names(clean(raw))])
    except Exception:
        return (), (f"{where}: address list could not be parsed",)
    for name, addr in pairs:
        name = decode_value(name, found, where) if name else ""
        addr = decode_value(addr, found, where) if addr else ""
        if not (name or addr):
            continue
        out.append(Address(name=name or None, address=addr))
    return tuple(out), tuple(found)


def first_msgid(raw: str | None) -> str | None:
    """The first message id in a header value, without angle brackets."""
    if not raw:
        return None
    text = clean(raw).strip()
    m = _MSGID.search(text)
    value = m.group(1).strip() if m else (text.split()[0] if text.split() else "")
    return value or None


def msgid_list(raw: str | None) -> list[str]:
    """All message ids of a References-like value, in order, without angle brackets."""
    if not raw:
        return []
    text = clean(raw)
    # An id broken by whitespace is invalid (RFC 5322 msg-id has none); drop it, keep the rest.
    ids = [x.strip() for x in _MSGID.findall(text) if x.strip() and not any(c.isspace() for c in x)]
    return ids if ids else [x.strip("<>") for x in text.split() if x.strip("<>")]


def parse_date(raw: str | None, defects: list[str]) -> datetime | None:
    """An aware datetime from a Date value; naive (-0000) dates are taken as UTC."""
    if raw is None or not raw.strip():
        return None
    try:
        value = parsedate_to_datetime(clean(raw).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append(f"Date header unparseable: {clean(raw).strip()[:80]!r}")
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
