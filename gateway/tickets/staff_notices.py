"""The people the rules name on a ticket (its dedicated engineer, the manager copied) are told."""

from __future__ import annotations

import json

import structlog
from sqlmodel import Session, col, select

from gateway.store.models import Ticket, TicketMessage
from gateway.tickets.context import Context
from gateway.tickets.notices import add_note, enqueue_ticket_mail

log = structlog.get_logger("gateway.notices")

# The customer's words in the notice, cut here: the ticket holds the rest.
TEXT_CHARS = 2000


def tell_named_people(session: Session, ticket_id: int, context: Context) -> int:
    """One notice to each person a rule put on ticket TICKET_ID (address from the policy's
    escalation.contacts, or the name itself when it is an address), once per ticket; staff
    mail, so the customer's rate limits neither apply nor count it. The number queued."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or not (ticket.assignee or ticket.manager_cc):
        return 0
    escalation = context.policy.escalation
    text = session.exec(select(TicketMessage.body).where(TicketMessage.ticket_id == ticket_id)
                        .where(TicketMessage.direction == "in")
                        .order_by(col(TicketMessage.id)).limit(1)).first() or ""
    told: set[str] = set()
    queued = 0
    for role, name in (("engineer", ticket.assignee), ("manager", ticket.manager_cc)):
        if not name:
            continue
        address = escalation.contacts.get(name, name)
        if "@" not in address:
            add_note(ticket, f"{role} {name} not told: no address in escalation.contacts")
            session.add(ticket)
            log.warning("notice.no_address", ticket=ticket.number, role=role, person=name)
            continue
        if address.lower() in told:
            continue
        told.add(address.lower())
        if enqueue_ticket_mail(
                session, ticket, template="assignment", recipient=address,
                language=escalation.language, sender=context.settings.outgoing.sender,
                now=context.clock.now(), dedup_key=f"assignment:{ticket_id}:{address.lower()}",
                kind="assignment", to_customer=False, limits=context.settings.loops,
                subject_note="ASSIGNED: " if role == "engineer" else "FYI: ", role=role,
                customer=ticket.customer_id or "-", requester=ticket.requester_email or "-",
                why="; ".join(json.loads(ticket.reasons)) or "-",
                text=text[:TEXT_CHARS] + ("…" if len(text) > TEXT_CHARS else "")):
            queued += 1
            log.info("notice.assignment", ticket=ticket.number, role=role, person=name)
    return queued
