"""The normalised request every channel's parser produces, whatever the input looked like."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Channel = Literal["email", "phone", "web", "chat"]
Kind = Literal["normal", "auto_reply", "bounce", "feedback_report", "list"]
Priority = Literal["critical", "high", "medium", "low"]

PRIORITIES: tuple[Priority, ...] = ("critical", "high", "medium", "low")


@dataclass(frozen=True)
class Address:
    """One mailbox: a display name (or None) and the address itself."""

    name: str | None
    address: str

    def as_json(self) -> dict[str, str | None]:
        return {"name": self.name, "address": self.address}


@dataclass(frozen=True)
class Attachment:
    """What we know of an attachment without keeping its bytes here."""

    filename: str | None
    content_type: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type, "size": self.size}


@dataclass
class Request:
    """One customer request as read from any channel, before classification."""

    channel: Channel
    subject: str | None = None
    text: str = ""
    reply_text: str = ""
    sender: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    date: datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)
    kind: Kind = "normal"
    failed_recipients: list[str] = field(default_factory=list)
    # For a bounce: the address itself is refused (unknown user or host), not this message or
    # this moment (a full mailbox, a policy refusal, a 4.x.x delay).
    bounce_permanent: bool = False
    # Recipients a delivery report says were delivered: their addresses work.
    delivered_to: list[str] = field(default_factory=list)
    declared_priority: Priority | None = None
    # For a bounce or feedback report: the Message-ID of the message it reports on.
    original_message_id: str | None = None
    phone: str | None = None
    # Lower-cased header names to their decoded values, for rules and loop checks.
    headers: dict[str, list[str]] = field(default_factory=dict)
    # What could not be read cleanly; the request is still usable.
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def as_json(self) -> dict[str, Any]:
        """The `parse --json` shape of CONTRACT.md."""
        return {
            "from": self.sender.as_json() if self.sender else None,
            "to": [a.address for a in self.to],
            "cc": [a.address for a in self.cc],
            "subject": self.subject,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "date": self.date.isoformat() if self.date else None,
            "text": self.text,
            "reply_text": self.reply_text,
            "attachments": [a.as_json() for a in self.attachments],
            "kind": self.kind,
            "failed_recipients": list(self.failed_recipients),
            **({"hard": self.bounce_permanent} if self.kind == "bounce" else {}),
            "original_message_id": self.original_message_id,
            "declared_priority": self.declared_priority,
            "defects": list(self.defects),
        }
