"""The files that came with a message or a multipart web form, with their bytes, in order."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

# The body of a message is text without a filename; everything else a person attached.
_BODY_TYPES = ("text/plain", "text/html")


@dataclass(frozen=True)
class AttachedFile:
    """One attachment: its position (1-based, stable for the same bytes) and content."""

    position: int
    filename: str | None
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _is_body(part: Message, filename: str | None) -> bool:
    disposition = (part.get_content_disposition() or "inline").lower()
    return (filename is None and disposition == "inline"
            and part.get_content_type() in _BODY_TYPES)


def _collect(part: Message, out: list[AttachedFile]) -> None:
    content_type = part.get_content_type()
    filename = _filename(part)
    if content_type == "message/rfc822":
        # A forwarded message is one file, as the customer attached it.
        inner = part.get_payload()
        data = b""
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            data = inner[0].as_bytes()
        out.append(AttachedFile(len(out) + 1, filename, content_type, data))
        return
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                _collect(sub, out)
        return
    if _is_body(part, filename):
        return
    if part.get_content_disposition() == "form-data" and filename is None:
        return  # a form's text field, not a file
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    out.append(AttachedFile(len(out) + 1, filename, content_type, data))


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    if not name:
        return None
    return str(name).replace("\r", "").replace("\n", "")


def email_attachments(raw: bytes) -> list[AttachedFile]:
    """The attachments of a raw RFC 5322 message; never raises (unreadable: none)."""
    try:
        out: list[AttachedFile] = []
        _collect(_parse(raw), out)
        return out
    except Exception:
        return []


def _as_message(content_type: str, body: bytes) -> bytes:
    """A multipart/form-data body as a MIME message (its parts are MIME parts already)."""
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n"
    return header.encode("latin-1", "replace") + body


def form_attachments(content_type: str, body: bytes) -> list[AttachedFile]:
    """The files of a multipart/form-data body (fields without a filename are not files)."""
    if not content_type.lower().startswith("multipart/"):
        return []
    return email_attachments(_as_message(content_type, body))


class FormError(ValueError):
    """A multipart/form-data body that cannot be read."""


def form_fields(content_type: str, body: bytes) -> tuple[dict[str, str], int]:
    """The text fields of a multipart/form-data body (UTF-8) and how many files it has."""
    message = _parse(_as_message(content_type, body))
    if not message.is_multipart() or not message.get_param("boundary"):
        raise FormError("multipart body without a boundary")
    fields: dict[str, str] = {}
    files = 0
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_content_disposition() != "form-data" or not isinstance(name, str):
            raise FormError("a part without Content-Disposition: form-data; name=...")
        if _filename(part) is not None:
            files += 1
            continue
        payload = part.get_payload(decode=True)
        try:
            fields[name] = (payload if isinstance(payload, bytes) else b"").decode("utf-8")
        except UnicodeDecodeError:
            raise FormError(f"field {name}: not UTF-8") from None
    if message.defects:
        raise FormError(f"malformed multipart body: {message.defects[0].__class__.__name__}")
    return fields, files
