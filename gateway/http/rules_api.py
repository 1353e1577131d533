"""POST /api/v1/rules/explain: which rules fire on a message or payload, with the rules in force."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.responses import JSONResponse

from gateway.http.api import router, services_of
from gateway.http.body import read_body
from gateway.http.errors import Refused
from gateway.sla.deadlines import DEFAULT_CALENDAR
from gateway.sla.working_calendar import is_working_time
from rules.corpus import request_from_payload
from rules.explain import explain
from rules.facts import Sender

_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {
        "message/rfc822": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object", "properties": {
            "subject": {"type": "string"}, "description": {"type": "string"},
            "contact_email": {"type": "string"}, "customer": {"type": "string"}}}}}},
    "responses": {"200": {"description": "the decision and every rule's hit or miss"},
                  "401": {"description": "missing or bad bearer token"},
                  "413": {"description": "body over the limit"},
                  "422": {"description": "not an e-mail message nor a JSON object"}}}


@router.post("/rules/explain", openapi_extra=_DOC, summary="Explain the rules on a request")
async def post_rules_explain(request: Request) -> JSONResponse:
    services = services_of(request)
    if services.context is None:
        raise Refused(503, "rules are not loaded")
    context = services.context()
    body = await read_body(request, services.settings.http.max_body_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    customer_id = None
    if content_type == "application/json":
        try:
            payload = json.loads(body)
            parsed = request_from_payload(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise Refused(422, f"malformed JSON payload: {error}", "body") from None
        customer_id = payload.get("customer") if isinstance(payload, dict) else None
    elif content_type in ("message/rfc822", "text/plain", "application/octet-stream", ""):
        from parsers.email import parse_email  # 8 MB with flanker: loaded when first needed

        parsed = parse_email(body)
    else:
        raise Refused(422, f"unsupported content type {content_type!r}: send message/rfc822 "
                      "or application/json", "content-type")
    directory = context.directory
    customer = (directory.get(str(customer_id)) if customer_id else directory.match_email(
        parsed.sender.address if parsed.sender else None))
    sender = Sender(customer.id, customer.tier) if customer else None
    result = explain(parsed, context.ruleset, sender,
                     is_working_time(services.clock.now(), DEFAULT_CALENDAR))
    return JSONResponse(result)

