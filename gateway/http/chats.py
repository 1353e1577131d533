"""POST /api/v1/chats/{conversation}/messages: a chat platform's messages, stored before 202."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import structlog
from fastapi import Request
from starlette.responses import JSONResponse, Response

from gateway.http.api import router, services_of
from gateway.http.body import read_body
from gateway.http.errors import Refused
from gateway.http.services import Services
from gateway.intake.door import IncomingInput
from gateway.store.db import read_transaction
from gateway.store.models import InputBody
from gateway.tickets.phone_calls import ticket_of_input
from parsers.chat import ChatMessage, chat_envelope, read_chat, stored_chat
from parsers.telephony import PayloadError

log = structlog.get_logger("gateway.http")
# A message's own time (sent_at) a day before it reached us is not believed: the commit counts.
SENT_AT_MAX_AGE = timedelta(days=1)
# Bodies larger than this are parsed off the event loop (base64 attachments take a while).
_PARSE_INLINE_BYTES = 65_536

_MESSAGE: dict[str, Any] = {"type": "object", "required": ["platform", "message_id"],
                            "properties": {
    "platform": {"type": "string", "description": "a [[chat_platforms]] name"},
    "message_id": {"type": "string", "description": "the platform's id of the message, "
                   "unique in the conversation: a retry with it is not registered again"},
    "author": {"type": "object", "properties": {
        "name": {"type": "string"}, "email": {"type": "string"}, "phone": {"type": "string"},
        "user_id": {"type": "string"}}},
    "text": {"type": "string"}, "subject": {"type": "string"},
    "declared_priority": {"enum": ["critical", "high", "medium", "low"]},
    "sent_at": {"type": "string", "format": "date-time"},
    "attachments": {"type": "array", "items": {"type": "object", "required": ["content_base64"],
                                               "properties": {
        "filename": {"type": "string"}, "content_type": {"type": "string"},
        "content_base64": {"type": "string", "format": "byte"}}}},
    "metadata": {"type": "object"}}}
_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _MESSAGE}}},
    "responses": {"202": {"description": "stored; the first message of a conversation "
                                         "registers a ticket, later ones join it"},
                  "200": {"description": "this message id was stored before (`ticket`)"},
                  "401": {"description": "missing, bad or revoked bearer token"},
                  "403": {"description": "the token lacks scope intake (`field`: scope)"},
                  "413": {"description": "body over http.max_upload_bytes"},
                  "415": {"description": "not application/json"},
                  "422": {"description": "malformed body, unknown platform, or the message "
                                         "id reused with other data; `field` names it"}}}


def _parse(conversation: str, body: bytes) -> ChatMessage:
    try:
        return read_chat(conversation, body)
    except PayloadError as error:
        raise Refused(422, error.problem, error.field) from None


@router.post("/chats/{conversation}/messages", openapi_extra=_DOC,
             summary="A message of a chat conversation (docs/chat.md)")
async def post_chat_message(conversation: str, request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise Refused(415, f"expected Content-Type application/json, got {media or 'none'}",
                      "content-type")
    body = await read_body(request, settings.http.max_upload_bytes)
    message = (_parse(conversation, body) if len(body) <= _PARSE_INLINE_BYTES
               else await asyncio.to_thread(_parse, conversation, body))
    platforms = [p.name for p in settings.chat_platforms]
    if message.platform not in platforms:
        raise Refused(422, f"no chat platform {message.platform!r} is configured "
                      f"([[chat_platforms]]: {', '.join(platforms) or 'none'})", "platform")
    if len(message.attachments) > settings.limits.attachments:
        raise Refused(422, f"{len(message.attachments)} files, at most "
                      f"{settings.limits.attachments}", "attachments")
    caller = getattr(request.state, "caller", None)
    item = IncomingInput("chat", chat_envelope(conversation, body), {
        "via": "http", "platform": message.platform, "conversation": conversation,
        "message_id": message.message_id, "token": getattr(caller, "name", None),
        "peer": request.client.host if request.client else None},
        key=f"{message.platform}:{conversation}:{message.message_id}",
        arrived_at=message.sent_at, arrival_max_age=SENT_AT_MAX_AGE)
    try:
        accepted = await services.door.accept(item)
    except Exception as error:
        log.error("http.not_stored", error=str(error), platform=message.platform)
        raise Refused(503, "could not store the message, try again later") from None
    if not accepted.duplicate:
        services.outcomes["accepted"] += 1
        log.info("chat.accepted", input_id=accepted.input_id, platform=message.platform)
        return JSONResponse({"status": "accepted", "input_id": accepted.input_id},
                            status_code=202)
    stored, number = await asyncio.to_thread(_stored, services, accepted.input_id)
    if stored is not None and stored != (conversation, message):
        # A platform's retry repeats the message; other content under the same id is another
        # message, or a forgery, and must not pass for the stored one.
        differs = next((name for name in ChatMessage.model_fields
                        if getattr(stored[1], name) != getattr(message, name)), "conversation")
        raise Refused(422, f"message id {message.message_id} of conversation {conversation} "
                      f"was stored before with different data: {differs} differs", differs)
    services.outcomes["duplicate"] += 1
    log.info("chat.duplicate", input_id=accepted.input_id, ticket=number)
    return JSONResponse({"status": "duplicate", "input_id": accepted.input_id,
                         "ticket": number}, status_code=200)


def _stored(services: Services,
            input_id: int) -> tuple[tuple[str, ChatMessage] | None, str | None]:
    """The stored conversation and message of INPUT_ID, and its ticket's number if any yet."""
    with read_transaction(services.db.engine) as session:
        row = session.get(InputBody, input_id)
        number = ticket_of_input(session, input_id)
    if row is None:
        return None, number
    try:
        return stored_chat(row.raw), number
    except (ValueError, KeyError):
        return None, number
