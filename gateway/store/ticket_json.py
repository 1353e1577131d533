"""A ticket as CONTRACT.md's JSON, from its rows: what the API, the CLI and the feed show."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session

from gateway.clock import iso_utc
from gateway.store.models import Ticket, TicketEvent, TicketMessage
from gateway.store.prepared import Prepared


def ticket_json(ticket: Ticket, messages: list[TicketMessage],
                history: list[TicketEvent] | None = None,
                details: dict[int, dict[str, Any]] | None = None,
                authentication: dict[int, Any] | None = None) -> dict[str, Any]:
    """CONTRACT.md's ticket; DETAILS (by message row id) adds what each message says, and
    AUTHENTICATION (the inputs' sender authentication by input id) who sent it."""
    shown = {} if authentication is None else {"authentication": next(
        (authentication.get(m.input_id or 0) for m in messages if m.direction == "in"), None)}
    return {
        "number": ticket.number,
        "channel": ticket.channel,
        "status": ticket.status,
        "customer": ticket.customer_id,
        "tier": ticket.tier,
        "request_type": ticket.request_type,
        "priority": ticket.priority,
        "declared_priority": ticket.declared_priority,
        "subject": ticket.subject,
        "requester": {"name": ticket.requester_name, "email": ticket.requester_email,
                      "phone": ticket.requester_phone},
        "received_at": iso_utc(ticket.received_at),
        "registered_at": iso_utc(ticket.registered_at),
        "reaction_due": iso_utc(ticket.reaction_due),
        "resolution_due": iso_utc(ticket.resolution_due),
        "acknowledged_at": iso_utc(ticket.acknowledged_at),
        "resolved_at": iso_utc(ticket.resolved_at),
        "closed_at": iso_utc(ticket.closed_at),
        "reasons": json.loads(ticket.reasons),
        "notes": json.loads(ticket.notes),
        "follows_up": ticket.follows_up,
        "merged_into": ticket.merged_into,
        "tags": json.loads(ticket.tags),
        "assignee": ticket.assignee,
        "manager_cc": ticket.manager_cc,
        "messages": [
            {"id": m.id, "message_id": f"<{m.message_id}>" if m.message_id else None,
             "direction": m.direction, "kind": m.kind, "received_at": iso_utc(m.received_at),
             "text": m.body, **(details or {}).get(m.id or 0, {}),
             **({} if authentication is None or m.direction != "in" else
                {"authentication": authentication.get(m.input_id or 0)})}
            for m in messages
        ],
        **shown,
        "history": [{"at": iso_utc(e.at), "event": e.kind, "actor": e.actor,
                     **json.loads(e.details)} for e in history or []],
    }


_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
_MESSAGES = TicketMessage.__table__  # type: ignore[attr-defined]
_HISTORY = TicketEvent.__table__  # type: ignore[attr-defined]


# On the driver's cursor (see Prepared): they run for every event of every registration.
_TICKET_ROW = Prepared(sa_select(_TICKETS).where(_TICKETS.c.id == bindparam("id")))
_MESSAGE_ROWS = Prepared(sa_select(_MESSAGES).where(_MESSAGES.c.ticket_id == bindparam("id"))
                         .order_by(_MESSAGES.c.id))
_HISTORY_ROWS = Prepared(sa_select(_HISTORY).where(_HISTORY.c.ticket_id == bindparam("id"))
                         .order_by(_HISTORY.c.id))


def ticket_snapshot(session: Session, ticket_id: int) -> dict[str, Any] | None:
    """Ticket TICKET_ID as JSON, read inside the caller's transaction (what it is now).

    Rows on the driver's cursor, not ORM objects: this runs for every event of every
    registration and acknowledgement, and the ORM's (or even Core's) execution path cost
    several times the three small queries."""
    session.flush()  # the caller's ORM changes (a lifecycle event) are in the rows read
    connection = session.connection()
    by_id = {"id": ticket_id}
    tickets = _TICKET_ROW.rows(connection, by_id)
    if not tickets:
        return None
    # Rows carry the same attributes as the ORM objects ticket_json reads.
    return ticket_json(tickets[0], _MESSAGE_ROWS.rows(connection, by_id),
                       _HISTORY_ROWS.rows(connection, by_id))
