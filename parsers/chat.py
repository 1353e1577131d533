"""Chat messages (a messenger bot, the web widget) -> one validated message -> the Request."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from parsers.attachments import AttachedFile
from parsers.headers import strip_invisible
from parsers.model import Address, Attachment, Request
from parsers.phones import to_e164
from parsers.telephony import PayloadError

# A conversation id as platforms write them: Telegram's (negative) integers, eXpress UUIDs,
# a widget's session token. It is a path segment and part of an address: no spaces, no '/'.
CONVERSATION = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.:@=+-]{0,199}")
PLATFORM = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_EMAIL = re.compile(r"[^\s@<>,;\"()\\]+@[^\s@<>,;\"()\\]+\.[^\s@<>,;\"()\\]+")
MAX_TEXT = 100_000


def _clean(value: str | None) -> str | None:
    """Lone surrogates and bidirectional controls removed (as for every channel); blank is None."""
    if value is None:
        return None
    if "\x00" in value:
        raise ValueError("contains NUL")
    text = strip_invisible(value, True).strip()
    return text or None


class ChatAuthor(BaseModel):
    """Who wrote, as the platform knows them; the e-mail and phone find the customer."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=64)
    user_id: str | None = Field(default=None, max_length=200)

    @field_validator("name", "user_id")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _clean(value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        value = _clean(value)
        if value is not None and not _EMAIL.fullmatch(value):
            raise ValueError("not an e-mail address")
        return value.lower() if value else None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        value = _clean(value)
        if value is not None and to_e164(value) is None:
            raise ValueError("not a phone number")
        return value


class ChatFile(BaseModel):
    """A file the author sent, its bytes in base64."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str | None = Field(default=None, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=255,
                              pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")
    content_base64: bytes

    @field_validator("filename")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return _clean(value)

    @field_validator("content_base64", mode="before")
    @classmethod
    def _decode(cls, value: object) -> bytes:
        if not isinstance(value, str):
            raise ValueError("expected base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None


class ChatMessage(BaseModel):
    """One message of one conversation, as `POST /api/v1/chats/{conversation}/messages` takes
    it (docs/chat.md); equal messages are the same message delivered again."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    platform: str = Field(pattern=PLATFORM)
    message_id: str = Field(min_length=1, max_length=200)
    author: ChatAuthor = ChatAuthor()
    text: str = Field(default="", max_length=MAX_TEXT)
    subject: str | None = Field(default=None, max_length=200)
    declared_priority: Literal["critical", "high", "medium", "low"] | None = None
    sent_at: datetime | None = None
    attachments: list[ChatFile] = Field(default_factory=list)
    # Whatever else the adapter wants kept with the message (a chat's title, say).
    metadata: dict[str, Any] | None = None

    @field_validator("message_id")
    @classmethod
    def _id(cls, value: str) -> str:
        cleaned = _clean(value)
        if cleaned is None:
            raise ValueError("field required")
        return cleaned

    @field_validator("text")
    @classmethod
    def _body(cls, value: str) -> str:
        return _clean(value) or ""

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        return _clean(value)

    @field_validator("sent_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


def _field_of(location: tuple[int | str, ...]) -> str:
    """("attachments", 0, "content_base64") -> "attachments[0].content_base64"."""
    name = ""
    for part in location:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def read_chat(conversation: str, body: bytes) -> ChatMessage:
    """The message in BODY (JSON); PayloadError names the first wrong field."""
    if not CONVERSATION.fullmatch(conversation):
        raise PayloadError("conversation", "expected 1-200 characters of letters, digits and "
                           "-_.:@=+ (not starting with .:@=+)")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("body", "not UTF-8") from None
    except ValueError as error:
        raise PayloadError("body", f"malformed JSON: {error}") from None
    except RecursionError:
        raise PayloadError("body", "JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise PayloadError("body", "expected a JSON object")
    try:
        message = ChatMessage.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        problem = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            problem = "unknown field (docs/chat.md lists the fields)"
        raise PayloadError(_field_of(tuple(first["loc"])), problem) from None
    if not message.text and not message.attachments:
        raise PayloadError("text", "field required (or at least one attachment)")
    return message


# ---- stored form and the Request --------------------------------------------------------------

def chat_envelope(conversation: str, body: bytes) -> bytes:
    """What the intake door stores: the conversation and the body exactly as received."""
    return json.dumps({"conversation": conversation, "body": body.decode("utf-8")},
                      ensure_ascii=False).encode("utf-8")


def stored_chat(raw: bytes) -> tuple[str, ChatMessage]:
    """The conversation and message of a stored chat input."""
    stored = json.loads(raw)
    conversation = str(stored["conversation"])
    return conversation, read_chat(conversation, str(stored["body"]).encode("utf-8"))


@dataclass
class ChatRequest(Request):
    """A Request that came by chat, with where to answer it."""

    platform: str = ""
    conversation: str = ""
    chat_message_id: str = ""
    user_id: str | None = None
    author_name: str | None = None


def chat_files(message: ChatMessage) -> list[AttachedFile]:
    """The message's files, numbered from 1 as every channel's attachments are."""
    return [AttachedFile(position, f.filename, f.content_type, f.content_base64)
            for position, f in enumerate(message.attachments, start=1)]


def chat_request(conversation: str, message: ChatMessage) -> ChatRequest:
    """The Request of one chat message: a first message registers, later ones join."""
    author = message.author
    text = message.text or "(" + ", ".join(f.filename or f.content_type
                                           for f in message.attachments) + ")"
    subject = message.subject or (text.splitlines() or [""])[0][:120]
    return ChatRequest(
        channel="chat", subject=subject, text=text, reply_text=text,
        sender=Address(author.name, author.email) if author.email else None,
        message_id=f"chat:{message.platform}:{conversation}:{message.message_id}",
        date=message.sent_at, declared_priority=message.declared_priority,
        phone=to_e164(author.phone) or author.phone,
        attachments=[Attachment(f.filename, f.content_type, len(f.content_base64))
                     for f in message.attachments],
        platform=message.platform, conversation=conversation,
        chat_message_id=message.message_id, user_id=author.user_id, author_name=author.name,
        headers={}, defects=[])


def parse_stored_chat(raw: bytes) -> ChatRequest:
    """The Request of a stored chat input (processing calls this)."""
    return chat_request(*stored_chat(raw))
