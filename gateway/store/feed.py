"""The event feed: what happened to tickets and inputs, written in the commit that did it.

Readers page through it by id (`after`); each event's webhook deliveries are planned with
it. An event carries the ticket's JSON as it was in that commit, so a reader never has to
ask again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Integer, String, bindparam, insert, literal, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from gateway.clock import iso_utc
from gateway.store.db import read_transaction
from gateway.store.event_types import EVENT_TYPES
from gateway.store.models import PENDING, Delivery, FeedEvent, Subscription
from gateway.store.prepared import Prepared
from gateway.store.ticket_json import ticket_snapshot

_DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
_SUBSCRIPTIONS = Subscription.__table__  # type: ignore[attr-defined]


_FEED = FeedEvent.__table__  # type: ignore[attr-defined]
# On the driver's cursor (see Prepared): they run for every registration.
_INSERT_EVENT = Prepared(insert(_FEED).returning(_FEED.c.id))
_PLAN_DELIVERIES = Prepared(insert(_DELIVERIES).from_select(
    ["subscription", "event_id", "ticket_number", "status", "attempts", "next_attempt_at",
     "created_at"],
    sa_select(_SUBSCRIPTIONS.c.name, bindparam("event_id", type_=Integer()),
              bindparam("number", type_=String()), literal(PENDING), literal(0),
              bindparam("at", type_=UTCDateTime()), bindparam("at", type_=UTCDateTime()))
    .where(_SUBSCRIPTIONS.c.active.is_(True))
    .where(or_(_SUBSCRIPTIONS.c.events.is_(None),
               _SUBSCRIPTIONS.c.events.like(bindparam("pattern", type_=String()))))))


def publish(session: Session, event_type: str, at: datetime, *, ticket_id: int | None = None,
            input_id: int | None = None, **details: Any) -> None:
    """Add one event in the caller's transaction (it commits or rolls back with the change),
    and the deliveries each subscription that wants it is owed."""
    assert event_type in EVENT_TYPES, event_type
    ticket = ticket_snapshot(session, ticket_id) if ticket_id is not None else None
    data = {"ticket": ticket, "details": details}
    number = ticket["number"] if ticket else None
    connection = session.connection()
    event_id = _INSERT_EVENT.execute(connection, {
        "type": event_type, "at": at, "input_id": input_id, "ticket_number": number,
        "data": json.dumps(data, ensure_ascii=False, default=_json)}).fetchone()[0]
    _PLAN_DELIVERIES.execute(connection, {"event_id": event_id, "number": number, "at": at,
                                          "pattern": f"%,{event_type},%"})


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
