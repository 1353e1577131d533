"""A message that joins an existing ticket: replies, auto-replies and bounces of our mail."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from sqlmodel import Session, select

from gateway.sla.policy import PRIORITIES
from gateway.store.feed import publish
from gateway.store.models import CLOSED, OPEN_STATUSES, RESOLVED, Ticket, TicketMessage
from gateway.tickets.lifecycle import TicketEventIn, apply_to
from gateway.tickets.mail_loops import mark_undeliverable
from gateway.tickets.mail_threads import extend_thread
from gateway.tickets.notices import add_note, ticket_language
from gateway.tickets.registration import add_messages, message_row
from parsers.model import Request
from rules.engine import Decision

if TYPE_CHECKING:
    from gateway.tickets.context import Context

log = structlog.get_logger("gateway.replies")


def is_closed(ticket: Ticket) -> bool:
    return ticket.status == CLOSED


def add_to_ticket(session: Session, ticket: Ticket, request: Request, *, input_id: int | None,
                  received_at: datetime, now: datetime, decision: Decision | None,
                  context: Context | None, refusal: str | None = None) -> str:
    """Append REQUEST to TICKET and apply what it tells us; the input's outcome sentence.

    CONTEXT is None only where no policy applies (threading checked on its own). REFUSAL says
    why the reply may not change the ticket ([trust]): it is then kept as a note only.
    """
    ticket_id = int(ticket.id or 0)
    lock_ticket(session, ticket)
    kind = "reply" if request.kind == "normal" else request.kind
    add_messages(session, [message_row(
        ticket_id, direction="in", kind=kind, message_id=request.message_id, at=received_at,
        body=request.reply_text or request.text, input_id=input_id)])
    extend_thread(session, ticket_id, request)
    publish(session, "ticket.message_added", now, ticket_id=ticket_id, input_id=input_id,
            kind=kind)
    outcome = f"added to {ticket.number} as {kind}"
    if kind == "bounce":
        outcome += _record_bounce(session, ticket, request, now)
    elif kind == "reply" and refusal is not None:
        add_note(ticket, f"{now.isoformat()}: unauthenticated reply"
                         f" <{request.message_id or '?'}> not counted (no reopening, priority"
                         f" change or agreement): {refusal}")
        outcome += ", unauthenticated: kept as a note"
        log.info("reply.unauthenticated", ticket=ticket.number, reason=refusal)
    elif kind == "reply" and context is not None:
        if ticket.status in (RESOLVED, CLOSED):
            apply_to(session, ticket, TicketEventIn(
                type="reopened", actor="customer", reason="the customer replied"), context)
            outcome += ", reopened"
        if decision is not None:
            outcome += _maybe_raise(session, ticket, decision, context)
    session.add(ticket)
    log.info("input.threaded", kind=kind, ticket=ticket.number)
    return outcome


def lock_ticket(session: Session, ticket: Ticket) -> None:
    """Lock TICKET's row for this transaction and re-read it (PostgreSQL; SQLite has one
    writer at a time). Two replies to one ticket processed at once, by two workers or two
    instances, read the same priority: a "high" reply then overwrote a "critical" raise
    committed meanwhile and moved the deadline later. Now the second waits for the first and
    decides on what it committed; notes and reasons are not lost either."""
    session.exec(select(Ticket).where(Ticket.id == ticket.id).with_for_update()
                 .execution_options(populate_existing=True)).one()


def _maybe_raise(session: Session, ticket: Ticket, decision: Decision, context: Context) -> str:
    """Raise the ticket's priority when the reply's own assessment is higher; never lower it.

    Through the lifecycle, as any priority change: new deadlines from the registration time,
    the history entry, and the customer told why.
    """
    old, new = ticket.priority, decision.priority
    if (ticket.status not in OPEN_STATUSES or old not in PRIORITIES
            or PRIORITIES.index(new) >= PRIORITIES.index(old)):
        return ""
    # The customer reads the reason in their language and the table's words; the ticket's own
    # history keeps the whole trace for the people who work on it.
    language = ticket_language(ticket, context)
    told = ("новые сведения в вашем письме: " if language == "ru"
            else "new information from the customer: ") + decision.why_in(language)
    apply_to(session, ticket, TicketEventIn(
        type="priority_changed", priority=new, basis="customer_information", actor="rules",
        reason=told), context)
    why = "; ".join(decision.reasons) or "the details in the reply"
    reasons = json.loads(ticket.reasons or "[]")
    reasons.append(f"raised from {old} to {new} by the customer's reply: {why}")
    ticket.reasons = json.dumps(reasons, ensure_ascii=False)
    log.info("ticket.priority_raised", ticket=ticket.number, old=old, new=new)
    return f", priority raised from {old} to {new}"


def _record_bounce(session: Session, ticket: Ticket, request: Request, now: datetime) -> str:
    """A bounce of our own mail: its failed recipients get no more automatic messages."""
    ours = _bounced_message_is_ours(session, int(ticket.id or 0), request.original_message_id)
    if not ours or not request.failed_recipients:
        return ""
    if not request.bounce_permanent:
        # A full mailbox, a policy refusal or a delay: the address may work tomorrow.
        note = f"temporary delivery failure to {', '.join(request.failed_recipients)}"
        add_note(ticket, f"{now.isoformat()}: {note}; the address is not blocked")
        return f"; {note}, not blocked"
    reason = f"bounce of our message to {', '.join(request.failed_recipients)}"
    added = mark_undeliverable(session, request.failed_recipients, reason, ticket.id, now)
    add_note(ticket, f"{now.isoformat()}: {reason}; no more automatic mail to it")
    log.info("contact.undeliverable", addresses=added, ticket=ticket.number)
    return f"; {', '.join(request.failed_recipients)} marked undeliverable"


def _bounced_message_is_ours(session: Session, ticket_id: int, original: str | None) -> bool:
    """Did the bounce return one of our messages? Unknown original: matched by recipient."""
    if original is None:
        # find_ticket only matches such a bounce by what we sent to its failed recipient.
        return True
    return session.exec(select(TicketMessage.id).where(
        TicketMessage.ticket_id == ticket_id, TicketMessage.direction == "out",
        TicketMessage.message_id == original).limit(1)).first() is not None
