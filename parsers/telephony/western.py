"""Providers of the West: the generic call-centre JSON, web forms, Zammad CTI, Zadarma, Twilio."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from parsers.telephony.base import (
    MAX_TEXT,
    CallEvent,
    EventKind,
    PayloadError,
    _email,
    _instant,
    _phone,
    _priority,
    _seconds,
    _text,
)


def generic_event(data: dict[str, Any], hook: str) -> CallEvent:
    """The call-centre JSON of CONTRACT.md: an operator's phone ticket."""
    subject = _text(data, "subject", limit=998)
    description = _text(data, "description", limit=MAX_TEXT, bidi=False) or ""
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
        description=_text(data, "description", limit=MAX_TEXT) or "",
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
        text = _text(data, "TranscriptionText", limit=MAX_TEXT) or ""
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
