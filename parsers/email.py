"""Parse one raw e-mail message (bytes) into a Request; never raises, problems become defects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from parsers.bounces import analyse
from parsers.charsets import decode_bytes
from parsers.headers import (
    clean,
    decode_value,
    first_msgid,
    msgid_list,
    parse_addresses,
    parse_date,
    strip_invisible,
)
from parsers.html import enriched_to_text, html_to_text
from parsers.kind import MailFacts, classify_kind
from parsers.mime import OPAQUE_TYPES, Flattened, Leaf, flatten
from parsers.model import Attachment, Request
from parsers.priority import declared_priority
from parsers.quotes import strip_reply

# Beyond this a message is not a support request any more; the text is cut to keep
# downstream regexes (quotes, rules) fast and memory bounded.
MAX_TEXT_CHARS = 1_000_000

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# C0 controls other than tab, newline and form feed; DEL and the C1 controls.
_CONTROL_CHAR = re.compile(r"[\x00-\x08\x0b\x0d-\x1f\x7f-\x9f]")
# The returned message's Message-ID line inside a DSN's attached message or headers part,
# or inside the text of a plain-text bounce that quotes the original headers.
_MESSAGE_ID_LINE = re.compile(r"^[ \t>]*Message-ID:[ \t]*(<[^>\r\n]{1,990}>)",
                              re.IGNORECASE | re.MULTILINE)
_ENRICHED = ("text/enriched", "text/richtext")
_RETURNED_PARTS = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")


def _decoded_headers(flat: Flattened, defects: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in flat.headers:
        key = clean(name).strip().lower()
        if not key:
            continue
        out.setdefault(key, []).append(decode_value(value, defects, f"header {key}"))
    return out


def _raw_first(flat: Flattened, name: str) -> str | None:
    for key, value in flat.headers:
        if key.lower() == name:
            return value
    return None


def _raw_all(flat: Flattened, name: str) -> str:
    """All raw values of a header joined as one address list (some mailers repeat To/Cc)."""
    return ",".join(value for key, value in flat.headers if key.lower() == name)


def _is_inline_text(leaf: Leaf) -> bool:
    return (not leaf.container and not leaf.filename and leaf.disposition != "attachment"
            and leaf.content_type.startswith("text/"))


def _leaf_text(leaf: Leaf, defects: list[str]) -> str:
    text, found = decode_bytes(leaf.payload, leaf.charset, f"body part {leaf.index}")
    defects.extend(found)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return enriched_to_text(text) if leaf.content_type in _ENRICHED else text


def _body_of(leaves: list[Leaf], defects: list[str]) -> tuple[str, set[int]]:
    """The visible body among one message's own leaves, and the indexes it came from."""
    inline = [x for x in leaves if _is_inline_text(x)]
    plain = [x for x in inline if x.content_type in ("text/plain", "text/")]
    html = [x for x in inline if x.content_type == "text/html"]
    plain_texts = [_leaf_text(x, defects) for x in plain]
    if any(t.strip() for t in plain_texts):
        return "\n".join(plain_texts), {x.index for x in plain}
    if html:
        rendered = [html_to_text(_leaf_text(x, defects)) for x in html]
        return "\n\n".join(r for r in rendered if r), {x.index for x in html}
    others = [x for x in inline if x.content_type != "text/rfc822-headers"]
    if others:
        return "\n".join(_leaf_text(x, defects) for x in others), {x.index for x in others}
    return "", set()


def _choose_text(leaves: list[Leaf], defects: list[str]) -> tuple[str, str, set[int]]:
    """(own body, body with attached messages' bodies appended, indexes of parts used).

    Messages forwarded as attachments are part of what the customer sent, so their bodies
    follow the message's own text; reply stripping only looks at the own body.
    """
    owners: dict[int, list[Leaf]] = {}
    for leaf in leaves:
        owners.setdefault(leaf.owner, []).append(leaf)
    own, used = _body_of(owners.pop(0, []), defects)
    texts = [own]
    for owner in sorted(owners):
        text, more = _body_of(owners[owner], defects)
        used |= more
        if text.strip():
            texts.append(text)
    return own, "\n\n".join(t for t in texts if t), used


def _attachments(leaves: list[Leaf], used: set[int]) -> list[Attachment]:
    out: list[Attachment] = []
    for leaf in leaves:
        if leaf.index in used:
            continue
        # Unnamed binary leaves count too: an agent must see that a file came with the mail.
        binary = leaf.content_type.startswith(OPAQUE_TYPES)
        if (leaf.container or leaf.filename or leaf.has_content_id or binary
                or leaf.disposition == "attachment"):
            out.append(Attachment(filename=leaf.filename, content_type=leaf.content_type,
                                  size=leaf.size))
    return out


def _looks_binary(text: str) -> bool:
    """Control characters (other than tab/newline) in over 10% of a sample: not prose."""
    sample = text[:4000]
    # Controls are unprintable: text printable but for tabs, newlines and form feeds has none,
    # and isprintable is far cheaper than the regex.
    allowed_removed = sample.replace("\n", "").replace("\t", "").replace("\x0c", "")
    controls = 0 if allowed_removed.isprintable() else len(_CONTROL_CHAR.findall(sample))
    return len(sample) >= 16 and controls * 10 > len(sample)


def _original_message_id(flat: Flattened, text: str) -> str | None:
    """Which message a bounce reports on: the Message-ID of the returned message or headers."""
    for leaf in flat.leaves:
        if leaf.container or leaf.content_type in _RETURNED_PARTS:
            head = leaf.payload[:65536].decode("latin-1")
            if match := _MESSAGE_ID_LINE.search(head):
                return first_msgid(match.group(1))
    match = _MESSAGE_ID_LINE.search(text[:200_000])
    return first_msgid(match.group(1)) if match else None


def _input_defects(raw: bytes, flat: Flattened) -> list[str]:
    found: list[str] = []
    if not raw:
        found.append("empty input: 0 bytes")
    elif raw.startswith(_OLE2_MAGIC):
        found.append("input is an OLE2 compound file (Outlook .msg?), not a MIME message")
    if b"\x00" in raw[:1_000_000]:
        found.append("input contains NUL bytes")
    if raw and not flat.headers:
        found.append("no header fields found")
    return found


def _fill(req: Request, raw: bytes) -> None:
    flat = flatten(raw)
    defects = req.defects
    defects.extend(flat.defects)
    defects.extend(_input_defects(raw, flat))
    req.headers = _decoded_headers(flat, defects)
    senders = parse_addresses(_raw_first(flat, "from"), defects, "From")
    req.sender = senders[0] if senders else None
    req.to = parse_addresses(_raw_all(flat, "to"), defects, "To")
    req.cc = parse_addresses(_raw_all(flat, "cc"), defects, "Cc")
    subject = req.header("subject")
    req.subject = subject if subject is not None else None
    req.message_id = first_msgid(req.header("message-id"))
    req.in_reply_to = first_msgid(req.header("in-reply-to"))
    req.references = msgid_list(" ".join(req.headers.get("references", [])))
    req.date = parse_date(req.header("date"), defects)
    own, text, used = _choose_text(flat.leaves, defects)
    if raw.startswith(_OLE2_MAGIC) or _looks_binary(text):
        if text:
            defects.append("body is binary data, not text; text omitted")
        own = text = ""
    # Lone surrogates (a UTF-7 body can make them) cannot be stored; bidi marks in a body
    # are ordinary right-to-left writing and stay.
    text, own = strip_invisible(text, bidi=False), strip_invisible(own, bidi=False)
    if len(text) > MAX_TEXT_CHARS:
        defects.append(f"body text truncated to {MAX_TEXT_CHARS} characters")
        text = text[:MAX_TEXT_CHARS]
    req.text = text
    req.attachments = _attachments(flat.leaves, used)
    req.reply_text = strip_reply(own[:MAX_TEXT_CHARS])
    facts = MailFacts(
        headers=req.headers,
        content_type=flat.content_type,
        params=flat.params,
        sender=req.sender.address if req.sender else None,
        subject=req.subject or "",
        text=text,
        parts=[(leaf.content_type, leaf.payload) for leaf in flat.leaves],
    )
    req.kind, req.failed_recipients = classify_kind(facts)
    if req.kind == "bounce":
        found = analyse(facts.parts, req.headers.get("x-failed-recipients", []), text, raw)
        req.failed_recipients, req.bounce_permanent = found.failed, found.permanent
        req.delivered_to = found.delivered
    if req.kind in ("bounce", "feedback_report"):
        req.original_message_id = _original_message_id(flat, text)
    req.declared_priority = declared_priority(req.headers, req.subject)


def parse_email(raw: bytes) -> Request:
    """Parse a raw RFC 5322 message into a Request (channel "email"); never raises."""
    req = Request(channel="email")
    try:
        _fill(req, bytes(raw))
    except Exception as exc:
        req.defects.append(f"parser error: {type(exc).__name__}: {exc}"[:300])
    return req


def parse_file_json(path: str | Path) -> dict[str, Any]:
    """Read a message file and return `parse_email(...).as_json()` (the `parse --json` shape)."""
    return parse_email(Path(path).read_bytes()).as_json()
