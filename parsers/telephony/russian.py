"""Russian cloud PBXs: MegaFon "Облачная АТС" (CRM REST API), Mango Office VPBX, Sipuni."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from parsers.telephony.base import CallEvent, EventKind, PayloadError, _instant, _seconds, _text
from parsers.telephony.mapped import json_in_form

# ---- MegaFon: form posts with cmd=event | history | contact and crm_token -------------------

# cmd=event types: a call is announced, answered, ended; whether it was missed is the
# history record's to say (it comes once per call, after the end).
_MEGAFON_EVENTS: dict[str, EventKind] = {
    "INCOMING": "ringing", "OUTGOING": "ringing", "TRANSFERRED": "ringing",
    "ACCEPTED": "answered", "COMPLETED": "answered", "CANCELLED": "ringing"}


def _megafon_time(data: dict[str, Any], name: str) -> datetime | None:
    # MegaFon writes 20261125T071500Z (basic ISO 8601, UTC).
    value = _text(data, name, limit=40)
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return _instant(data, name)


def megafon_event(data: dict[str, Any], hook: str) -> CallEvent:
    """An event or a history record; a `contact` look-up is answered by HTTP, never stored."""
    command = _text(data, "cmd", required=True, limit=20)
    if command not in ("event", "history"):
        raise PayloadError("cmd", "expected event or history (contact is a look-up)")
    call_id = _text(data, "callid", required=True, limit=200)
    caller, ours = _text(data, "phone", limit=64), _text(data, "telnum", limit=64)
    agent = _text(data, "user", limit=200) or _text(data, "ext", limit=64)
    kind_text = (_text(data, "type", required=True, limit=20) or "")
    if command == "event":
        name = kind_text.upper()
        if name not in _MEGAFON_EVENTS:
            raise PayloadError("type", f"expected one of {', '.join(_MEGAFON_EVENTS)}")
        direction: Literal["in", "out"] = "out" if name == "OUTGOING" else "in"
        return CallEvent(
            provider="megafon", hook=hook, channel="phone", kind=_MEGAFON_EVENTS[name],
            call_id=call_id, event_name=f"event.{name}", direction=direction,
            caller=caller, called=ours or _text(data, "diversion", limit=64), agent=agent)
    if kind_text.lower() not in ("in", "out", "missed"):
        raise PayloadError("type", "expected in, out or missed")
    status = _text(data, "status", required=True, limit=40) or ""
    direction = "out" if kind_text.lower() == "out" else "in"
    # Success is MegaFon's word for a call that was talked through; any other status
    # (missed, Cancel, Busy, NotAvailable, ...) of an inbound call leaves a customer waiting.
    answered = status.lower() == "success"
    link = _text(data, "link", limit=2000)
    return CallEvent(
        provider="megafon", hook=hook, channel="phone",
        kind="answered" if answered or direction == "out" else "missed",
        call_id=call_id, event_name="history", direction=direction, caller=caller,
        called=ours or _text(data, "diversion", limit=64), agent=agent,
        started_at=_megafon_time(data, "start"), duration_s=_seconds(data, "duration"),
        description=f"status: {status}" + (f", recording: {link}" if link else ""))


# ---- Mango Office: form fields vpbx_api_key, sign, json; /events/<kind> sub-paths --------------

MANGO_PATHS = ("events/call", "events/summary")
_MANGO_STATES = {"Appeared": "ringing", "Connected": "answered", "OnHold": "ringing",
                 "Disconnected": "ringing"}


def _part(inner: dict[str, Any], name: str) -> dict[str, Any]:
    value = inner.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"json.{name}", "expected an object")
    return value


def _nested(inner: dict[str, Any], outer: str, name: str) -> str | None:
    part = _part(inner, outer)
    try:
        return _text(part, name, limit=64)
    except PayloadError as error:
        raise PayloadError(f"json.{outer}.{error.field}", error.problem) from None


def _mango_field(reader: Any, inner: dict[str, Any], name: str, **options: Any) -> Any:
    try:
        return reader(inner, name, **options)
    except PayloadError as error:
        raise PayloadError(f"json.{error.field}", error.problem) from None


def _unix(inner: dict[str, Any], name: str) -> int:
    """Unix seconds (0: not reached, as Mango writes a talk_time of a call never answered)."""
    value = inner.get(name)
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**11:
        raise PayloadError(f"json.{name}", "expected unix seconds")
    return value


def mango_event(data: dict[str, Any], hook: str, path: str) -> CallEvent:
    """A call-state event (events/call) or a call's summary (events/summary)."""
    sub = path.strip("/")
    if sub not in MANGO_PATHS:
        raise PayloadError("path", f"expected one of {', '.join(MANGO_PATHS)}")
    inner = json_in_form(data, "json")
    entry = _mango_field(_text, inner, "entry_id", required=True, limit=200)
    caller, called = _nested(inner, "from", "number"), _nested(inner, "to", "number")
    agent = _nested(inner, "to", "extension")
    if sub == "events/call":
        state = _mango_field(_text, inner, "call_state", required=True, limit=20) or ""
        if state not in _MANGO_STATES:
            raise PayloadError("json.call_state", f"expected one of {', '.join(_MANGO_STATES)}")
        seq = _mango_field(_seconds, inner, "seq")
        return CallEvent(
            provider="mango", hook=hook, channel="phone",
            kind="answered" if state == "Connected" else "ringing", call_id=entry,
            event_name=f"call.{state}.{seq if seq is not None else 0}", caller=caller,
            called=called, agent=agent,
            started_at=_mango_field(_instant, inner, "timestamp"))
    direction_code = _mango_field(_text, inner, "call_direction", limit=2)
    result = _mango_field(_text, inner, "entry_result", required=True, limit=2)
    if result not in ("0", "1"):
        raise PayloadError("json.entry_result", "expected 0 or 1")
    talk, end = _unix(inner, "talk_time"), _unix(inner, "end_time")
    kind: EventKind = "answered"
    if direction_code == "0":
        kind = "ringing"  # a call between two employees is nobody's request
    elif result == "0" and direction_code == "1":
        kind = "missed"
    return CallEvent(
        provider="mango", hook=hook, channel="phone", kind=kind, call_id=entry,
        event_name="summary", direction="out" if direction_code == "2" else "in",
        caller=caller, called=called or _mango_field(_text, inner, "line_number", limit=64),
        agent=agent, started_at=_mango_field(_instant, inner, "create_time"),
        duration_s=end - talk if talk and end >= talk else None,
        description=f"entry_result: {result}, disconnect_reason: "
                    f"{_mango_field(_text, inner, 'disconnect_reason', limit=10) or '-'}")


# ---- Sipuni: GET or POST; event 1 call, 2 end, 3 answer, 4 end of a secondary leg ---------------

_SIPUNI_EVENTS = {"1": "call", "2": "hangup", "3": "answer", "4": "secondary_hangup"}


def sipuni_event(data: dict[str, Any], hook: str) -> CallEvent:
    """One Sipuni PBX event; the end of a call (event=2) with status ANSWER was answered."""
    name = _text(data, "event", required=True, limit=2) or ""
    if name not in _SIPUNI_EVENTS:
        raise PayloadError("event", "expected 1, 2, 3 or 4")
    # src_type 1 is an outside number: the customer called us.
    direction: Literal["in", "out"] = "in" if _text(data, "src_type", limit=2) == "1" else "out"
    status = (_text(data, "status", limit=40) or "").upper()
    kind: EventKind = "ringing"
    if name == "3":
        kind = "answered"
    elif name == "2":
        kind = "answered" if status == "ANSWER" or direction == "out" else "missed"
    record = _text(data, "call_record_link", limit=2000)
    return CallEvent(
        provider="sipuni", hook=hook, channel="phone", kind=kind,
        call_id=_text(data, "call_id", required=True, limit=200),
        event_name=_SIPUNI_EVENTS[name], direction=direction,
        caller=_text(data, "src_num", limit=64), called=_text(data, "dst_num", limit=64),
        agent=_text(data, "short_dst_num", limit=64),
        started_at=_instant(data, "call_start_timestamp"),
        description=(f"status: {status}" if status else "")
        + (f", recording: {record}" if record else ""))
