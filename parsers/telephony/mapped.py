"""A user-templated notification: dotted paths, JSON in a form field, value maps."""

from __future__ import annotations

import json
from typing import Any

from parsers.model import Channel
from parsers.telephony.base import (
    MAX_TEXT,
    CallEvent,
    EventKind,
    PayloadError,
    _email,
    _instant,
    _priority,
    _seconds,
    _text,
)

# Our fields a mapping may name; "answered" and "inbound" may also be value maps.
FIELDS = ("call_id", "caller", "called", "customer", "contact_email", "contact_name", "agent",
          "subject", "description", "declared_priority", "started_at", "duration_s", "event",
          "answered", "inbound")
# The pseudo-field holding the sub-path a sender posted to (/hooks/<name>/<sub-path>).
PATH_FIELD = "_path"
_YES = {"1", "true", "yes", "answered", "y"}
# Read only when the mapping names them (a sender's own "event" field changes nothing else).
_OPTIONAL = frozenset({"event", "answered", "inbound"})


def lookup(data: Any, path: str) -> Any:
    """DATA's value at PATH: a key as spelled, else dot-separated keys (or list indexes)."""
    if isinstance(data, dict) and path in data:
        return data[path]
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def json_in_form(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The JSON object in form field NAME (Mango Office and others post JSON that way)."""
    raw = data.get(name)
    if raw is None or raw == "":
        raise PayloadError(name, "field required (a JSON object)")
    if not isinstance(raw, str):
        raise PayloadError(name, "expected a JSON text")
    try:
        inner = json.loads(raw)
    except ValueError as error:
        raise PayloadError(name, f"not JSON: {error}") from None
    if not isinstance(inner, dict):
        raise PayloadError(name, "expected a JSON object")
    return inner


def _their_name(spec: str | dict[str, Any]) -> str:
    return spec if isinstance(spec, str) else str(spec.get("field", ""))


def _in(value: Any, values: list[Any]) -> bool:
    text = str(value if value is not None else "").strip().lower()
    return text in {str(v).strip().lower() for v in values}


def _answered(spec: str | dict[str, Any], value: Any) -> EventKind:
    """Answered, missed, or (a value in neither list of a map with both) an event in between."""
    if isinstance(spec, str):
        return "answered" if str(value or "").strip().lower() in _YES else "missed"
    if _in(value, list(spec.get("yes", []))):
        return "answered"
    if "no" in spec and not _in(value, list(spec["no"])):
        return "ringing"
    return "missed"


def mapped_event(data: dict[str, Any], hook: str, mapping: dict[str, Any],
                 channel: Channel = "phone", json_field: str | None = None,
                 path: str = "") -> CallEvent:
    """MAPPING names, for each of our fields, the sender's (a dotted path, or a value map)."""
    source: dict[str, Any] = dict(data)
    if json_field:
        # The JSON's fields first; the form's own fields stay reachable by their names.
        source = {**data, **json_in_form(data, json_field)}
    source[PATH_FIELD] = path
    values: dict[str, Any] = {}
    for ours in FIELDS:
        if ours in _OPTIONAL and ours not in mapping:
            continue
        spec = mapping.get(ours, ours)
        values[ours] = lookup(source, _their_name(spec))
    kind: EventKind = "ticket"
    direction: str = "in"
    if "inbound" in mapping:
        spec = mapping["inbound"]
        inbound = _answered(spec, values["inbound"]) == "answered"
        direction = "in" if inbound else "out"
    if "answered" in mapping:
        kind = _answered(mapping["answered"], values["answered"])
        if kind == "missed" and direction == "out":
            kind = "answered"  # an unanswered call of ours is nobody's request
    try:
        event_name = _text(values, "event", limit=100) or kind
        return CallEvent(
            provider="mapped", hook=hook, channel=channel, kind=kind,
            call_id=_text(values, "call_id", required=True, limit=200),
            event_name=event_name, direction="in" if direction == "in" else "out",
            caller=_text(values, "caller", limit=64),
            called=_text(values, "called", limit=64),
            customer=_text(values, "customer", limit=64),
            contact_email=_email(values, "contact_email"),
            contact_name=_text(values, "contact_name", limit=200),
            agent=_text(values, "agent", limit=200),
            subject=_text(values, "subject", limit=998),
            description=_text(values, "description", limit=MAX_TEXT) or "",
            declared_priority=_priority(values), started_at=_instant(values, "started_at"),
            duration_s=_seconds(values, "duration_s"))
    except PayloadError as error:
        # Name the field as the sender spells it.
        theirs = _their_name(mapping.get(error.field, error.field))
        raise PayloadError(theirs, error.problem) from None
