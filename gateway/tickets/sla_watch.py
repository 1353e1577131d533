"""The SLA clock's periodic step: registration when the intake window opens, acknowledgements
at risk, and escalation notices before resolution deadlines."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Engine, exists
from sqlmodel import Session, col, select

from gateway.clock import iso_utc
from gateway.portal.links import ticket_link
from gateway.sla.deadlines import escalation_instant, service_working
from gateway.sla.working_calendar import next_open
from gateway.store.db import transaction
from gateway.store.feed import publish
from gateway.store.models import (
    FAILED,
    PENDING,
    PENDING_REGISTRATION,
    REGISTERED,
    SENDING,
    WAITING_CUSTOMER,
    OutboxItem,
    Ticket,
)
from gateway.tickets.call_backs import alert_call_backs_at_risk
from gateway.tickets.context import Context
from gateway.tickets.customer_wait import next_escalation, shifted
from gateway.tickets.notices import (
    customer_address,
    enqueue_ticket_mail,
    first_message_id,
    record_event,
    ticket_language,
    ticket_tier,
)
from gateway.tickets.report_mail import deliver_due_reports

log = structlog.get_logger("gateway.monitor")

# Tickets handled per kind and step: a backlog is worked off over a few steps.
STEP_LIMIT = 200
# What the step has done since the process started, for logs and metrics.
COUNTERS: collections.Counter[str] = collections.Counter()


@dataclass
class StepResult:
    registered: int = 0
    escalated: int = 0
    postponed: int = 0
    at_risk: int = 0
    enqueued: int = 0

    def __bool__(self) -> bool:
        return bool(self.registered or self.escalated or self.postponed or self.at_risk)


def sla_step(engine: Engine, context: Context) -> StepResult:
    """Do what the SLA clock says is due at the context's clock's now, in one transaction."""
    now = context.clock.now()
    result = StepResult()
    with transaction(engine, flush_to_disk=False) as session:
        _register_due(session, context, now, result)
        _alert_acknowledgements_at_risk(session, context, now, result)
        alerted, enqueued = alert_call_backs_at_risk(session, context, now, STEP_LIMIT)
        result.at_risk += alerted
        result.enqueued += enqueued
        _escalate(session, context, now, result)
    # Mailed reports build the report from committed data: after the step's own commit.
    if context.settings.reports:
        result.enqueued += deliver_due_reports(engine, context, now)
    for name in ("registered", "escalated", "at_risk"):
        COUNTERS[name] += getattr(result, name)
    return result


def _register_due(session: Session, context: Context, now: datetime,
                  result: StepResult) -> None:
    """Tickets waiting for the intake window whose registration time has come: registered,
    acknowledged; their reaction clock started at that time."""
    due = session.exec(select(Ticket).where(Ticket.status == PENDING_REGISTRATION)
                       .where(col(Ticket.registered_at) <= now)
                       .order_by(col(Ticket.registered_at), col(Ticket.id))
                       .limit(STEP_LIMIT).with_for_update(skip_locked=True)).all()
    for ticket in due:
        assert ticket.id is not None
        # A rule may have said it waits for the customer from its registration.
        ticket.status = REGISTERED if ticket.paused_since is None else WAITING_CUSTOMER
        session.add(ticket)
        record_event(session, ticket.id, "registered", now,
                     registered_at=ticket.registered_at, reaction_due=ticket.reaction_due)
        publish(session, "ticket.status_changed", now, ticket_id=ticket.id,
                reason="the intake window opened",
                status_before=PENDING_REGISTRATION)
        recipient = customer_address(ticket, context)
        if recipient is not None and enqueue_ticket_mail(
                session, ticket, template="acknowledgement", recipient=recipient,
                language=ticket_language(ticket, context), sender=context.settings.outgoing.sender,
                now=now, dedup_key=f"ack:ticket:{ticket.id}", kind="acknowledgement",
                limits=context.settings.loops, in_reply_to=first_message_id(session, ticket),
                send_by=ticket.reaction_due,
                ticket_link=ticket_link(context.settings.portal, ticket.number, context.clock)):
            result.enqueued += 1
        result.registered += 1
        log.info("ticket.registered", ticket=ticket.number, waited_since=iso_utc(
            ticket.received_at), registered_at=iso_utc(ticket.registered_at))


def _alert_acknowledgements_at_risk(session: Session, context: Context, now: datetime,
                                    result: StepResult) -> None:
    """Half the reaction window gone and the acknowledgement still failing: tell the duty
    address (and the logs), once per ticket."""
    failing = exists().where(col(OutboxItem.ticket_id) == col(Ticket.id)).where(
        col(OutboxItem.kind) == "acknowledgement").where(
        col(OutboxItem.status).in_([PENDING, SENDING, FAILED])).where(
        col(OutboxItem.last_error).is_not(None))
    tickets = session.exec(select(Ticket).where(Ticket.status == REGISTERED)
                           .where(col(Ticket.acknowledged_at).is_(None))
                           .where(col(Ticket.ack_alerted_at).is_(None))
                           .where(col(Ticket.ack_at_risk) <= now).where(failing)
                           .limit(STEP_LIMIT)).all()
    duty = context.policy.escalation.duty_address
    numbers = [t.number for t in tickets]
    for ticket in tickets:
        assert ticket.id is not None
        error = session.exec(select(OutboxItem.last_error)
                             .where(OutboxItem.ticket_id == ticket.id)
                             .where(OutboxItem.kind == "acknowledgement")
                             .order_by(col(OutboxItem.id).desc()).limit(1)).first()
        log.warning("sla.acknowledgement_at_risk", ticket=ticket.number,
                    reaction_due=iso_utc(ticket.reaction_due), error=error)
        if duty and enqueue_ticket_mail(
                session, ticket, template="ack_at_risk", recipient=duty,
                language=context.policy.escalation.language,
                sender=context.settings.outgoing.sender, now=now,
                dedup_key=f"ack-risk:{ticket.id}", kind="alert", to_customer=False,
                limits=context.settings.loops,
                subject_note="ACK AT RISK: ", customer=ticket.customer_id or "-",
                requester=ticket.requester_email or "-", error=error or "-",
                also_at_risk=", ".join(n for n in numbers if n != ticket.number)):
            result.enqueued += 1
        ticket.ack_alerted_at = now
        session.add(ticket)
        record_event(session, ticket.id, "acknowledgement_at_risk", now, error=error,
                     alerted=duty or None)
        publish(session, "sla.at_risk", now, ticket_id=ticket.id, deadline="reaction",
                due=ticket.reaction_due, error=error)
        result.at_risk += 1


def _escalate(session: Session, context: Context, now: datetime, result: StepResult) -> None:
    """Escalation thresholds passed: one notice for the highest one reached, sent only while
    the service works for that ticket (else postponed to when it next does)."""
    policy, limits = context.policy, context.settings.loops
    thresholds = policy.escalation.thresholds_pct
    tickets = session.exec(select(Ticket).where(Ticket.status == REGISTERED)
                           .where(col(Ticket.escalation_due) <= now)
                           .order_by(col(Ticket.escalation_due))
                           .limit(STEP_LIMIT).with_for_update(skip_locked=True)).all()
    for ticket in tickets:
        assert ticket.id is not None and ticket.registered_at is not None
        tier = ticket_tier(ticket, context)
        if not service_working(now, tier, ticket.priority, ticket.request_type, policy):
            service = policy.targets_for(tier, ticket.request_type, ticket.priority).service
            assert service is not None
            ticket.escalation_due = next_open(now, service)
            session.add(ticket)
            result.postponed += 1
            continue
        level = reached = ticket.escalation_level
        # Instants on the resolution clock, moved by the ticket's waits for the customer.
        while level < len(thresholds) and (instant := shifted(escalation_instant(
                ticket.registered_at, tier, ticket.priority, ticket.request_type, level,
                policy), ticket, context)) is not None and instant <= now:
            level += 1
        ticket.escalation_level = level
        ticket.escalation_due = next_escalation(ticket, context)
        session.add(ticket)
        if level == reached:
            continue
        threshold = thresholds[level - 1]
        recipients = _escalation_recipients(ticket, context)
        log.warning("sla.escalation", ticket=ticket.number, threshold_pct=threshold,
                    resolution_due=iso_utc(ticket.resolution_due), recipients=recipients)
        for recipient in recipients:
            if enqueue_ticket_mail(
                    session, ticket, template="escalation", recipient=recipient,
                    language=policy.escalation.language, sender=context.settings.outgoing.sender,
                    now=now, dedup_key=(f"escalation:{ticket.id}:{threshold:g}:"
                                        f"{iso_utc(ticket.resolution_due)}:{recipient}"),
                    kind="escalation", to_customer=False, limits=limits,
                    subject_note=f"ESCALATION {threshold:g}%: ", threshold=f"{threshold:g}",
                    customer=ticket.customer_id or "-", registered_at=ticket.registered_at):
                result.enqueued += 1
        record_event(session, ticket.id, "escalation", now, threshold_pct=threshold,
                     recipients=recipients)
        # The last threshold of 100 % or more is the resolution deadline passing.
        publish(session, "sla.breached" if threshold >= 100 else "sla.at_risk", now,
                ticket_id=ticket.id, deadline="resolution", due=ticket.resolution_due,
                threshold_pct=threshold)
        result.escalated += 1


def _escalation_recipients(ticket: Ticket, context: Context) -> list[str]:
    """The customer's engineer and manager (by contact name or address) and the duty address,
    as the policy's `notify` lists them."""
    escalation = context.policy.escalation
    customer = context.directory.get(ticket.customer_id)
    found: list[str] = []
    for role in escalation.notify:
        if role == "duty":
            who = escalation.duty_address or None
        else:
            name = getattr(customer, role, None) if customer else None
            who = escalation.contacts.get(name, name) if name else None
        if who and "@" in who and who not in found:
            found.append(who)
    return found
