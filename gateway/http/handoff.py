"""Hand one phone or web event to the intake door; answer only after the commit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from starlette.responses import JSONResponse

from gateway.http.errors import Refused
from gateway.http.services import Services
from gateway.intake.door import IncomingInput
from gateway.store.db import read_transaction
from gateway.tickets.phone_calls import ticket_of_input
from parsers.telephony import CallEvent, envelope

log = structlog.get_logger("gateway.http")
CALL_TIME_MAX_AGE = timedelta(days=1)


async def accept_event(services: Services, event: CallEvent, content_type: str, body: bytes,
                       peer: str | None, mapping: dict[str, str] | None = None) -> JSONResponse:
    """202 once stored; 200 with the ticket when this call id was stored before."""
    raw = envelope(event.provider, event.hook, content_type, body, mapping, event.channel)
    item = IncomingInput(event.channel, raw, {
        "via": "http", "hook": event.hook, "provider": event.provider, "peer": peer,
        "call_id": event.call_id, "event": event.event_name}, key=event.key(),
        # A call reached us when it started; a time a day before the commit is not believed.
        arrived_at=event.started_at, arrival_max_age=CALL_TIME_MAX_AGE)
    try:
        accepted = await services.door.accept(item)
    except Exception as error:
        log.error("http.not_stored", error=str(error), hook=event.hook)
        raise Refused(503, "could not store the request, try again later") from None
    if not accepted.duplicate:
        services.outcomes["accepted"] += 1
        log.info("http.accepted", input_id=accepted.input_id, hook=event.hook)
        return JSONResponse({"status": "accepted", "input_id": accepted.input_id},
                            status_code=202)
    services.outcomes["duplicate"] += 1
    number = await asyncio.to_thread(_ticket_number, services, accepted.input_id)
    log.info("http.duplicate", input_id=accepted.input_id, hook=event.hook, ticket=number)
    return JSONResponse({"status": "duplicate", "input_id": accepted.input_id,
                         "ticket": number}, status_code=200)


def _ticket_number(services: Services, input_id: int) -> str | None:
    with read_transaction(services.db.engine) as session:
        return ticket_of_input(session, input_id)
