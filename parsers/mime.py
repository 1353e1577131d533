"""Flatten a raw message into headers and leaf parts: flanker first, stdlib `email` as fallback."""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import email.parser
import email.policy
import quopri
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from parsers import flanker_scan

_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Every byte outside the alphabet; bytes.translate deletes them far faster than a regex sub.
_B64_JUNK = bytes(b for b in range(256) if b not in _B64_ALPHABET)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# Header blocks are parsed as latin-1 text, not bytes: the bytes parser turns 8-bit values into
# surrogates that compat32 then replaces with U+FFFD before we can decode them properly.
_HEADER_PARSER = email.parser.HeaderParser(policy=email.policy.compat32)


@dataclass
class Leaf:
    """One non-multipart part, its payload already transfer-decoded."""

    index: int
    content_type: str
    charset: str | None
    filename: str | None
    disposition: str | None
    has_content_id: bool
    # Empty for the opaque types (OPAQUE_TYPES) when flanker parsed the message: only their
    # size is read, and decoding their base64 was the biggest single cost of a parse.
    payload: bytes
    # Length of the transfer-decoded payload.
    size: int
    # 0 for the message itself, 1+ inside attached message/rfc822 parts.
    depth: int
    # message/rfc822 container: payload is the enclosed message's raw bytes.
    container: bool = False
    # Index of the message/rfc822 leaf this part is enclosed in; 0 for the message itself.
    owner: int = 0


@dataclass
class Flattened:
    """Headers (raw values, bytes carried as latin-1 text) and leaves of one message."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/plain"
    params: dict[str, str] = field(default_factory=dict)
    leaves: list[Leaf] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    parser: str = "flanker"


# Parts whose bytes the parser never reads (not text, not a message): attachments.
OPAQUE_TYPES = ("application/", "image/", "audio/", "video/")


def _base64_letters(data: bytes) -> bytes:
    """The base64 alphabet letters of `data`, less a dangling last one (half a byte at most)."""
    clean = data.translate(None, _B64_JUNK)
    return clean[: len(clean) - 1] if len(clean) % 4 == 1 else clean


def transfer_decode(data: bytes, encoding: str | None, where: str, defects: list[str]) -> bytes:
    """Undo base64 / quoted-printable leniently; broken base64 is repaired, not rejected."""
    enc = (encoding or "").strip().lower()
    if enc == "base64":
        clean = _base64_letters(data)
        try:
            return base64.b64decode(clean + b"=" * (-len(clean) % 4))
        except (binascii.Error, ValueError):
            defects.append(f"{where}: broken base64 payload kept undecoded")
            return data
    if enc == "quoted-printable":
        return quopri.decodestring(data)
    return data


def decoded_size(data: bytes, encoding: str | None, where: str, defects: list[str]) -> int:
    """len(transfer_decode(data, ...)), without decoding base64."""
    if (encoding or "").strip().lower() == "base64":
        letters = len(_base64_letters(data))
        # Padded to whole groups, letters alone always decode (binascii.Error is never
        # raised): three bytes per four letters, one or two for a last group of two or three.
        return letters // 4 * 3 + (0, 0, 1, 2)[letters % 4]
    return len(transfer_decode(data, encoding, where, defects))


def _latin1(value: str) -> bytes:
    return value.encode("latin-1", "replace")


def _fix_name(name: str | None) -> str | None:
    """Filenames that arrived as raw UTF-8 bytes come out of the latin-1 view as mojibake."""
    if not name:
        return None
    if any("\x80" <= ch <= "\xff" for ch in name) and all(ch <= "\xff" for ch in name):
        with contextlib.suppress(UnicodeDecodeError):
            return _latin1(name).decode("utf-8")
    return name.replace("\r", "").replace("\n", "")


def _stdlib_filename(part_headers: bytes, where: str, defects: list[str]) -> str | None:
    """Filename as the stdlib reads it (RFC 2231 and RFC 2047, quirks included)."""
    from parsers.headers import decode_value

    # Both places a filename can come from, the "filename" and "name" parameters (RFC 2231
    # pieces included), spell "name"; most parts have neither, and parsing costs.
    if b"name" not in part_headers.lower():
        return None
    msg = _HEADER_PARSER.parsestr(part_headers.decode("latin-1"))
    try:
        name = msg.get_filename()
    except Exception:
        return None
    if not name:
        return None
    return decode_value(name, defects, where) or None


def _span(raw: bytes, start: int, end: int) -> bytes:
    """What flanker's Stream reads from `start` through `end` (a negative count reads all)."""
    return raw[start:] if end - start + 1 < 0 else raw[start:end + 1]


def _flanker_leaf(part: Any, raw_message: bytes, index: int, depth: int, flat: Flattened,
                  container: bool) -> Leaf:
    ctype = part.content_type
    content_type = f"{ctype.main}/{ctype.sub}".lower()
    where = f"body part {index}"
    container_obj = part._container  # flanker keeps the raw bytes only on its private container
    filename: str | None
    head_facts = None
    if hasattr(container_obj, "read_body"):
        head_facts = flanker_scan.part_head(container_obj.string, container_obj.start)
    if head_facts is not None:
        # The scanned string is raw_message read as latin-1: offsets are the same in both.
        start, end = container_obj.start, container_obj.end
        raw = _span(raw_message, head_facts.body_start, end)
        encoding = head_facts.encoding.value if head_facts.encoding is not None else "7bit"
        if not container and content_type.startswith(OPAQUE_TYPES):
            payload, size = b"", decoded_size(raw, encoding, where, flat.defects)
        else:
            payload = transfer_decode(raw, encoding, where, flat.defects)
            size = len(payload)
        if start <= head_facts.body_start <= end + 1:
            head = raw_message[start:head_facts.body_start]
        else:
            whole = _span(raw_message, start, end)
            head = whole[: len(whole) - len(raw)] if whole.endswith(raw) else whole[:65536]
        filename = _stdlib_filename(head, where, flat.defects)
        disposition = head_facts.disposition[0] if head_facts.disposition is not None else None
        has_content_id = head_facts.has_content_id
    else:
        # flanker's own header objects: what the fast path above avoids building.
        disposition = part.content_disposition[0]
        has_content_id = "Content-Id" in part.headers
        if hasattr(container_obj, "read_body"):
            raw = _latin1(container_obj.read_body())
            payload = transfer_decode(raw, part.content_encoding.value, where, flat.defects)
            whole = _latin1(container_obj.read_message())
            head = whole[: len(whole) - len(raw)] if whole.endswith(raw) else whole[:65536]
            filename = _stdlib_filename(head, where, flat.defects)
        else:
            body = part.body
            payload = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
            filename = _fix_name(part.detected_file_name)
        size = len(payload)
    charset = ctype.params.get("charset")
    return Leaf(
        index=index,
        content_type=content_type,
        charset=charset if isinstance(charset, str) else None,
        filename=filename,
        disposition=disposition.lower() if isinstance(disposition, str) else None,
        has_content_id=has_content_id,
        payload=payload,
        size=size,
        depth=depth,
        container=container,
    )


def _walk_flanker(part: Any, raw: bytes, depth: int, owner: int, flat: Flattened) -> None:
    ctype = part.content_type
    if ctype.is_multipart():
        for child in part.parts:
            _walk_flanker(child, raw, depth, owner, flat)
        return
    index = len(flat.leaves) + 1
    leaf = _flanker_leaf(part, raw, index, depth, flat, container=ctype.is_message_container())
    leaf.owner = owner
    flat.leaves.append(leaf)
    if leaf.container and part.enclosed is not None:
        _walk_flanker(part.enclosed, raw, depth + 1, index, flat)


def _with_flanker(raw: bytes) -> Flattened:
    # latin-1 maps every byte to one character, so flanker never guesses a charset for the
    # whole message and we can recover each part's exact bytes afterwards.
    root = flanker_scan.scan(raw.decode("latin-1"))
    flat = Flattened(parser="flanker")
    ctype = root.content_type
    flat.content_type = f"{ctype.main}/{ctype.sub}".lower()
    flat.params = {k.lower(): v for k, v in ctype.params.items() if isinstance(v, str)}
    _walk_flanker(root, raw, 0, 0, flat)
    return flat


def _surrogates_to_latin1(value: Any) -> str:
    text = str(value)
    with contextlib.suppress(UnicodeError):
        return text.encode("ascii", "surrogateescape").decode("latin-1")
    return text


def _stdlib_leaf(part: Message, index: int, depth: int, flat: Flattened, container: bool) -> Leaf:
    where = f"body part {index}"
    payload: bytes
    if container:
        inner = part.get_payload()
        try:
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                payload = inner[0].as_bytes()
            else:
                payload = b""
        except Exception:
            payload = b""
    elif part.get_content_type() == "message/partial":
        # The stdlib reads the fragment as a message; keep its bytes as they came.
        inner = part.get_payload()
        fragment = inner[0] if isinstance(inner, list) and inner else None
        payload = fragment.as_bytes() if isinstance(fragment, Message) else b""
    else:
        try:
            decoded = part.get_payload(decode=True)
            payload = decoded if isinstance(decoded, bytes) else b""
        except Exception:
            flat.defects.append(f"{where}: payload could not be decoded")
            payload = b""
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    if filename:
        from parsers.headers import decode_value

        filename = decode_value(_surrogates_to_latin1(filename), flat.defects, where)
    disposition = part.get_content_disposition()
    if part.get_content_type() == "message/partial":
        disposition = "attachment"
    return Leaf(
        index=index,
        content_type=part.get_content_type().lower(),
        charset=part.get_content_charset(),
        filename=filename or None,
        disposition=disposition,
        has_content_id=part.get("Content-ID") is not None,
        payload=payload,
        size=len(payload),
        depth=depth,
        container=container,
    )


def _walk_stdlib(part: Message, depth: int, owner: int, flat: Flattened) -> None:
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        children = part.get_payload()
        for child in children if isinstance(children, list) else []:
            if isinstance(child, Message):
                _walk_stdlib(child, depth, owner, flat)
        return
    index = len(flat.leaves) + 1
    container = part.get_content_type() in ("message/rfc822", "message/news")
    leaf = _stdlib_leaf(part, index, depth, flat, container=container)
    leaf.owner = owner
    if leaf.content_type.startswith("multipart/"):
        # Boundary never found: the stdlib keeps the body as one string; show it as text.
        leaf.content_type = "text/plain"
        flat.defects.append(f"body part {index}: multipart body without its boundary, kept as text")
    flat.leaves.append(leaf)
    inner = part.get_payload() if container else None
    if isinstance(inner, list):
        for child in inner:
            if isinstance(child, Message):
                _walk_stdlib(child, depth + 1, index, flat)


def _with_stdlib(raw: bytes) -> Flattened:
    flat = Flattened(parser="stdlib")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    flat.content_type = msg.get_content_type().lower()
    for key, value in msg.get_params() or []:
        if isinstance(value, str):
            flat.params[key.lower()] = value
    _walk_stdlib(msg, 0, 0, flat)
    for defect in msg.defects:
        flat.defects.append(f"MIME structure: {type(defect).__name__}")
    return flat


def top_headers(raw: bytes) -> list[tuple[str, str]]:
    """The message's own header fields, raw (folding kept, bytes carried as latin-1 text).

    The stdlib header parser splits fields exactly as imap_tools-style consumers expect and,
    unlike flanker's, keeps the folding that RFC 2047 whitespace rules depend on.
    """
    end = _HEADER_END.search(raw)
    block = raw[: end.end()] if end else raw
    msg = _HEADER_PARSER.parsestr(block.decode("latin-1"))
    return [(str(k), str(v)) for k, v in msg.raw_items()]


_BOUNDARY_PARAM = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))',
                             re.IGNORECASE)
# Types flanker's parser does not know: a digest's parts default to message/rfc822, and a
# fragment of a message/partial is no whole message.
# Found by their "/" (a literal the regex engine skips to in C; the case-insensitive
# alternation was tried at every byte, 0.27 ms per bench mail), the type checked before it.
_STDLIB_SUBTYPE = re.compile(rb"/(?i:digest|partial)")
_STDLIB_SCAN_BYTES = 1_000_000


def _has_stdlib_type(raw: bytes) -> bool:
    """Whether RAW names multipart/digest or message/partial (any case) in its first MB."""
    for found in _STDLIB_SUBTYPE.finditer(raw, 0, _STDLIB_SCAN_BYTES):
        before = raw[max(0, found.start() - 9):found.start()].lower()
        if before.endswith(b"multipart" if found.group().lower() == b"/digest" else b"message"):
            return True
    return False


# A line that begins with "--" and ends in a blank: what _tidy_boundaries mends. Found by
# its literal start in C, so the usual message (no such line) costs one fast pass.
_DASH_LINE_WITH_TRAILING_BLANK = re.compile(rb"\n--[^\r\n]*[ \t]\r?(?=\n|\Z)")


def _tidy_boundaries(raw: bytes) -> bytes:
    """RAW with trailing white space removed from its boundary lines (RFC 2046 allows it,
    flanker does not recognise such a line). Only those lines change."""
    if _DASH_LINE_WITH_TRAILING_BLANK.search(raw) is None:
        return raw
    for match in _BOUNDARY_PARAM.finditer(raw[:1_000_000]):
        boundary = match.group(1) or match.group(2)
        line = re.compile(rb"^(--" + re.escape(boundary) + rb"(?:--)?)[ \t]+(?=\r?$)",
                          re.MULTILINE)
        raw = line.sub(rb"\1", raw)
    return raw


def flatten(raw: bytes) -> Flattened:
    """Headers and leaves of `raw`; never raises (an empty result carries a defect)."""
    raw = _tidy_boundaries(raw)
    try:
        if _has_stdlib_type(raw):
            flat = _with_stdlib(raw)
            flat.defects += _partial_notes(flat)
            return _with_headers(flat, raw)
        flat = _with_flanker(raw)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:160]
        try:
            flat = _with_stdlib(raw)
        except Exception as exc2:
            flat = Flattened(parser="none")
            flat.defects.append(f"message could not be parsed: {type(exc2).__name__}: {exc2}"[:200])
        else:
            flat.defects.insert(
                0, f"flanker could not parse the message ({reason}); used the stdlib parser")
    return _with_headers(flat, raw)


def _partial_notes(flat: Flattened) -> list[str]:
    return [f"body part {leaf.index}: a message/partial fragment, kept as an attachment (its "
            "other fragments arrive as separate messages)"
            for leaf in flat.leaves if leaf.content_type == "message/partial"]


def _with_headers(flat: Flattened, raw: bytes) -> Flattened:
    try:
        flat.headers = top_headers(raw)
    except Exception as exc:
        flat.defects.append(f"header block could not be read: {type(exc).__name__}: {exc}"[:200])
    return flat
