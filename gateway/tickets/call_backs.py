"""Missed calls as SLA requests: the call back is their reaction, and an overdue one alerts."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import exists
from sqlmodel import Session, col, select

from gateway.clock import iso_utc
from gateway.store.models import (
    REACTION_DECIDED,
    REACTION_LATE,
    REACTION_MET,
    REGISTERED,
    OutboxItem,
    Ticket,
)
from gateway.tickets.context import Context
from gateway.tickets.notices import enqueue_ticket_mail, record_event

log = structlog.get_logger("gateway.monitor")

# Not a NO_ACKNOWLEDGEMENT_NOTE: the reaction clock runs, and a call back stops it.
CALL_BACK_NOTE = ("no e-mail acknowledgement (no contact address given or on file): "
                  "the call back is the reaction")


def reaction_by_call(session: Session, ticket: Ticket, at: datetime) -> None:
    """An answered call (the call back) on a phone ticket nobody acknowledged is its reaction;
    an e-mail ticket's reaction stays its acknowledgement."""
    if (ticket.channel != "phone" or ticket.acknowledged_at is not None
            or ticket.reaction_due is None):
        return
    ticket.acknowledged_at = at
    if not ticket.sla_outcome & REACTION_DECIDED:
        ticket.sla_outcome |= REACTION_MET if at <= ticket.reaction_due else REACTION_LATE
    session.add(ticket)
    record_event(session, int(ticket.id or 0), "reaction_by_call", at)


def alert_call_backs_at_risk(session: Session, context: Context, now: datetime,
                             limit: int) -> tuple[int, int]:
    """Phone tickets with no acknowledgement to send, half their reaction time gone and not
    called back: tell the duty address once. (alerted, enqueued)."""
    has_ack = exists().where(col(OutboxItem.ticket_id) == col(Ticket.id)).where(
        col(OutboxItem.kind) == "acknowledgement")
    tickets = session.exec(select(Ticket).where(Ticket.status == REGISTERED)
                           .where(Ticket.channel == "phone")
                           .where(col(Ticket.acknowledged_at).is_(None))
                           .where(col(Ticket.ack_alerted_at).is_(None))
                           .where(col(Ticket.ack_at_risk) <= now).where(~has_ack)
                           .limit(limit)).all()
    duty, enqueued = context.policy.escalation.duty_address, 0
    for ticket in tickets:
        assert ticket.id is not None
        phone = ticket.requester_phone or "unknown number"
        error = f"no acknowledgement can be sent: call the customer back at {phone}"
        log.warning("sla.call_back_at_risk", ticket=ticket.number,
                    reaction_due=iso_utc(ticket.reaction_due), phone=phone)
        if duty and enqueue_ticket_mail(
                session, ticket, template="ack_at_risk", recipient=duty,
                language=context.policy.escalation.language,
                sender=context.settings.outgoing.sender, now=now,
                dedup_key=f"ack-risk:{ticket.id}", kind="alert", to_customer=False,
                limits=context.settings.loops, subject_note="CALL BACK AT RISK: ",
                customer=ticket.customer_id or "-", requester=phone, error=error):
            enqueued += 1
        ticket.ack_alerted_at = now
        session.add(ticket)
        record_event(session, ticket.id, "call_back_at_risk", now, alerted=duty or None)
    return len(tickets), enqueued
