"""POST /api/v1/tickets/<number>/events and GET /api/v1/reports/sla: the SLA clock over HTTP."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from fastapi import Query, Request
from starlette.responses import JSONResponse, Response

from gateway.http.api import router, services_of
from gateway.http.body import read_body
from gateway.http.errors import Refused
from gateway.sla.report import ReportQuery
from gateway.sla.report_render import MEDIA_TYPES
from gateway.tickets.lifecycle import EventInvalid, EventRefused, TicketNotFound

_EVENT_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": {
            "type": {"enum": ["resolved", "closed", "reopened", "priority_changed",
                              "priority_proposed", "waiting_for_customer", "waiting_ended"]},
            "priority": {"enum": ["critical", "high", "medium", "low"]},
            "reason": {"type": "string"}, "customer_agreed": {"type": "boolean"},
            "basis": {"enum": ["diagnosis", "customer_information", "declared_mismatch",
                               "partial_restoration"]},
            "actor": {"type": "string"}},
        "required": ["type"]}}}},
    "responses": {"200": {"description": "the ticket after the event"},
                  "401": {"description": "missing or bad bearer token"},
                  "404": {"description": "no such ticket"},
                  "409": {"description": "the event is not allowed now (e.g. lowering "
                                         "without the customer's agreement)"},
                  "422": {"description": "malformed event; `field` names what is wrong"}}}


@router.post("/tickets/{number}/events", openapi_extra=_EVENT_DOC,
             summary="A lifecycle event: resolved, closed, reopened, priority changed")
async def post_ticket_event(number: str, request: Request) -> JSONResponse:
    services = services_of(request)
    if services.ticket_event is None:
        raise Refused(503, "lifecycle events are not available")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", number):
        raise Refused(404, "no such ticket")
    body = await read_body(request, services.settings.http.max_body_bytes)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise Refused(422, f"malformed JSON: {error}", "body") from None
    try:
        applied = await services.ticket_event(number, payload)
    except TicketNotFound:
        raise Refused(404, "no such ticket") from None
    except EventInvalid as error:
        raise Refused(422, str(error), error.field or "body") from None
    except EventRefused as error:
        raise Refused(409, str(error)) from None
    return JSONResponse({"ticket": applied.ticket, "enqueued": applied.enqueued})


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Refused(422, "expected a date YYYY-MM-DD", name) from None


@router.get("/reports/sla", summary="Share of requests within SLA, per customer, tier, "
            "priority and type")
async def get_sla_report(request: Request, start: str = Query(alias="from"),
                         end: str = Query(alias="to"), customer: str | None = None,
                         format: str = "json") -> Response:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD[&customer=ID][&format=json|csv|html|table|pdf]"""
    services = services_of(request)
    if services.sla_report is None:
        raise Refused(503, "the SLA report is not available")
    first, last = _day(start, "from"), _day(end, "to")
    if last < first:
        raise Refused(422, "`to` is before `from`", "to")
    if format not in MEDIA_TYPES:
        raise Refused(422, f"one of {', '.join(MEDIA_TYPES)}", "format")
    data = await services.sla_report(ReportQuery(first, last, customer or None), format)
    return Response(data, media_type=MEDIA_TYPES[format])
