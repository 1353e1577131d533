"""A browser's form as the portal reads it, and the web request it becomes (the same
multipart form POST /api/v1/requests takes, with the customer from the session)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs, quote


class FormRefused(ValueError):
    """The form cannot be read (not multipart, malformed, not UTF-8)."""


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)


def url_encoded(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body: the first value of each field."""
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as error:
        raise FormRefused(f"unreadable form: {error}") from None
    return {k: v[0] for k, v in parsed.items()}


def multipart(content_type: str, body: bytes) -> Form:
    """A multipart/form-data body: text fields and files (an empty file input is none)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise FormRefused("expected multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise FormRefused("malformed multipart body")
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise FormRefused("a part without a field name")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            if filename or data:
                form.files.append(Upload(filename or "attachment", part.get_content_type(),
                                         data))
            continue
        try:
            form.fields[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise FormRefused(f"field {name}: not UTF-8") from None
    return form


def web_request(fields: dict[str, str], files: list[Upload]) -> tuple[str, bytes]:
    """FIELDS and FILES as one multipart/form-data body for the web intake; its
    Content-Type and bytes."""
    boundary = f"portal-{secrets.token_hex(16)}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
                     f"Content-Type: text/plain; charset=utf-8\r\n\r\n".encode()
                     + value.encode("utf-8") + b"\r\n")
    for upload in files:
        # RFC 2231 encoding keeps any name (quotes, non-ASCII) intact and in one line.
        name = quote(upload.filename, safe="")
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                     f"filename*=utf-8''{name}\r\nContent-Type: {upload.content_type}\r\n"
                     "\r\n".encode() + upload.data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)
