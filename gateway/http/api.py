"""/api/v1: web requests and tickets, behind the bearer admin token.

Other modules add their routes to `router` (it already carries the token check):
    @router.post("/tickets/{number}/events") ...; @router.get("/reports/sla") ...
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, Response

from gateway.http.body import read_body
from gateway.http.errors import Refused
from gateway.http.handoff import accept_event
from gateway.http.services import Services
from gateway.http.signatures import check_bearer
from gateway.tickets.missed_calls import list_missed_calls
from gateway.tickets.view import list_tickets, show_ticket
from parsers.telephony import PayloadError, read_event


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def require_admin(request: Request) -> None:
    """Every /api/v1 route: Authorization: Bearer <admin token>."""
    check_bearer(services_of(request).admin_token, request.headers.get("authorization"))


router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_admin)], tags=["api"])

_REQUEST_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "properties": {
        "request_id": {"type": "string"}, "subject": {"type": "string"},
        "description": {"type": "string"}, "contact_email": {"type": "string"},
        "name": {"type": "string"}, "phone": {"type": "string"},
        "customer": {"type": "string"},
        "declared_priority": {"enum": ["critical", "high", "medium", "low"]}},
        "required": ["subject"]}}}},
    "responses": {"202": {"description": "stored; a ticket follows"},
                  "200": {"description": "this request_id was stored before"},
                  "401": {"description": "missing or bad bearer token"},
                  "413": {"description": "body over the limit"},
                  "422": {"description": "malformed body; `field` names what is wrong"}}}


@router.post("/requests", openapi_extra=_REQUEST_DOC, summary="A web form's or chat bot's request")
async def post_request(request: Request) -> Response:
    services = services_of(request)
    body = await read_body(request, services.settings.http.max_body_bytes)
    content_type = request.headers.get("content-type", "application/json")
    try:
        event = read_event("web", "web", content_type, body, channel="web")
    except PayloadError as error:
        raise Refused(422, error.problem, error.field) from None
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
async def get_ticket(number: str, request: Request) -> JSONResponse:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", number):
        raise Refused(404, "no such ticket")
    ticket = await asyncio.to_thread(show_ticket, services_of(request).db.engine, number)
    if ticket is None:
        raise Refused(404, "no such ticket")
    return JSONResponse(ticket)


@router.get("/calls", summary="Missed calls from unknown numbers, stored for a call back")
async def get_calls(request: Request, since: str | None = None,
                    limit: int = Query(default=500, ge=1, le=10_000)) -> JSONResponse:
    calls = await asyncio.to_thread(list_missed_calls, services_of(request).db.engine,
                                    since=_since(since), limit=limit)
    return JSONResponse(calls)
