"""The event feed: what happened to tickets and inputs, written in the commit that did it.

Readers page through it by id (`after`); webhook subscriptions are planned from it. An event
carries the ticket's JSON as it was in that commit, so a reader never has to ask again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.clock import iso_utc
from gateway.store.db import read_transaction
from gateway.store.models import FeedEvent, Ticket
from gateway.store.ticket_json import ticket_snapshot

EVENT_TYPES: Final = (
    "ticket.registered", "ticket.message_added", "ticket.priority_changed",
    "ticket.status_changed", "sla.acknowledged", "sla.at_risk", "sla.breached",
    "input.quarantined", "call.missed")


def publish(session: Session, event_type: str, at: datetime, *, ticket_id: int | None = None,
            input_id: int | None = None, **details: Any) -> None:
    """Add one event in the caller's transaction (it commits or rolls back with the change)."""
    assert event_type in EVENT_TYPES, event_type
    ticket = ticket_snapshot(session, ticket_id) if ticket_id is not None else None
    data = {"ticket": ticket, "details": details}
    session.add(FeedEvent(type=event_type, at=at, input_id=input_id,
                          ticket_number=ticket["number"] if ticket else None,
                          data=json.dumps(data, ensure_ascii=False, default=_json)))
    session.flush()


def _json(value: object) -> object:
    return iso_utc(value) if isinstance(value, datetime) else str(value)


def event_json(event: FeedEvent) -> dict[str, Any]:
    """One event as the API, the CLI and the webhooks give it."""
    data = json.loads(event.data)
    return {"id": event.id, "type": event.type, "at": iso_utc(event.at),
            "ticket_number": event.ticket_number, "input_id": event.input_id,
            "details": data.get("details", {}), "ticket": data.get("ticket")}


def read_events(engine: Engine, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Events with an id above AFTER, oldest first, at most LIMIT."""
    with read_transaction(engine) as session:
        rows = session.exec(select(FeedEvent).where(col(FeedEvent.id) > after)
                            .order_by(col(FeedEvent.id)).limit(limit)).all()
        return [event_json(row) for row in rows]


def ticket_number_of(session: Session, ticket_id: int) -> str | None:
    return session.exec(select(Ticket.number).where(Ticket.id == ticket_id)).first()
