"""Answers to chat conversations: our mail turned into a chat reply, posted signed (Standard
Webhooks) to the platform's `reply_url` from the outbox, so it is retried and sent once.

A chat's ticket is answered at the address "chat:<platform>:<conversation>". Everything that
writes to a customer (the acknowledgement, the courtesy notice, priority notices) renders its
mail as for e-mail; `outbox.table.enqueue` turns the mail to such an address into the JSON
posted (`chat_reply`), so every template and every guard applies to chats unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import structlog

from gateway.clock import iso_utc
from gateway.config.chat_platforms import ChatPlatformSettings
from gateway.outbox.mailer import Delivery, PermanentFailure, TemporaryFailure

if TYPE_CHECKING:
    import httpx

log = structlog.get_logger("gateway.chat_replies")

CHAT_PREFIX = "chat:"
REPLY_TYPE = "chat.reply"


def chat_address(platform: str, conversation: str) -> str:
    """Where a conversation's ticket is answered (Ticket.reply_to, the outbox recipient)."""
    return f"{CHAT_PREFIX}{platform}:{conversation}"


def split_chat_address(address: str) -> tuple[str, str] | None:
    """(platform, conversation) of a chat address, or None for any other address."""
    if not address.startswith(CHAT_PREFIX):
        return None
    platform, colon, conversation = address.removeprefix(CHAT_PREFIX).partition(":")
    return (platform, conversation) if colon and platform and conversation else None


def _angle_free(value: str | None) -> str | None:
    return value.strip().strip("<>") if value else None


def chat_reply(mail: bytes, recipient: str, kind: str) -> bytes:
    """The JSON body posted for MAIL (as rendered for e-mail) to the chat at RECIPIENT: the
    Standard Webhooks envelope `{type, timestamp, data}` with the ticket, the text, and the
    platform's message id it answers (an acknowledgement answers the first message)."""
    platform, conversation = split_chat_address(recipient) or ("", "")
    message = BytesParser(policy=policy.default).parsebytes(mail)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    date = message.get("Date")
    at = parsedate_to_datetime(str(date)) if date else datetime.now(UTC)
    data: dict[str, Any] = {
        "id": _angle_free(message.get("Message-ID")),
        "platform": platform, "conversation": conversation,
        "ticket": str(message.get("X-Intake-Ticket", "")) or None,
        "kind": kind,
        "in_reply_to": _angle_free(message.get("In-Reply-To")),
        "subject": str(message.get("Subject", "")),
        "text": text.replace("\r\n", "\n").strip(),
    }
    return json.dumps({"type": REPLY_TYPE, "timestamp": iso_utc(at), "data": data},
                      ensure_ascii=False).encode("utf-8")


def reply_text(body: bytes) -> tuple[str, str | None]:
    """(text, id) of a chat reply's JSON body, for the ticket's history."""
    data = json.loads(body).get("data", {})
    return str(data.get("text", "")), data.get("id")


class ChatReplies:
    """Posts chat replies to their platform's reply_url, signed; a Delivery of the outbox.

    The webhook-id is the reply's own id, the same on every attempt: a platform that got a
    reply whose success answer was lost sees the retry as the same message and drops it.
    """

    def __init__(self, platforms: Sequence[ChatPlatformSettings],
                 wall: Callable[[], datetime] | None = None) -> None:
        self._platforms = {p.name: p for p in platforms}
        # The signature's timestamp is checked against the receiver's clock: the real time.
        self._wall = wall or (lambda: datetime.now(UTC))
        self._client: httpx.AsyncClient | None = None

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        where = split_chat_address(recipient)
        platform = self._platforms.get(where[0]) if where else None
        if platform is None:
            # A platform taken out of the configuration may come back: retried, then failed.
            raise TemporaryFailure(f"no [[chat_platforms]] entry named "
                                   f"{where[0] if where else recipient!r}")
        # Imported at the first reply: worker processes compose replies and never send them.
        import httpx
        from standardwebhooks import Webhook

        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        reply_id = str(json.loads(data).get("data", {}).get("id") or "")
        webhook_id = f"msg_{reply_id}"
        now = self._wall()
        headers = {"content-type": "application/json", "webhook-id": webhook_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(platform.secret.get_secret_value()).sign(
                       webhook_id, now, data),
                   "user-agent": "intake-gateway"}
        try:
            response = await self._client.post(platform.reply_url, content=data,
                                               headers=headers, timeout=platform.timeout_s)
        except httpx.TimeoutException:
            raise TemporaryFailure(f"{platform.name}: no answer within "
                                   f"{platform.timeout_s:g} s") from None
        except httpx.HTTPError as error:
            raise TemporaryFailure(f"{platform.name}: {type(error).__name__}: {error}"[:500]) \
                from None
        status = response.status_code
        if 200 <= status < 300:
            return
        # 410 Gone: the conversation is no more (a bot blocked, a chat deleted); nothing
        # will ever take this reply. Anything else may pass later: retried with backoff.
        problem = f"{platform.name}: HTTP {status} {response.text[:200]}".strip()
        if status == 410:
            raise PermanentFailure(problem)
        raise TemporaryFailure(problem)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RoutedDelivery:
    """Mail to mail's delivery (the relay or maildir), chat replies to their platform."""

    def __init__(self, mail: Delivery, chats: ChatReplies) -> None:
        self._mail = mail
        self._chats = chats

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        if recipient.startswith(CHAT_PREFIX):
            await self._chats.send(sender, recipient, data)
        else:
            await self._mail.send(sender, recipient, data)

    async def close(self) -> None:
        try:
            await self._chats.close()
        finally:
            await self._mail.close()
