"""Tickets as CONTRACT.md's JSON, and the queries behind `tickets list/show`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.store.db import read_transaction
from gateway.store.models import Input, Ticket, TicketEvent, TicketMessage
from gateway.store.ticket_json import ticket_json
from gateway.tickets.content import message_details


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


def show_ticket(engine: Engine, number: str, *, full: bool = False) -> dict[str, Any] | None:
    """One ticket with what its messages say (sender, new text, attachments; with FULL the
    whole original text too), or None."""
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
        inputs = [m.input_id for m in messages if m.input_id is not None]
        authentication = {int(i or 0): json.loads(a) for i, a in session.exec(
            select(Input.id, Input.authentication).where(col(Input.id).in_(inputs))) if a}
        return ticket_json(ticket, messages, history, message_details(session, messages, full),
                           authentication)
