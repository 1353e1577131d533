"""`tickets show` for people: headers, local times, each message's sender, text and files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

_TIMES = ("received_at", "registered_at", "reaction_due", "resolution_due", "acknowledged_at",
          "resolved_at", "closed_at")


def local_time(value: str | None, zone: ZoneInfo) -> str:
    """An ISO 8601 UTC instant as `2026-11-25 10:00 MSK`; a dash for none."""
    if not value:
        return "-"
    instant = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(zone)
    return f"{instant:%Y-%m-%d %H:%M %Z}"


def ticket_rows(tickets: list[dict[str, Any]], zone: ZoneInfo) -> Iterator[str]:
    """`tickets list` for a terminal: a header row, then one line per ticket, local times."""
    yield (f"{'NUMBER':<11} {'STATUS':<21} {'PRIORITY':<8} {'CUSTOMER':<12} "
           f"{'RECEIVED':<20} SUBJECT")
    for t in tickets:
        yield (f"{t['number']:<11} {t['status']:<21} {t['priority']:<8} "
               f"{t['customer'] or '-':<12} {local_time(t['received_at'], zone):<20} "
               f"{t['subject']}")


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size = size / 1024  # type: ignore[assignment]
    return f"{size} B"


def _who(sender: dict[str, Any] | None) -> str:
    if not sender:
        return "-"
    name, address, phone = sender.get("name"), sender.get("address"), sender.get("phone")
    parts = [p for p in (name, f"<{address}>" if address else None, phone) if p]
    return " ".join(parts) or "-"


def _field(label: str, value: Any) -> str:
    if value is None or value == [] or value == "":
        value = "-"
    elif isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    return f"{label + ':':<17} {value}"


def render_ticket(ticket: dict[str, Any], zone: ZoneInfo) -> Iterator[str]:
    """The lines of one ticket as CONTRACT.md's JSON, for a terminal."""
    requester = ticket["requester"]
    yield f"{ticket['number']}  {ticket['subject']}"
    yield _field("Status", ticket["status"])
    yield _field("Priority", f"{ticket['priority']} ({ticket['request_type']})"
                 + (f", declared {ticket['declared_priority']}"
                    if ticket["declared_priority"] else ""))
    yield _field("Customer", f"{ticket['customer'] or '-'} (tier {ticket['tier'] or '-'})")
    yield _field("Requester", _who({**requester, "address": requester.get("email")}))
    yield _field("Channel", ticket["channel"])
    for key in _TIMES:
        if ticket.get(key):
            yield _field(key.replace("_", " ").capitalize(), local_time(ticket[key], zone))
    yield _field("Assignee", ticket.get("assignee"))
    yield _field("Manager copied", ticket.get("manager_cc"))
    yield _field("Tags", ticket.get("tags"))
    yield _field("Follows up", ticket.get("follows_up"))
    yield _field("Reasons", ticket["reasons"])
    yield _field("Notes", ticket["notes"])
    for number, message in enumerate(ticket["messages"], 1):
        yield ""
        yield (f"--- Message {number}: {message['kind']}, "
               f"{'from the customer' if message['direction'] == 'in' else 'sent by us'}, "
               f"{local_time(message['received_at'], zone)}")
        yield _field("From", _who(message.get("from")))
        if message.get("message_id"):
            yield _field("Message-ID", message["message_id"])
        for file in message.get("attachments", []):
            yield _field("Attachment", f"{file['id']}  {file['filename'] or '(no name)'}  "
                                       f"{file['content_type']}, {_size(file['size'])}")
        text = message.get("full_text") or message.get("text") or ""
        if text.strip():
            yield ""
            yield from ("    " + line for line in text.rstrip().splitlines())
    if ticket["history"]:
        yield ""
        yield "--- History"
        for entry in ticket["history"]:
            details = ", ".join(f"{k}: {v}" for k, v in entry.items()
                                if k not in ("at", "event") and v is not None)
            yield f"  {local_time(entry['at'], zone)}  {entry['event']:<19} {details}"
