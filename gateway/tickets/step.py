"""What the mail and phone steps share: the input row, the rules' decision, the acknowledgement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from gateway.config.customers import CustomerEntry
from gateway.outbox.compose import (
    TicketFacts,
    render_acknowledgement,
    render_mail,
    safe_address,
    sender_parts,
)
from gateway.outbox.table import enqueue
from gateway.sla.deadlines import DEFAULT_CALENDAR
from gateway.sla.working_calendar import is_working_time
from gateway.store.models import PENDING_REGISTRATION, PROCESSED, RECEIVED
from gateway.tickets.context import Context
from gateway.tickets.registration import NewTicket
from parsers.model import Request
from rules.engine import Decision, evaluate
from rules.facts import Sender


class Held(Exception):
    """An outcome, not an error: the input waits for a human decision."""


@dataclass
class Pending:
    """An input row as processing reads it, and the status it ends the transaction with.

    A plain object instead of the ORM's: the ORM's identity map and unit of work cost more
    per input than the statements do; processing writes every outcome of a chunk at once.
    """

    id: int
    source: str
    received_at: datetime
    attempts: int
    status: str = RECEIVED
    outcome: str | None = None
    last_error: str | None = None
    ticket_id: int | None = None
    processed_at: datetime | None = None
    authentication: str | None = None  # JSON, gateway/intake/sender_auth.py


def decide(request: Request, context: Context, received_at: datetime,
            customer: CustomerEntry | None = None) -> Decision:
    """The rules' decision on REQUEST (a reply is judged on what it adds, like a request)."""
    if customer is None and request.sender is not None:
        customer = context.directory.match_email(request.sender.address)
    return evaluate(request, context.ruleset,
                    Sender(customer.id, customer.tier) if customer else None,
                    is_working_time(received_at, DEFAULT_CALENDAR))



def enqueue_acknowledgement(session: Session, ticket: NewTicket, request: Request,
                             decision: Decision, recipient: str, language: str,
                             context: Context, now: datetime, input_id: int,
                             look_first: bool) -> str | None:
    """Queue the acknowledgement (or, for a ticket pending registration, the courtesy notice);
    its Message-ID, or None when one was queued before."""
    facts = TicketFacts(
        number=ticket.number, subject=ticket.subject, priority=ticket.priority,
        reaction_due=ticket.reaction_due, resolution_due=ticket.resolution_due,
        language=language, requester_name=ticket.requester_name, requester_email=recipient,
        in_reply_to=request.message_id, references=request.references,
        priority_change=(decision.declared, decision.change_reason_in(language) or "")
        if decision.declared and decision.change_reason else None,
    )
    sender = context.settings.outgoing.sender
    pending = ticket.status == PENDING_REGISTRATION
    if pending:
        ack = render_mail("pending_registration", facts, sender, now,
                          registered_at=ticket.registered_at)
    else:
        ack = render_acknowledgement(facts, sender, now)
    # Keyed by the input, so a replayed input can never produce a second acknowledgement.
    added = enqueue(session, {
        "dedup_key": f"{'pending' if pending else 'ack'}:input:{input_id}",
        "ticket_id": ticket.id, "kind": "notice" if pending else "acknowledgement",
        "sender": safe_address(sender_parts(sender)[1]) or "", "recipient": recipient,
        "message_id": ack.message_id, "message": ack.data,
        # The courtesy notice is due now; an acknowledgement by the reaction deadline.
        "send_by": now if pending else ticket.reaction_due,
        "next_attempt_at": now, "created_at": now}, look_first=look_first)
    return ack.message_id if added else None



def finish(item: Pending, ticket_id: int | None, outcome: str, now: datetime) -> None:
    item.status = PROCESSED
    item.outcome = outcome
    item.last_error = None
    item.ticket_id = ticket_id
    item.processed_at = now
