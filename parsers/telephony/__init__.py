"""Call-centre, PBX and web-form payloads -> one call event -> the normalised Request."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict
from typing import Any

from parsers.model import Address, Channel
from parsers.phones import to_e164
from parsers.telephony.base import (
    PROVIDERS,
    CallEvent,
    CallRequest,
    EventKind,
    PayloadError,
    read_body,
)
from parsers.telephony.mapped import mapped_event
from parsers.telephony.russian import MANGO_PATHS, mango_event, megafon_event, sipuni_event
from parsers.telephony.western import (
    generic_event,
    twilio_event,
    web_event,
    zadarma_event,
    zammad_event,
)

__all__ = ["MANGO_PATHS", "PROVIDERS", "CallEvent", "CallRequest", "EventKind", "PayloadError",
           "envelope", "event_json", "generic_event", "mango_event", "mapped_event",
           "megafon_event", "parse_stored", "read_body", "read_event", "request_of",
           "sipuni_event", "stored_event", "thread_id", "twilio_event", "web_event",
           "zadarma_event", "zammad_event"]


def read_event(provider: str, hook: str, content_type: str, body: bytes,
               mapping: dict[str, Any] | None = None, channel: Channel = "phone",
               json_field: str | None = None, path: str = "") -> CallEvent:
    """The event in BODY as PROVIDER sends it (PATH: the sub-path it was posted to);
    PayloadError names the wrong field."""
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
        return mapped_event(data, hook, mapping or {}, channel, json_field, path)
    if provider == "megafon":
        return megafon_event(data, hook)
    if provider == "mango":
        return mango_event(data, hook, path)
    if provider == "sipuni":
        return sipuni_event(data, hook)
    raise ValueError(f"unknown provider {provider!r}")


# ---- stored form and the Request --------------------------------------------------------------

def envelope(provider: str, hook: str, content_type: str, body: bytes,
             mapping: dict[str, Any] | None = None, channel: Channel = "phone",
             json_field: str | None = None, path: str = "") -> bytes:
    """What the intake door stores: the body as received plus how to read it again."""
    stored: dict[str, Any] = {"provider": provider, "hook": hook, "content_type": content_type,
                              "channel": channel, "mapping": mapping or {}}
    try:
        stored["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        # A form with files: the bytes exactly as received.
        stored["body_base64"] = base64.b64encode(body).decode("ascii")
    # Written only when set, so stored inputs of before read the same.
    if json_field:
        stored["json_field"] = json_field
    if path:
        stored["path"] = path
    return json.dumps(stored, ensure_ascii=False).encode("utf-8")


def stored_body(stored: dict[str, Any]) -> bytes:
    """The body of a stored envelope, as received."""
    if "body_base64" in stored:
        return base64.b64decode(stored["body_base64"])
    return str(stored.get("body", "")).encode("utf-8")


def parse_stored(raw: bytes) -> CallRequest:
    """The Request of a stored phone or web input (processing calls this)."""
    return request_of(stored_event(raw))


def stored_event(raw: bytes) -> CallEvent:
    """The event of a stored phone or web input."""
    stored = json.loads(raw)
    return read_event(stored["provider"], stored["hook"], stored["content_type"],
                       stored_body(stored), stored.get("mapping") or {},
                       stored.get("channel", "phone"), stored.get("json_field"),
                       stored.get("path", ""))


def thread_id(event: CallEvent) -> str | None:
    """The Message-ID-like id under which a call's ticket is found by its later events."""
    if event.call_id is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", event.call_id)
    return f"call-{safe}@{re.sub(r'[^A-Za-z0-9.-]', '-', event.hook)}.calls.invalid"


def request_of(event: CallEvent) -> CallRequest:
    # The customer's number: the caller, or whom we called (a call back finds its ticket).
    theirs = event.called if event.direction == "out" and event.called else event.caller
    caller = to_e164(theirs)
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
        phone=caller or theirs, provider=event.provider, hook=event.hook,
        call_id=event.call_id, event=event.kind, direction=event.direction,
        customer_hint=event.customer, agent=event.agent, duration_s=event.duration_s,
        headers={}, defects=[])


def event_json(event: CallEvent) -> dict[str, Any]:
    """The event as JSON (logs, `rules explain`)."""
    data = asdict(event)
    data["started_at"] = event.started_at.isoformat() if event.started_at else None
    return data

