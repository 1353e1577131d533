"""Call events: the provider-neutral event, the Request it becomes, and field readers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from parsers.attachments import FormError, form_fields
from parsers.headers import strip_invisible
from parsers.model import PRIORITIES, Channel, Request
from parsers.phones import to_e164

# What happened, whatever the provider calls it:
# ticket   - an operator's or a web form's request: register it;
# ringing  - a call started; nothing to register yet;
# answered - a call was answered (or ended after an answer): log it on an open ticket;
# missed   - an inbound call nobody answered: register "call back";
# note     - text about a call (a transcription): register, or add to the call's ticket.
EventKind = Literal["ticket", "ringing", "answered", "missed", "note"]
PROVIDERS = ("generic", "zammad-cti", "zadarma", "twilio", "mapped", "megafon", "mango", "sipuni")
_EMAIL = re.compile(r"[^\s@<>,;\"()\\]+@[^\s@<>,;\"()\\]+\.[^\s@<>,;\"()\\]+")
MAX_TEXT = 100_000


class PayloadError(ValueError):
    """The payload cannot be used; FIELD names what is wrong (HTTP answers 422 with it)."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True)
class CallEvent:
    """One event of one call (or one web request), provider-neutral."""

    provider: str
    hook: str
    channel: Channel
    kind: EventKind
    call_id: str | None
    # The provider's own name of the event, part of the idempotency key.
    event_name: str = "request"
    direction: Literal["in", "out"] | None = "in"
    caller: str | None = None
    called: str | None = None
    customer: str | None = None
    contact_email: str | None = None
    contact_name: str | None = None
    agent: str | None = None
    subject: str | None = None
    description: str = ""
    declared_priority: str | None = None
    started_at: datetime | None = None
    duration_s: int | None = None
    # What the provider's signature covers, where it leaves the call id out (Zadarma): the
    # event's identity, so a replay with a new call id is the same event.
    signed_identity: str | None = None

    def key(self) -> str | None:
        """Same event of the same call -> same key; a web request without an id has none."""
        if self.signed_identity is not None:
            return f"{self.hook}:signed:{self.signed_identity}"
        if self.call_id is None:
            return None
        if self.kind == "ticket" and self.provider in ("generic", "web"):
            return f"{self.hook}:{self.call_id}"
        return f"{self.hook}:{self.call_id}:{self.event_name}"


@dataclass
class CallRequest(Request):
    """A Request that came by phone or web, with what we know of the call."""

    provider: str = ""
    hook: str = ""
    call_id: str | None = None
    event: EventKind = "ticket"
    direction: str | None = None
    customer_hint: str | None = None
    agent: str | None = None
    duration_s: int | None = None


# ---- reading bodies -------------------------------------------------------------------------

def read_body(content_type: str, body: bytes) -> dict[str, Any]:
    """A JSON object or a form as a dict; PayloadError("body", ...) otherwise. A
    multipart/form-data body gives its text fields (its files are read from the stored body
    when asked for: `parsers.attachments.form_attachments`)."""
    if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
        try:
            return form_fields(content_type, body)[0]
        except FormError as error:
            raise PayloadError("body", str(error)) from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("body", "not UTF-8") from None
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                                  max_num_fields=1000))
        except ValueError as error:
            raise PayloadError("body", f"malformed form: {error}") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise PayloadError("body", f"malformed JSON: {error}") from None
    except RecursionError:
        raise PayloadError("body", "JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise PayloadError("body", "expected a JSON object")
    return data


def _text(data: dict[str, Any], name: str, *, required: bool = False,
          limit: int = 1000, bidi: bool = True) -> str | None:
    """Field NAME as text; lone surrogates (and, with BIDI, bidirectional controls) removed:
    JSON may carry them, no database stores the first, and the second misleads readers."""
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise PayloadError(name, "field required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(name, "expected a string")
    text = strip_invisible(str(value), bidi).strip()
    if len(text) > limit:
        raise PayloadError(name, f"longer than {limit} characters")
    if "\x00" in text:
        raise PayloadError(name, "contains NUL")
    if required and not text:
        raise PayloadError(name, "field required")
    return text or None


def _email(data: dict[str, Any], name: str) -> str | None:
    value = _text(data, name, limit=254)
    if value is not None and not _EMAIL.fullmatch(value):
        raise PayloadError(name, "not an e-mail address")
    return value.lower() if value else None


def _priority(data: dict[str, Any], name: str = "declared_priority") -> str | None:
    value = _text(data, name, limit=20)
    if value is not None and value.lower() not in PRIORITIES:
        raise PayloadError(name, f"expected one of {', '.join(PRIORITIES)}")
    return value.lower() if value else None


def _instant(data: dict[str, Any], name: str) -> datetime | None:
    value = _text(data, name, limit=40)
    if value is None:
        return None
    try:
        if re.fullmatch(r"\d{9,11}", value):
            return datetime.fromtimestamp(int(value), UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise PayloadError(name, "expected an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _seconds(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value.strip()):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**9:
        raise PayloadError(name, "expected a whole number of seconds")
    return value


def _phone(data: dict[str, Any], name: str) -> str | None:
    value = _text(data, name, limit=64)
    if value is not None and to_e164(value) is None:
        raise PayloadError(name, "not a phone number")
    return value
