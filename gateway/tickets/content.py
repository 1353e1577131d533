"""What a ticket's messages say: sender, text and attachments, read again from the stored bytes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from gateway.store.models import Input, InputBody, OutboxItem, Ticket, TicketMessage
from parsers.attachments import AttachedFile, email_attachments, form_attachments
from parsers.chat import chat_files, stored_chat
from parsers.telephony import PayloadError, parse_stored, stored_body

# An attachment's id: the ticket message's row id and the file's position in it ("12.1").
_ATTACHMENT_ID = re.compile(r"(\d{1,18})\.(\d{1,6})")


@dataclass(frozen=True)
class MessageContent:
    """One message as a person reads it."""

    sender: dict[str, str | None] | None
    text: str
    full_text: str
    attachments: list[AttachedFile]


def read_content(raw: bytes, channel: str) -> MessageContent:
    """Parse stored bytes of CHANNEL (e-mail as RFC 5322, phone and web as our envelope)."""
    if channel == "email":
        # Imported here: the daemon leaves parsing (flanker and all) to its workers and
        # loads the mail parser only when someone asks to see a ticket.
        from parsers.email import parse_email

        request = parse_email(raw)
        sender = ({"name": request.sender.name, "address": request.sender.address,
                   "phone": None} if request.sender else None)
        return MessageContent(sender, request.reply_text or request.text, request.text,
                              email_attachments(raw))
    if channel == "chat":
        return _chat_content(raw)
    try:
        stored = json.loads(raw)
        call = parse_stored(raw)
    except (ValueError, KeyError, PayloadError):
        return MessageContent(None, "", "", [])
    sender = {"name": call.sender.name if call.sender else None,
              "address": call.sender.address if call.sender else None, "phone": call.phone}
    files = form_attachments(str(stored.get("content_type", "")), stored_body(stored))
    return MessageContent(sender, call.text, call.text, files)


def _chat_content(raw: bytes) -> MessageContent:
    """A stored chat message (parsers/chat.py's envelope), or our reply to a chat (the JSON
    posted to the platform, gateway/outbox/chat_replies.py)."""
    try:
        stored = json.loads(raw)
        if "type" in stored:
            text = str(stored.get("data", {}).get("text", ""))
            return MessageContent(None, text, text, [])
        _conversation, message = stored_chat(raw)
    except (ValueError, KeyError, AttributeError, PayloadError):
        return MessageContent(None, "", "", [])
    author = message.author
    sender = {"name": author.name, "address": author.email, "phone": author.phone}
    return MessageContent(sender, message.text, message.text, chat_files(message))


def _content_of(session: Session, message: TicketMessage) -> MessageContent | None:
    if message.input_id is not None:
        row = session.exec(select(Input.channel, InputBody.raw)
                           .join(InputBody, col(InputBody.input_id) == col(Input.id))
                           .where(Input.id == message.input_id)).first()
        return read_content(row[1], row[0]) if row else None
    if message.direction == "out" and message.message_id:
        # Our own mail: what the outbox holds under that Message-ID.
        sent = session.exec(select(OutboxItem.message)
                            .where(OutboxItem.ticket_id == message.ticket_id)
                            .where(OutboxItem.message_id == message.message_id)).first()
        if sent is not None:
            return read_content(sent, "chat" if sent.startswith(b"{") else "email")
    return None


def message_details(session: Session, messages: list[TicketMessage],
                    full: bool) -> dict[int, dict[str, Any]]:
    """For each message row id: `from`, `text` (the new text), attachments (and `full_text`
    when FULL), read from what was stored; a message with nothing stored keeps its body."""
    details: dict[int, dict[str, Any]] = {}
    for message in messages:
        assert message.id is not None
        content = _content_of(session, message)
        if content is None:
            continue
        entry: dict[str, Any] = {
            "from": content.sender, "text": content.text,
            "attachments": [{"id": f"{message.id}.{f.position}", "filename": f.filename,
                             "content_type": f.content_type, "size": f.size}
                            for f in content.attachments]}
        if full:
            entry["full_text"] = content.full_text
        details[message.id] = entry
    return details


def find_attachment(session: Session, number: str, attachment_id: str) -> AttachedFile | None:
    """Attachment ATTACHMENT_ID of ticket NUMBER; None when either does not exist, or when
    the id names a message of another ticket."""
    match = _ATTACHMENT_ID.fullmatch(attachment_id)
    if match is None:
        return None
    message = session.exec(select(TicketMessage)
                           .join(Ticket, col(Ticket.id) == col(TicketMessage.ticket_id))
                           .where(Ticket.number == number.upper())
                           .where(TicketMessage.id == int(match.group(1)))).first()
    if message is None:
        return None
    content = _content_of(session, message)
    position = int(match.group(2))
    if content is None:
        return None
    return next((f for f in content.attachments if f.position == position), None)
