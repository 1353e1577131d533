"""POST /hooks/<name>: each configured webhook, authenticated the way its provider signs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.config.webhook_settings import WebhookSettings
from gateway.http.body import read_body
from gateway.http.errors import Refused
from gateway.http.handoff import accept_event
from gateway.http.pbx import answer, authenticate, megafon_contact
from gateway.http.services import Services
from gateway.http.signatures import (
    check_generic,
    check_path_token,
    check_source,
    check_twilio,
    check_zadarma,
)
from parsers.telephony import PayloadError, read_event
from parsers.telephony import read_body as read_fields

# Providers that post to sub-paths of their hook (Mango's /events/call, /events/summary).
_SUB_PATHS = ("mango",)
# Providers that may send their fields in a GET query string.
_GET_PROVIDERS = ("sipuni",)

router = APIRouter(tags=["webhooks"])

_BODY_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "properties": {
        "call_id": {"type": "string"}, "caller": {"type": "string"},
        "customer": {"type": "string"}, "contact_email": {"type": "string"},
        "agent": {"type": "string"}, "subject": {"type": "string"},
        "description": {"type": "string"},
        "declared_priority": {"enum": ["critical", "high", "medium", "low"]},
        "started_at": {"type": "string", "format": "date-time"},
        "duration_s": {"type": "integer", "minimum": 0}}, "required": ["call_id"]}},
    "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}},
    "responses": {"202": {"description": "stored; a ticket follows"},
                  "200": {"description": "this call id was stored before"},
                  "401": {"description": "bad or missing signature, stale timestamp"},
                  "404": {"description": "no such hook"},
                  "413": {"description": "body over the limit"},
                  "422": {"description": "malformed body; `field` names what is wrong"}}}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _hook(services: Services, name: str) -> WebhookSettings:
    hook = services.hook(name)
    if hook is None:
        raise Refused(404, "no such hook")
    return hook


@router.post("/hooks/{name}", openapi_extra=_BODY_DOC, summary="Call-centre / PBX / form input")
async def post_hook(name: str, request: Request) -> Response:
    return await receive_hook(_services(request), request, name, None)


@router.post("/hooks/{name}/{rest:path}", openapi_extra=_BODY_DOC,
             summary="A secret path token (Zammad CTI, mapped), or a sub-path (Mango /events/*)")
async def post_hook_with_token(name: str, rest: str, request: Request) -> Response:
    return await receive_hook(_services(request), request, name, rest)


@router.get("/hooks/{name}", summary="Sipuni and mapped GET events; Zadarma's URL check",
            response_class=PlainTextResponse)
async def get_hook(name: str, request: Request) -> Response:
    services = _services(request)
    hook = _hook(services, name)
    if hook.provider in _GET_PROVIDERS or (hook.provider == "mapped" and "GET" in hook.methods):
        return await receive_hook(services, request, name, None)
    echo = request.query_params.get("zd_echo")
    if hook.provider != "zadarma" or echo is None:
        raise Refused(405, "this hook takes POST")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", echo):
        raise Refused(422, "zd_echo must be letters and digits", "zd_echo")
    return PlainTextResponse(echo)


async def receive_hook(services: Services, request: Request, name: str,
                       token: str | None) -> Response:
    """Authenticate, read and store one webhook request; Refused says why not."""
    hook = _hook(services, name)
    peer = request.client.host if request.client else None
    try:
        return await _authenticated_intake(services, hook, request, token, peer)
    except Refused:
        services.outcomes[f"refused:{hook.name}"] += 1
        raise


async def _authenticated_intake(services: Services, hook: WebhookSettings, request: Request,
                                token: str | None, peer: str | None) -> Response:
    check_source(hook.allow_from, peer)
    body = await read_body(request, services.settings.http.max_body_bytes)
    secret = services.secret_of(hook)
    content_type = request.headers.get("content-type", "application/json")
    headers = request.headers
    path = ""
    by_field = hook.provider == "mapped" and hook.token_field is not None
    if hook.provider in _SUB_PATHS or by_field:
        path, token = token or "", None
    elif token is not None and hook.provider not in ("zammad-cti", "mapped"):
        raise Refused(404, "no such hook")
    if request.method == "GET":
        # The query string is the body; the credential in it is not stored with the input.
        credential = "key" if hook.provider == "sipuni" else hook.token_field
        query = [(k, v) for k, v in request.query_params.multi_items() if k != credential]
        body, content_type = urlencode(query).encode(), "application/x-www-form-urlencoded"
    if hook.provider in ("megafon", "mango", "sipuni") or by_field:
        try:
            fields = read_fields(content_type, body)
        except PayloadError as error:
            raise Refused(422, error.problem, error.field) from None
        authenticate(services, hook, fields, request.query_params)
        if hook.provider == "megafon" and fields.get("cmd") == "contact":
            return megafon_contact(services, fields)
    elif hook.provider in ("zammad-cti", "mapped"):
        check_path_token(secret, token)
    elif token is not None:
        raise Refused(404, "no such hook")
    elif hook.provider == "generic":
        check_generic(secret, headers, body, services.clock.now(),
                      services.settings.http.replay_window_s)
    elif hook.provider == "twilio":
        url = hook.public_url or str(request.url)
        check_twilio(secret, headers, url, _form(body))
    elif hook.provider == "zadarma":
        check_zadarma(secret, headers, _form(body), services.clock.now(), hook.max_age_s)
    try:
        event = read_event(hook.provider, hook.name, content_type, body, hook.plain_mapping(),
                           hook.channel, hook.json_field, path)
    except PayloadError as error:
        raise Refused(422, error.problem, error.field) from None
    stored = await accept_event(services, event, content_type, body, peer,
                                hook.plain_mapping(), hook.json_field, path)
    return answer(hook, stored)


def _form(body: bytes) -> dict[str, str]:
    """The form fields a signature covers; an unreadable form signs nothing (-> 401)."""
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return {}
