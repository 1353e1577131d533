"""Tickets: sequential numbers, registration with deadlines, and finding a message's ticket."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, update
from sqlmodel import Session, col

from gateway.customers import CustomerEntry
from gateway.models import Counter, Ticket, TicketMessage
from gateway.sla import deadlines
from parsers.model import Request
from rules.engine import Decision

REGISTERED = "registered"


_NEXT_NUMBER = (update(Counter).where(col(Counter.name) == "ticket")
                .values(value=col(Counter.value) + 1).returning(col(Counter.value)))


def next_ticket_number(session: Session, prefix: str) -> str:
    """The next number, gapless: the counter row is locked until this transaction ends."""
    value: int = session.connection().execute(_NEXT_NUMBER).scalar_one()
    return f"{prefix}{value:06d}"


def ticket_tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[({re.escape(prefix)}\d{{6,}})\]", re.IGNORECASE)


@dataclass(frozen=True)
class NewTicket:
    """What the rest of processing needs to know of a ticket just registered."""

    id: int
    number: str
    priority: str
    customer_id: str | None
    subject: str
    requester_name: str | None
    reaction_due: datetime
    resolution_due: datetime


_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
_MESSAGES = TicketMessage.__table__  # type: ignore[attr-defined]


def register(session: Session, *, request: Request, customer: CustomerEntry | None,
             decision: Decision, prefix: str, received_at: datetime, now: datetime,
             default_tier: str, notes: list[str],
             follows_up: str | None = None) -> NewTicket:
    """A new ticket in status registered, with its SLA deadlines computed from NOW.

    Written with a Core insert: the ORM unit of work cost more than everything else here.
    """
    tier = customer.tier if customer else None
    due = deadlines(now, tier or default_tier, decision.priority, decision.request_type)
    number = next_ticket_number(session, prefix)
    customer_id = customer.id if customer else None
    subject = request.subject or ""
    requester_name = request.sender.name if request.sender else None
    values: dict[str, object] = {
        "number": number,
        "channel": request.channel,
        "status": REGISTERED,
        "customer_id": customer_id,
        "tier": tier,
        "request_type": decision.request_type,
        "priority": decision.priority,
        "declared_priority": request.declared_priority,
        "subject": subject,
        "requester_name": requester_name,
        "requester_email": request.sender.address.lower() if request.sender else None,
        "requester_phone": request.phone,
        "received_at": received_at,
        "registered_at": now,
        "reaction_due": due.reaction_due,
        "resolution_due": due.resolution_due,
        "reasons": json.dumps(decision.reasons, ensure_ascii=False),
        "notes": json.dumps(notes, ensure_ascii=False),
        "follows_up": follows_up,
        "tags": json.dumps(decision.tags, ensure_ascii=False),
        "assignee": customer.engineer if customer and decision.assign_engineer else None,
        "manager_cc": customer.manager if customer and decision.copy_manager else None,
    }
    ticket_id = session.connection().execute(
        insert(_TICKETS).returning(_TICKETS.c.id), values).scalar_one()
    return NewTicket(ticket_id, number, decision.priority, customer_id, subject, requester_name,
                     due.reaction_due, due.resolution_due)


def message_row(ticket_id: int, *, direction: str, kind: str, message_id: str | None,
                at: datetime, body: str = "", input_id: int | None = None) -> dict[str, object]:
    return {"ticket_id": ticket_id, "input_id": input_id, "direction": direction, "kind": kind,
            "message_id": message_id, "received_at": at, "body": body}


def add_messages(session: Session, rows: list[dict[str, object]]) -> None:
    """Insert ticket messages, several in one statement."""
    session.connection().execute(insert(_MESSAGES), rows)
