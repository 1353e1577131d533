"""What makes two e-mails the same input: the Message-ID, and a fingerprint of the content."""

from __future__ import annotations

import hashlib
import re

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(?:\r?\n[ \t]+)?<?([^\s<>]{1,900})>?",
                         re.IGNORECASE | re.MULTILINE)
_FOLD = re.compile(rb"\r?\n[ \t]+")
_SPACE = re.compile(rb"\s+")
# The fields an author's message keeps on every path to us; trace fields (Received,
# Return-Path, Delivered-To, X-...) and signatures are added on the way and differ between
# two deliveries of the same message, so they are not part of its identity.
_AUTHORED = frozenset({b"from", b"sender", b"to", b"cc", b"subject", b"date", b"message-id",
                       b"in-reply-to", b"references", b"content-type"})


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID in the header block of RAW, found without parsing the whole message.

    An internationalised (RFC 6532) id is kept as its UTF-8 text, which is one-to-one; bytes
    that are not UTF-8, or control characters, become a digest of the bytes (decoding them
    with replacement made ids of equal byte length collide)."""
    head = _HEADER_END.split(raw[:65536], maxsplit=1)[0]
    match = _MESSAGE_ID.search(head)
    if match is None:
        return None
    value = match.group(1)
    if value.isascii() and all(32 < byte < 127 for byte in value):
        return value.decode("ascii")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and text.isprintable():
        return text
    return "bytes-sha256:" + hashlib.sha256(value).hexdigest()


def content_fingerprint(raw: bytes) -> str:
    """A digest of what the author wrote: the authored header fields (unfolded, blanks
    collapsed) and the body (line ends as LF, trailing blank lines dropped). Two deliveries
    of one message agree; a different message that reuses a Message-ID does not."""
    match = _HEADER_END.search(raw)
    head, body = (raw[:match.start()], raw[match.end():]) if match else (raw, b"")
    digest = hashlib.sha256()
    for line in _FOLD.sub(b" ", head).split(b"\n"):
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        if colon and name in _AUTHORED:
            digest.update(name + b":" + _SPACE.sub(b" ", value).strip() + b"\n")
    digest.update(b"\n")
    digest.update(body.replace(b"\r\n", b"\n").rstrip(b"\r\n \t"))
    return digest.hexdigest()
