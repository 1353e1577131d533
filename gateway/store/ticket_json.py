"""A ticket as CONTRACT.md's JSON, from its rows: what the API, the CLI and the feed show."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session

from gateway.clock import iso_utc
from gateway.store.models import Ticket, TicketEvent, TicketMessage


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


def ticket_snapshot(session: Session, ticket_id: int) -> dict[str, Any] | None:
    """Ticket TICKET_ID as JSON, read inside the caller's transaction (what it is now).

    Core rows, not ORM objects: this runs for every event of every registration, and the
    ORM's identity map and loading cost several times the three small queries."""
    session.flush()  # the caller's ORM changes (a lifecycle event) are in the rows read
    connection = session.connection()
    ticket = connection.execute(sa_select(_TICKETS).where(_TICKETS.c.id == ticket_id)).first()
    if ticket is None:
        return None
    messages = connection.execute(sa_select(_MESSAGES).where(_MESSAGES.c.ticket_id == ticket_id)
                                  .order_by(_MESSAGES.c.id)).all()
    history = connection.execute(sa_select(_HISTORY).where(_HISTORY.c.ticket_id == ticket_id)
                                 .order_by(_HISTORY.c.id)).all()
    # Rows carry the same attributes as the ORM objects ticket_json reads.
    return ticket_json(ticket, messages, history)  # type: ignore[arg-type]
