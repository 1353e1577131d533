"""Call-centre, PBX and web-form payloads -> one call event -> the normalised Request."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from parsers.attachments import FormError, form_fields
from parsers.headers import strip_invisible
from parsers.model import PRIORITIES, Address, Channel, Request
from parsers.phones import to_e164

# What happened, whatever the provider calls it:
# ticket   - an operator's or a web form's request: register it;
# ringing  - a call started; nothing to register yet;
# answered - a call was answered (or ended after an answer): log it on an open ticket;
# missed   - an inbound call nobody answered: register "call back";
# note     - text about a call (a transcription): register, or add to the call's ticket.
EventKind = Literal["ticket", "ringing", "answered", "missed", "note"]
PROVIDERS = ("generic", "zammad-cti", "zadarma", "twilio", "mapped")
_EMAIL = re.compile(r"[^\s@<>,;\"()\\]+@[^\s@<>,;\"()\\]+\.[^\s@<>,;\"()\\]+")
_MAX_TEXT = 100_000


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


# ---- providers ------------------------------------------------------------------------------

def generic_event(data: dict[str, Any], hook: str) -> CallEvent:
    """The call-centre JSON of CONTRACT.md: an operator's phone ticket."""
    subject = _text(data, "subject", limit=998)
    description = _text(data, "description", limit=_MAX_TEXT, bidi=False) or ""
    if subject is None and not description:
        raise PayloadError("subject", "field required (or a description)")
    return CallEvent(
        provider="generic", hook=hook, channel="phone", kind="ticket",
        call_id=_text(data, "call_id", required=True, limit=200),
        caller=_phone(data, "caller"), customer=_text(data, "customer", limit=64),
        contact_email=_email(data, "contact_email"),
        contact_name=_text(data, "contact_name", limit=200),
        agent=_text(data, "agent", limit=200), subject=subject, description=description,
        declared_priority=_priority(data), started_at=_instant(data, "started_at"),
        duration_s=_seconds(data, "duration_s"))


def web_event(data: dict[str, Any], hook: str = "web") -> CallEvent:
    """A web form's or chat bot's request (POST /api/v1/requests)."""
    return CallEvent(
        provider="web", hook=hook, channel="web", kind="ticket",
        call_id=_text(data, "request_id", limit=200), event_name="request",
        caller=_phone(data, "phone"), customer=_text(data, "customer", limit=64),
        contact_email=_email(data, "contact_email"),
        contact_name=_text(data, "name", limit=200),
        subject=_text(data, "subject", required=True, limit=998),
        description=_text(data, "description", limit=_MAX_TEXT) or "",
        declared_priority=_priority(data))


_ZAMMAD_MISSED = {"cancel", "noanswer", "busy", "congestion", "notfound"}


def zammad_event(data: dict[str, Any], hook: str) -> CallEvent:
    """Zammad's generic CTI events: newCall, answer, hangup (JSON or form)."""
    name = _text(data, "event", required=True, limit=20)
    direction = _text(data, "direction", required=True, limit=3)
    if direction not in ("in", "out"):
        raise PayloadError("direction", "expected in or out")
    if name not in ("newCall", "answer", "hangup"):
        raise PayloadError("event", "expected newCall, answer or hangup")
    cause = (_text(data, "cause", limit=40) or "").lower()
    kind: EventKind = "ringing"
    if name == "answer":
        kind = "answered"
    elif name == "hangup":
        kind = "missed" if cause in _ZAMMAD_MISSED and direction == "in" else "answered"
    user = data.get("user")
    agent = user if isinstance(user, str) else (
        ", ".join(u for u in user if isinstance(u, str)) if isinstance(user, list) else None)
    return CallEvent(
        provider="zammad-cti", hook=hook, channel="phone", kind=kind,
        call_id=_text(data, "callId", required=True, limit=200), event_name=name,
        direction="in" if direction == "in" else "out",
        caller=_text(data, "from", limit=64), called=_text(data, "to", limit=64),
        agent=agent, description=f"cause: {cause}" if cause else "")


def zadarma_event(data: dict[str, Any], hook: str) -> CallEvent:
    """Zadarma's PBX notifications: NOTIFY_START and NOTIFY_END (others are only stored)."""
    name = _text(data, "event", required=True, limit=40) or ""
    if not re.fullmatch(r"NOTIFY_[A-Z_]+", name):
        raise PayloadError("event", "expected a NOTIFY_* event")
    disposition = (_text(data, "disposition", limit=40) or "").lower()
    kind: EventKind = "ringing"
    if name == "NOTIFY_END":
        kind = "answered" if disposition == "answered" else "missed"
    elif name == "NOTIFY_ANSWER":
        kind = "answered"
    return CallEvent(
        provider="zadarma", hook=hook, channel="phone", kind=kind,
        call_id=_text(data, "pbx_call_id", required=True, limit=200), event_name=name,
        direction="in", caller=_text(data, "caller_id", limit=64),
        called=_text(data, "called_did", limit=64), agent=_text(data, "internal", limit=64),
        started_at=_zadarma_time(data), duration_s=_seconds(data, "duration"),
        description=f"disposition: {disposition}" if disposition else "",
        signed_identity=(":".join([name] + [str(data.get(f, "")) for f in _ZADARMA_SIGNED_CALL])
                         if name in ("NOTIFY_START", "NOTIFY_INTERNAL", "NOTIFY_END") else None))


# The fields Zadarma signs for a call's start, internal and end notifications.
_ZADARMA_SIGNED_CALL = ("caller_id", "called_did", "call_start")


def _zadarma_time(data: dict[str, Any]) -> datetime | None:
    # Zadarma writes "2026-11-25 10:00:00" in the account's zone; kept as UTC-naive text.
    value = _text(data, "call_start", limit=40)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError("call_start", "expected a date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_TWILIO_MISSED = {"no-answer", "busy", "failed", "canceled"}


def twilio_event(data: dict[str, Any], hook: str) -> CallEvent:
    """Twilio voice status callbacks and transcription callbacks (form-encoded)."""
    call_id = _text(data, "CallSid", required=True, limit=64)
    outbound = (_text(data, "Direction", limit=40) or "").startswith("outbound")
    direction: Literal["in", "out"] = "out" if outbound else "in"
    caller, called = _text(data, "From", limit=64), _text(data, "To", limit=64)
    if "TranscriptionText" in data or "TranscriptionStatus" in data:
        text = _text(data, "TranscriptionText", limit=_MAX_TEXT) or ""
        return CallEvent(
            provider="twilio", hook=hook, channel="phone", kind="note", call_id=call_id,
            event_name="transcription", direction=direction, caller=caller, called=called,
            subject=f"Voicemail from {caller or 'unknown caller'}", description=text)
    status = _text(data, "CallStatus", required=True, limit=40) or ""
    kind: EventKind = "ringing"
    if status == "completed":
        kind = "answered"
    elif status in _TWILIO_MISSED:
        kind = "missed" if direction == "in" else "answered"
    return CallEvent(
        provider="twilio", hook=hook, channel="phone", kind=kind, call_id=call_id,
        event_name=status, direction=direction, caller=caller, called=called,
        duration_s=_seconds(data, "CallDuration"), description=f"status: {status}")


_YES = {"1", "true", "yes", "answered", "y"}


def mapped_event(data: dict[str, Any], hook: str, mapping: dict[str, str],
                 channel: Channel = "phone") -> CallEvent:
    """A user-templated notification: MAPPING names, for each of our fields, theirs."""
    def get(ours: str) -> dict[str, Any]:
        return {ours: data.get(mapping.get(ours, ours))}

    values: dict[str, Any] = {}
    for ours in ("call_id", "caller", "called", "customer", "contact_email", "contact_name",
                 "agent", "subject", "description", "declared_priority", "started_at",
                 "duration_s", "answered"):
        values.update(get(ours))
    kind: EventKind = "ticket"
    if "answered" in mapping:
        answered = str(values.get("answered") or "").strip().lower()
        kind = "answered" if answered in _YES else "missed"
    try:
        return CallEvent(
            provider="mapped", hook=hook, channel=channel, kind=kind,
            call_id=_text(values, "call_id", required=True, limit=200),
            event_name=kind, caller=_text(values, "caller", limit=64),
            called=_text(values, "called", limit=64),
            customer=_text(values, "customer", limit=64),
            contact_email=_email(values, "contact_email"),
            contact_name=_text(values, "contact_name", limit=200),
            agent=_text(values, "agent", limit=200),
            subject=_text(values, "subject", limit=998),
            description=_text(values, "description", limit=_MAX_TEXT) or "",
            declared_priority=_priority(values), started_at=_instant(values, "started_at"),
            duration_s=_seconds(values, "duration_s"))
    except PayloadError as error:
        # Name the field as the sender spells it.
        raise PayloadError(mapping.get(error.field, error.field), error.problem) from None


def read_event(provider: str, hook: str, content_type: str, body: bytes,
               mapping: dict[str, str] | None = None, channel: Channel = "phone") -> CallEvent:
    """The event in BODY as PROVIDER sends it; PayloadError names the wrong field."""
    data = read_body(content_type, body)
    if provider == "generic":
        return generic_event(data, hook)
    if provider == "web":
        return web_event(data, hook)
    if provider == "zammad-cti":
        return zammad_event(data, hook)
    if provider == "zadarma":
        return zadarma_event(data, hook)
    if provider == "twilio":
        return twilio_event(data, hook)
    if provider == "mapped":
        return mapped_event(data, hook, mapping or {}, channel)
    raise ValueError(f"unknown provider {provider!r}")


# ---- stored form and the Request --------------------------------------------------------------

def envelope(provider: str, hook: str, content_type: str, body: bytes,
             mapping: dict[str, str] | None = None, channel: Channel = "phone") -> bytes:
    """What the intake door stores: the body as received plus how to read it again."""
    stored: dict[str, Any] = {"provider": provider, "hook": hook, "content_type": content_type,
                              "channel": channel, "mapping": mapping or {}}
    try:
        stored["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        # A form with files: the bytes exactly as received.
        stored["body_base64"] = base64.b64encode(body).decode("ascii")
    return json.dumps(stored, ensure_ascii=False).encode("utf-8")


def stored_body(stored: dict[str, Any]) -> bytes:
    """The body of a stored envelope, as received."""
    if "body_base64" in stored:
        return base64.b64decode(stored["body_base64"])
    return str(stored.get("body", "")).encode("utf-8")


def parse_stored(raw: bytes) -> CallRequest:
    """The Request of a stored phone or web input (processing calls this)."""
    stored = json.loads(raw)
    event = read_event(stored["provider"], stored["hook"], stored["content_type"],
                       stored_body(stored), stored.get("mapping") or {},
                       stored.get("channel", "phone"))
    return request_of(event)


def thread_id(event: CallEvent) -> str | None:
    """The Message-ID-like id under which a call's ticket is found by its later events."""
    if event.call_id is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", event.call_id)
    return f"call-{safe}@{re.sub(r'[^A-Za-z0-9.-]', '-', event.hook)}.calls.invalid"


def request_of(event: CallEvent) -> CallRequest:
    caller = to_e164(event.caller)
    who = event.caller or "unknown caller"
    subject, text = event.subject, event.description
    if event.kind == "missed":
        subject = f"Missed call from {who}, call back"
        text = (f"Missed inbound call from {who}"
                f"{' to ' + event.called if event.called else ''}. Please call the customer "
                f"back. {event.description}").strip()
    elif event.kind in ("answered", "ringing"):
        subject = subject or f"Call {'from' if event.direction == 'in' else 'to'} {who}"
        duration = f", {event.duration_s} s" if event.duration_s is not None else ""
        agent = f", agent {event.agent}" if event.agent else ""
        text = f"{event.kind.capitalize()} call {event.call_id}{duration}{agent}. {text}".strip()
    if subject is None:
        subject = (text.strip().splitlines() or [f"Phone request from {who}"])[0][:120]
    thread = thread_id(event)
    own_id = thread if event.kind in ("ticket", "missed") else None
    if own_id is None and thread is not None:
        own_id = thread.replace("call-", f"call-{event.event_name}-", 1)
    return CallRequest(
        channel=event.channel, subject=subject, text=text, reply_text=text,
        sender=Address(event.contact_name, event.contact_email) if event.contact_email else None,
        message_id=own_id, in_reply_to=thread if own_id != thread else None,
        references=[thread] if thread and own_id != thread else [],
        date=event.started_at, declared_priority=event.declared_priority,  # type: ignore[arg-type]
        phone=caller or event.caller, provider=event.provider, hook=event.hook,
        call_id=event.call_id, event=event.kind, direction=event.direction,
        customer_hint=event.customer, agent=event.agent, duration_s=event.duration_s,
        headers={}, defects=[])


def event_json(event: CallEvent) -> dict[str, Any]:
    """The event as JSON (logs, `rules explain`)."""
    data = asdict(event)
    data["started_at"] = event.started_at.isoformat() if event.started_at else None
    return data


