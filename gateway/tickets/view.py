"""Tickets as CONTRACT.md's JSON, and the queries behind `tickets list/show`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.clock import iso_utc
from gateway.store.db import read_transaction
from gateway.store.models import Ticket, TicketEvent, TicketMessage


def ticket_json(ticket: Ticket, messages: list[TicketMessage],
                history: list[TicketEvent] | None = None) -> dict[str, Any]:
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
            {"message_id": f"<{m.message_id}>" if m.message_id else None,
             "direction": m.direction, "kind": m.kind, "received_at": iso_utc(m.received_at)}
            for m in messages
        ],
        "history": [{"at": iso_utc(e.at), "event": e.kind, "actor": e.actor,
                     **json.loads(e.details)} for e in history or []],
    }


def list_tickets(engine: Engine, *, status: str | None = None, customer: str | None = None,
                 since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first, every match unless LIMIT."""
    with read_transaction(engine) as session:
        query = select(Ticket).order_by(col(Ticket.id).desc())
        if status:
            query = query.where(Ticket.status == status)
        if customer:
            query = query.where(Ticket.customer_id == customer)
        if since:
            query = query.where(col(Ticket.received_at) >= since)
        if limit:
            query = query.limit(limit)
        tickets = session.exec(query).all()
        by_ticket: dict[int, list[TicketMessage]] = {}
        events: dict[int, list[TicketEvent]] = {}
        ids = [t.id for t in tickets]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for message in session.exec(select(TicketMessage)
                                        .where(col(TicketMessage.ticket_id).in_(chunk))
                                        .order_by(col(TicketMessage.id))):
                by_ticket.setdefault(message.ticket_id, []).append(message)
            for event in session.exec(select(TicketEvent)
                                      .where(col(TicketEvent.ticket_id).in_(chunk))
                                      .order_by(col(TicketEvent.id))):
                events.setdefault(event.ticket_id, []).append(event)
        return [ticket_json(t, by_ticket.get(t.id or 0, []), events.get(t.id or 0))
                for t in tickets]


def show_ticket(engine: Engine, number: str) -> dict[str, Any] | None:
    with read_transaction(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number.upper())).first()
        if ticket is None:
            return None
        messages = list(session.exec(select(TicketMessage)
                                     .where(TicketMessage.ticket_id == ticket.id)
                                     .order_by(col(TicketMessage.id))))
        history = list(session.exec(select(TicketEvent)
                                    .where(TicketEvent.ticket_id == ticket.id)
                                    .order_by(col(TicketEvent.id))))
        return ticket_json(ticket, messages, history)
