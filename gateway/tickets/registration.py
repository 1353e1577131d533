"""Tickets: sequential numbers, registration with deadlines, and finding a message's ticket."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import insert, update
from sqlmodel import Session, col

from gateway.config.customers import CustomerEntry
from gateway.sla.deadlines import intake_open, registration_time, schedule
from gateway.sla.policy import Policy
from gateway.store.models import (
    NO_ACKNOWLEDGEMENT,
    PENDING_REGISTRATION,
    REGISTERED,
    WAITING_CUSTOMER,
    Counter,
    Ticket,
    TicketMessage,
)
from gateway.store.prepared import Prepared
from parsers.model import Request
from rules.engine import Decision

# How a ticket's notes say that nobody is to be written to about it (a no-reply sender ...).
NO_ACKNOWLEDGEMENT_NOTE = "no acknowledgement"


_NEXT_NUMBER = Prepared(update(Counter).where(col(Counter.name) == "ticket")
                        .values(value=col(Counter.value) + 1).returning(col(Counter.value)))


def next_ticket_number(session: Session, prefix: str) -> str:
    """The next number, gapless: the counter row is locked until this transaction ends."""
    value: int = _NEXT_NUMBER.execute(session.connection()).fetchone()[0]
    return f"{prefix}{value:06d}"


def ticket_tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[({re.escape(prefix)}\d{{6,}})\]", re.IGNORECASE)


@dataclass(frozen=True)
class NewTicket:
    """What the rest of processing needs to know of a ticket just registered."""

    id: int
    number: str
    status: str
    priority: str
    customer_id: str | None
    subject: str
    requester_name: str | None
    registered_at: datetime
    reaction_due: datetime
    resolution_due: datetime


_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
_MESSAGES = TicketMessage.__table__  # type: ignore[attr-defined]
# On the driver's cursor: they run for every registration.
_INSERT_TICKET = Prepared(insert(_TICKETS).returning(_TICKETS.c.id))
_INSERT_MESSAGES = Prepared(insert(_MESSAGES))


def register(session: Session, *, request: Request, customer: CustomerEntry | None,
             decision: Decision, prefix: str, received_at: datetime, now: datetime,
             default_tier: str, notes: list[str], policy: Policy,
             follows_up: str | None = None) -> NewTicket:
    """A new ticket with its SLA deadlines.

    Received while the tier's intake window is open, it is registered as of RECEIVED_AT (the
    arrival, however late it is processed). Received outside it, it is registered when the
    window next opens: pending_registration until then (the deadlines count from that
    instant), or registered at once when that instant has passed already (processing late).
    Written with a Core insert: the ORM unit of work cost more than everything else here.
    """
    tier = customer.tier if customer else None
    clock_tier = tier or default_tier
    if received_at.tzinfo is None:  # SQLite gives stored instants back naive, in UTC
        received_at = received_at.replace(tzinfo=UTC)
    # The clocks start at arrival, not at processing: a backlog or a retry must not move them.
    registered_at = (received_at if intake_open(received_at, clock_tier, policy)
                     else registration_time(received_at, clock_tier, policy))
    status = REGISTERED if registered_at <= now else PENDING_REGISTRATION
    due = schedule(registered_at, clock_tier, decision.priority, decision.request_type, policy)
    # A rule said we need the customer's answer first: the resolution clock stands still
    # from registration until they reply (gateway/tickets/customer_wait.py).
    waiting = decision.wait_for_customer
    if waiting and status == REGISTERED:
        status = WAITING_CUSTOMER
    number = next_ticket_number(session, prefix)
    customer_id = customer.id if customer else None
    subject = request.subject or ""
    requester_name = request.sender.name if request.sender else None
    values: dict[str, object] = {
        "number": number,
        "channel": request.channel,
        "status": status,
        "customer_id": customer_id,
        "tier": tier,
        "request_type": decision.request_type,
        "priority": decision.priority,
        "declared_priority": decision.declared or request.declared_priority,
        "subject": subject,
        "requester_name": requester_name,
        "requester_email": request.sender.address.lower() if request.sender else None,
        "requester_phone": request.phone,
        "received_at": received_at,
        "registered_at": registered_at,
        **due.columns(),
        **({"paused_since": registered_at, "escalation_due": None} if waiting else {}),
        "report_day": report_day(received_at, policy),
        # A ticket nobody is acknowledged for has no reaction to count.
        "sla_outcome": NO_ACKNOWLEDGEMENT if any(
            n.startswith(NO_ACKNOWLEDGEMENT_NOTE) for n in notes) else 0,
        "reasons": json.dumps(decision.reasons, ensure_ascii=False),
        "notes": json.dumps(notes, ensure_ascii=False),
        "follows_up": follows_up,
        "tags": json.dumps(decision.tags, ensure_ascii=False),
        "assignee": customer.engineer if customer and decision.assign_engineer else None,
        "manager_cc": customer.manager if customer and decision.copy_manager else None,
    }
    ticket_id: int = _INSERT_TICKET.execute(session.connection(), values).fetchone()[0]
    return NewTicket(ticket_id, number, status, decision.priority, customer_id, subject,
                     requester_name, registered_at, due.reaction_due, due.resolution_due)


def report_day(received_at: datetime, policy: Policy) -> int:
    """The day of receipt in the report's zone as YYYYMMDD (the SLA report's day)."""
    local = received_at.astimezone(ZoneInfo(policy.report_zone))
    return local.year * 10000 + local.month * 100 + local.day


def message_row(ticket_id: int, *, direction: str, kind: str, message_id: str | None,
                at: datetime, body: str = "", input_id: int | None = None) -> dict[str, object]:
    return {"ticket_id": ticket_id, "input_id": input_id, "direction": direction, "kind": kind,
            "message_id": message_id, "received_at": at, "body": body}


def add_messages(session: Session, rows: list[dict[str, object]]) -> None:
    """Insert ticket messages, several in one statement."""
    _INSERT_MESSAGES.executemany(session.connection(), rows)
