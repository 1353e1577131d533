"""/api/v1: web requests and tickets, behind the bearer admin token.

Other modules add their routes to `router` (it already carries the token check):
    @router.post("/tickets/{number}/events") ...; @router.get("/reports/sla") ...
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, Response

from gateway.http.body import read_body
from gateway.http.errors import Refused
from gateway.http.handoff import accept_event
from gateway.http.services import Services
from gateway.http.tokens import Scope, configured_admin, identify, require
from gateway.store.db import read_transaction
from gateway.tickets.content import find_attachment
from gateway.tickets.missed_calls import list_missed_calls
from gateway.tickets.view import list_tickets, show_ticket
from parsers.attachments import AttachedFile, FormError, form_fields
from parsers.telephony import PayloadError, read_event


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# The scope each route needs (by method and path); anything not listed needs admin.
_SCOPES: dict[tuple[str, str], Scope] = {
    ("POST", "/api/v1/requests"): "intake",
    ("POST", "/api/v1/chats/{conversation}/messages"): "intake",
    ("GET", "/api/v1/tickets"): "read",
    ("GET", "/api/v1/tickets/{number}"): "read",
    ("GET", "/api/v1/tickets/{number}/attachments/{attachment_id}"): "read",
    ("GET", "/api/v1/events"): "read",
    ("GET", "/api/v1/calls"): "read",
    ("GET", "/api/v1/reports/sla"): "read",
    ("POST", "/api/v1/rules/explain"): "read",
}


async def require_scope(request: Request) -> None:
    """Every /api/v1 route: Authorization: Bearer <token> whose scope allows the route."""
    services = services_of(request)
    authorization = request.headers.get("authorization")
    # The configured token is checked here; a scoped one is looked up off the event loop.
    caller = configured_admin(services.admin_token, authorization)
    if caller is None:
        caller = await asyncio.to_thread(identify, services.db.engine, services.admin_token,
                                         authorization)
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    require(caller, _SCOPES.get((request.method, path), "admin"))
    request.state.caller = caller


router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_scope)], tags=["api"])

_WEB_REQUEST: dict[str, Any] = {"type": "object", "properties": {
    "request_id": {"type": "string"}, "subject": {"type": "string"},
    "description": {"type": "string"}, "contact_email": {"type": "string"},
    "name": {"type": "string"}, "phone": {"type": "string"}, "customer": {"type": "string"},
    "declared_priority": {"enum": ["critical", "high", "medium", "low"]}},
    "required": ["subject"]}
_REQUEST_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _WEB_REQUEST},
    # A web form with files: the same fields, and each file an attachment of the ticket.
    "multipart/form-data": {"schema": _WEB_REQUEST}}},
    "responses": {"202": {"description": "stored; a ticket follows"},
                  "200": {"description": "this request_id was stored before"},
                  "401": {"description": "missing, bad or revoked bearer token"},
                  "403": {"description": "the token lacks scope intake (`field`: scope)"},
                  "413": {"description": "body over the limit"},
                  "422": {"description": "malformed body; `field` names what is wrong"}}}


@router.post("/requests", openapi_extra=_REQUEST_DOC, summary="A web form's or chat bot's request")
async def post_request(request: Request) -> Response:
    services = services_of(request)
    content_type = request.headers.get("content-type", "application/json")
    upload = content_type.lower().startswith("multipart/form-data")
    http = services.settings.http
    body = await read_body(request, http.max_upload_bytes if upload else http.max_body_bytes)
    try:
        event = read_event("web", "web", content_type, body, channel="web")
        files = form_fields(content_type, body)[1] if upload else 0
    except (PayloadError, FormError) as error:
        field = error.field if isinstance(error, PayloadError) else "body"
        problem = error.problem if isinstance(error, PayloadError) else str(error)
        raise Refused(422, problem, field) from None
    if files > services.settings.limits.attachments:
        raise Refused(422, f"{files} files, at most {services.settings.limits.attachments}",
                      "attachments")
    peer = request.client.host if request.client else None
    return await accept_event(services, event, content_type, body, peer)


def _since(value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(422, "expected an ISO 8601 date or date-time", "since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/tickets", summary="Tickets, newest first")
async def get_tickets(request: Request, status: str | None = None, customer: str | None = None,
                      since: str | None = None,
                      limit: int | None = Query(default=None, ge=1, le=10_000)) -> JSONResponse:
    engine = services_of(request).db.engine
    tickets = await asyncio.to_thread(list_tickets, engine, status=status, customer=customer,
                                      since=_since(since), limit=limit)
    return JSONResponse(tickets)


@router.get("/tickets/{number}", summary="One ticket as in CONTRACT.md")
async def get_ticket(number: str, request: Request, full: bool = False) -> JSONResponse:
    """`full=true` adds each message's whole original text (`full_text`)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", number):
        raise Refused(404, "no such ticket")
    ticket = await asyncio.to_thread(show_ticket, services_of(request).db.engine, number,
                                     full=full)
    if ticket is None:
        raise Refused(404, "no such ticket")
    return JSONResponse(ticket)


@router.get("/tickets/{number}/attachments/{attachment_id}",
            summary="An attachment's bytes, with its content type")
async def get_attachment(number: str, attachment_id: str, request: Request) -> Response:
    found = await asyncio.to_thread(_attachment, services_of(request), number, attachment_id)
    if found is None:
        raise Refused(404, f"no attachment {attachment_id} in ticket {number}")
    return Response(found.data, media_type=found.content_type,
                    headers={"Content-Disposition": content_disposition(found.filename)})


def _attachment(services: Services, number: str, attachment_id: str) -> AttachedFile | None:
    with read_transaction(services.db.engine) as session:
        return find_attachment(session, number, attachment_id)


def content_disposition(filename: str | None) -> str:
    """RFC 6266: an ASCII fallback and the UTF-8 name (RFC 5987)."""
    if not filename:
        return "attachment"
    fallback = re.sub(r'[^A-Za-z0-9._ -]', "_", filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/calls", summary="Missed calls from unknown numbers, stored for a call back")
async def get_calls(request: Request, since: str | None = None,
                    limit: int = Query(default=500, ge=1, le=10_000)) -> JSONResponse:
    calls = await asyncio.to_thread(list_missed_calls, services_of(request).db.engine,
                                    since=_since(since), limit=limit)
    return JSONResponse(calls)
