"""Tickets: sequential numbers, registration with deadlines, and finding a message's ticket."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from gateway.customers import CustomerEntry
from gateway.models import Counter, Ticket, TicketMessage
from gateway.sla import deadlines
from parsers.model import Request
from rules.engine import Decision

REGISTERED = "registered"


def next_ticket_number(session: Session, prefix: str) -> str:
    """The next number, gapless: the counter row is locked until this transaction ends."""
    statement = (update(Counter).where(col(Counter.name) == "ticket")
                 .values(value=col(Counter.value) + 1).returning(col(Counter.value)))
    value: int = session.execute(statement).scalar_one()
    return f"{prefix}{value:06d}"


def ticket_tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[({re.escape(prefix)}\d{{6,}})\]", re.IGNORECASE)


def find_ticket_for(session: Session, request: Request, prefix: str) -> Ticket | None:
    """The ticket REQUEST belongs to: by the tag in its subject, else by the ids it replies to."""
    if request.subject and (match := ticket_tag_pattern(prefix).search(request.subject)):
        ticket = session.exec(select(Ticket).where(Ticket.number == match.group(1).upper())).first()
        if ticket is not None:
            return ticket
    wanted = [i for i in (request.in_reply_to, *request.references) if i][-50:]
    if not wanted:
        return None
    return session.exec(
        select(Ticket).join(TicketMessage, col(TicketMessage.ticket_id) == col(Ticket.id))
        .where(col(TicketMessage.message_id).in_(wanted))
        .order_by(col(Ticket.id).desc()).limit(1)).first()


def register(session: Session, *, request: Request, customer: CustomerEntry | None,
             decision: Decision, prefix: str, received_at: datetime, now: datetime,
             default_tier: str) -> Ticket:
    """A new ticket in status registered, with its SLA deadlines computed from NOW."""
    tier = customer.tier if customer else None
    due = deadlines(now, tier or default_tier, decision.priority, decision.request_type)
    ticket = Ticket(
        number=next_ticket_number(session, prefix),
        channel=request.channel,
        status=REGISTERED,
        customer_id=customer.id if customer else None,
        tier=tier,
        request_type=decision.request_type,
        priority=decision.priority,
        declared_priority=request.declared_priority,
        subject=request.subject or "",
        requester_name=request.sender.name if request.sender else None,
        requester_email=request.sender.address.lower() if request.sender else None,
        requester_phone=request.phone,
        received_at=received_at,
        registered_at=now,
        reaction_due=due.reaction_due,
        resolution_due=due.resolution_due,
        reasons=json.dumps(decision.reasons, ensure_ascii=False),
    )
    session.add(ticket)
    session.flush()
    return ticket


def add_message(session: Session, ticket: Ticket, *, direction: str, kind: str,
                message_id: str | None, at: datetime, body: str = "",
                input_id: int | None = None) -> TicketMessage:
    assert ticket.id is not None
    message = TicketMessage(ticket_id=ticket.id, input_id=input_id, direction=direction,
                            kind=kind, message_id=message_id, received_at=at, body=body)
    session.add(message)
    return message


def add_note(ticket: Ticket, notes: Iterable[str]) -> None:
    ticket.notes = json.dumps([*json.loads(ticket.notes), *notes], ensure_ascii=False)
