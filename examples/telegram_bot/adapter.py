"""A Telegram bot as a thin adapter to the Intake Gateway's chat channel (docs/chat.md).

Two routes, nothing stored but a short memory of replies already sent:

- `POST /telegram`: the Bot API's webhook (setWebhook with `secret_token`). Each message
  becomes `POST /api/v1/chats/{chat.id}/messages` with the message's id, so Telegram's own
  retries are never registered twice. A file (document, photo) is fetched with getFile and
  passed on in base64; a shared contact gives the author's phone, which finds the customer.
- `POST /replies`: the gateway's reply webhook (`[[chat_platforms]] reply_url`). The Standard
  Webhooks signature is checked, a `webhook-id` already sent is answered 200 at once, and the
  text goes to the chat with sendMessage, as an answer to the customer's message.

Answers tell the sender what to do: 503 makes Telegram (or the gateway's outbox) try again
later; 410 tells the gateway that the conversation is gone (the user blocked the bot).

Run: `uvicorn examples.telegram_bot.adapter:app` with the environment of `Settings.from_env`.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = structlog.get_logger("telegram_adapter")

# sendMessage takes at most 4096 characters; a longer reply goes as several messages.
TELEGRAM_TEXT_LIMIT = 4096
# Replies remembered as sent, against the gateway's retry of one whose 200 got lost.
REMEMBERED_REPLIES = 10_000


@dataclass(frozen=True)
class Settings:
    gateway_url: str            # http://127.0.0.1:8080
    gateway_token: str          # intake-gateway tokens create --scope intake --name telegram
    bot_token: str              # from @BotFather
    webhook_secret: str         # setWebhook's secret_token, sent back in a header
    reply_secret: str           # the [[chat_platforms]] secret, "whsec_..."
    platform: str = "telegram"  # the [[chat_platforms]] name
    telegram_api: str = "https://api.telegram.org"

    @classmethod
    def from_env(cls) -> Settings:
        """INTAKE_URL, INTAKE_TOKEN, TELEGRAM_BOT_TOKEN, TELEGRAM_WEBHOOK_SECRET,
        INTAKE_REPLY_SECRET, and optionally INTAKE_PLATFORM and TELEGRAM_API."""
        env = os.environ
        return cls(env["INTAKE_URL"], env["INTAKE_TOKEN"], env["TELEGRAM_BOT_TOKEN"],
                   env["TELEGRAM_WEBHOOK_SECRET"], env["INTAKE_REPLY_SECRET"],
                   env.get("INTAKE_PLATFORM", "telegram"),
                   env.get("TELEGRAM_API", "https://api.telegram.org"))


class TelegramUnavailable(Exception):
    """The Bot API failed in a way worth retrying (network, 429, 5xx)."""


class ChatGone(Exception):
    """The Bot API refuses this chat for good (the bot was blocked, the chat deleted)."""


class Adapter:
    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.client = client or httpx.AsyncClient(timeout=30, trust_env=False)
        self.webhook = Webhook(settings.reply_secret)
        self.sent: OrderedDict[str, None] = OrderedDict()
        # Phones users shared (a contact button): Telegram tells no e-mail and no phone
        # otherwise. Kept in memory here; a real bot keeps them in its own store.
        self.phones: dict[str, str] = {}

    # ---- Telegram -> gateway ------------------------------------------------------------------

    async def telegram_update(self, request: Request) -> Response:
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        if not hmac.compare_digest(given, self.settings.webhook_secret):
            return JSONResponse({"error": "bad secret token"}, status_code=401)
        update = await request.json()
        message = update.get("message") or update.get("edited_message")
        if not isinstance(message, dict) or "chat" not in message:
            return Response(status_code=200)  # other updates: nothing for support
        if "contact" in message and not message.get("caption"):
            # The reply to a "share your phone" button: remembered (it finds the customer),
            # not a message for support.
            self.remember_contact(message)
            return Response(status_code=200)
        try:
            body = await self.chat_message(message, edited="edited_message" in update)
        except TelegramUnavailable as error:
            log.warning("telegram.file_unavailable", error=str(error))
            return JSONResponse({"error": str(error)}, status_code=503)
        conversation = str(message["chat"]["id"])
        try:
            answer = await self.client.post(
                f"{self.settings.gateway_url}/api/v1/chats/{conversation}/messages", json=body,
                headers={"Authorization": f"Bearer {self.settings.gateway_token}"})
        except httpx.HTTPError as error:
            log.warning("gateway.unreachable", error=str(error))
            return JSONResponse({"error": "gateway unreachable"}, status_code=503)
        if answer.status_code in (200, 202):
            return Response(status_code=200)
        if answer.status_code >= 500 or answer.status_code == 429:
            return JSONResponse({"error": f"gateway said {answer.status_code}"},
                                status_code=503)
        # Refused for good (422, 413, ...): Telegram retrying would not change it.
        log.error("gateway.refused", status=answer.status_code, answer=answer.text[:500])
        return Response(status_code=200)

    def remember_contact(self, message: dict[str, Any]) -> str | None:
        """The author's user id; their phone remembered when they shared their own contact."""
        user_id = str((message.get("from") or {}).get("id", "")) or None
        contact = message.get("contact")
        if user_id and isinstance(contact, dict) and str(contact.get("user_id")) == user_id:
            self.phones[user_id] = str(contact["phone_number"])
        return user_id

    async def chat_message(self, message: dict[str, Any], edited: bool = False) -> dict[str, Any]:
        """The gateway's chat message for one Telegram message."""
        sender = message.get("from") or {}
        user_id = self.remember_contact(message)
        name = " ".join(p for p in (sender.get("first_name"), sender.get("last_name")) if p)
        author = {"name": name or sender.get("username"), "user_id": user_id,
                  "phone": self.phones.get(user_id or "")}
        text = message.get("text") or message.get("caption") or ""
        files = [await self.download(message["document"]["file_id"],
                                     message["document"].get("file_name"),
                                     message["document"].get("mime_type"))
                 ] if "document" in message else []
        if "photo" in message:
            # Sizes come smallest first: the last is the original.
            files.append(await self.download(message["photo"][-1]["file_id"], "photo.jpg",
                                             "image/jpeg"))
        # An edit is a new message of the conversation (the same id with other text would be
        # refused as a different message under a used id).
        message_id = str(message["message_id"])
        if edited:
            message_id += f".edit-{message.get('edit_date', '')}"
        return {"platform": self.settings.platform, "message_id": message_id,
                "author": {k: v for k, v in author.items() if v},
                "text": text, "sent_at": message.get("date"),
                "attachments": files,
                "metadata": {"chat_type": message["chat"].get("type"),
                             "chat_title": message["chat"].get("title")}}

    async def download(self, file_id: str, filename: str | None,
                       content_type: str | None) -> dict[str, Any]:
        info = await self.bot("getFile", {"file_id": file_id})
        url = (f"{self.settings.telegram_api}/file/bot{self.settings.bot_token}/"
               f"{info['file_path']}")
        try:
            got = await self.client.get(url)
        except httpx.HTTPError as error:
            raise TelegramUnavailable(f"file download: {error}") from None
        if got.status_code != 200:
            raise TelegramUnavailable(f"file download: HTTP {got.status_code}")
        return {"filename": filename or info["file_path"].rsplit("/", 1)[-1],
                "content_type": content_type or "application/octet-stream",
                "content_base64": base64.b64encode(got.content).decode("ascii")}

    # ---- gateway -> Telegram ------------------------------------------------------------------

    async def gateway_reply(self, request: Request) -> Response:
        body = await request.body()
        try:
            reply = self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        webhook_id = request.headers["webhook-id"]
        if webhook_id in self.sent:
            return Response(status_code=200)  # sent before; our 200 was lost
        data = reply["data"]
        try:
            await self.send_text(data["conversation"], data["text"], data.get("in_reply_to"))
        except ChatGone as error:
            return JSONResponse({"error": str(error)}, status_code=410)
        except TelegramUnavailable as error:
            return JSONResponse({"error": str(error)}, status_code=503)
        self.sent[webhook_id] = None
        while len(self.sent) > REMEMBERED_REPLIES:
            self.sent.popitem(last=False)
        return Response(status_code=200)

    async def send_text(self, chat_id: str, text: str, in_reply_to: str | None) -> None:
        pieces = [text[i:i + TELEGRAM_TEXT_LIMIT]
                  for i in range(0, len(text), TELEGRAM_TEXT_LIMIT)] or [""]
        for number, piece in enumerate(pieces):
            payload: dict[str, Any] = {"chat_id": chat_id, "text": piece}
            if number == 0 and in_reply_to and in_reply_to.isdigit():
                payload["reply_parameters"] = {"message_id": int(in_reply_to),
                                               "allow_sending_without_reply": True}
            await self.bot("sendMessage", payload)

    async def bot(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One Bot API call; its result, or the exception that says whether to retry."""
        url = f"{self.settings.telegram_api}/bot{self.settings.bot_token}/{method}"
        try:
            answer = await self.client.post(url, json=payload)
        except httpx.HTTPError as error:
            raise TelegramUnavailable(f"{method}: {error}") from None
        if answer.status_code == 429 or answer.status_code >= 500:
            raise TelegramUnavailable(f"{method}: HTTP {answer.status_code}")
        data = answer.json()
        if not data.get("ok"):
            description = str(data.get("description", answer.status_code))
            if answer.status_code in (400, 403):
                raise ChatGone(f"{method}: {description}")
            raise TelegramUnavailable(f"{method}: {description}")
        result: dict[str, Any] = data["result"]
        return result


def make_app(settings: Settings, client: httpx.AsyncClient | None = None) -> Starlette:
    adapter = Adapter(settings, client)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await adapter.client.aclose()

    app = Starlette(routes=[Route("/telegram", adapter.telegram_update, methods=["POST"]),
                            Route("/replies", adapter.gateway_reply, methods=["POST"])],
                    lifespan=lifespan)
    app.state.adapter = adapter
    return app


def __getattr__(name: str) -> Starlette:
    # `uvicorn examples.telegram_bot.adapter:app`: built from the environment when asked for.
    if name == "app":
        return make_app(Settings.from_env())
    raise AttributeError(name)
