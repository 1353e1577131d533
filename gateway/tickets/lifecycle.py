"""Lifecycle events of a ticket: resolved, closed, reopened, priority changed or proposed.

`apply_event` is what the CLI and `POST /api/v1/tickets/<number>/events` call: it returns the
ticket as CONTRACT.md's JSON (200), or raises TicketNotFound (404), EventRefused (409) or
EventInvalid (422, with the field that is wrong).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.clock import iso_utc
from gateway.sla.deadlines import schedule
from gateway.sla.policy import PRIORITIES, Priority
from gateway.store.db import transaction
from gateway.store.feed import publish
from gateway.store.models import (
    CLOSED,
    OPEN_STATUSES,
    REACTION_DECIDED,
    REACTION_LATE,
    REACTION_MET,
    REGISTERED,
    RESOLUTION_DECIDED,
    RESOLUTION_LATE,
    RESOLUTION_MET,
    RESOLVED,
    WAITING_CUSTOMER,
    Ticket,
)
from gateway.tickets.customer_wait import next_escalation, shifted, start_waiting, stop_waiting
from gateway.tickets.notices import (
    customer_address,
    enqueue_ticket_mail,
    first_message_id,
    record_event,
    ticket_language,
    ticket_tier,
)
from gateway.tickets.view import show_ticket

if TYPE_CHECKING:
    from gateway.tickets.context import Context

log = structlog.get_logger("gateway.lifecycle")

EventType = Literal["resolved", "closed", "reopened", "priority_changed", "priority_proposed",
                    "waiting_for_customer", "waiting_ended"]
# Why a priority changes: the seed's rules 2-4.
Basis = Literal["diagnosis", "customer_information", "declared_mismatch", "partial_restoration"]


class TicketNotFound(LookupError):
    """No ticket has that number (HTTP 404)."""


class EventRefused(Exception):
    """The event contradicts the ticket's state or the seed's rules (HTTP 409)."""


class EventInvalid(ValueError):
    """The event is malformed (HTTP 422); FIELD names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class TicketEventIn(BaseModel):
    """One event as the API and the CLI take it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: EventType
    priority: Priority | None = None
    reason: str | None = None
    basis: Basis = "diagnosis"
    customer_agreed: bool = False
    actor: str | None = None

    @model_validator(mode="after")
    def _priority_needs_value_and_reason(self) -> TicketEventIn:
        if self.type in ("priority_changed", "priority_proposed"):
            if self.priority is None:
                raise ValueError("priority: a priority change names the new priority")
            if not (self.reason or "").strip():
                raise ValueError("reason: the customer is told why the priority changes")
        return self


def parse_event(data: Any) -> TicketEventIn:
    """Validate an event payload; EventInvalid names the first wrong field."""
    try:
        return TicketEventIn.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if not field and ": " in message:
            field, _, message = message.partition(": ")
        raise EventInvalid(field, message) from None


@dataclass(frozen=True)
class Applied:
    ticket: dict[str, Any]
    enqueued: int


# Lowering from these priorities on partial restoration needs the customer's agreement.
_AGREEMENT_NEEDED_FROM = ("critical", "high")


def apply_event(engine: Engine, context: Context, number: str, event: TicketEventIn) -> Applied:
    """Apply EVENT to ticket NUMBER in one transaction; the ticket afterwards."""
    with transaction(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number.upper())
                              .with_for_update()).first()
        if ticket is None:
            raise TicketNotFound(number)
        enqueued = apply_to(session, ticket, event, context)
    shown = show_ticket(engine, ticket.number)
    assert shown is not None
    return Applied(shown, enqueued)


def apply_to(session: Session, ticket: Ticket, event: TicketEventIn, context: Context) -> int:
    """Apply EVENT to TICKET inside the caller's transaction; the messages queued."""
    now = context.clock.now()
    enqueued = 0
    assert ticket.id is not None
    status_before = ticket.status
    if ticket.status == WAITING_CUSTOMER and event.type in ("resolved", "closed",
                                                            "waiting_ended"):
        # The wait ends first, so the time waited is counted whatever comes next.
        waited_s = stop_waiting(ticket, now, context)
        record_event(session, ticket.id, "waiting_ended", now, event.actor, waited_s=waited_s,
                     resolution_due=ticket.resolution_due)
    if event.type == "waiting_for_customer":
        _require(ticket, (REGISTERED,), "wait for the customer on")
        start_waiting(ticket, now)
    elif event.type == "waiting_ended" and status_before != WAITING_CUSTOMER:
        raise EventRefused(f"{ticket.number} is not waiting for the customer: it is "
                           f"{ticket.status}")
    elif event.type == "resolved":
        _require(ticket, (REGISTERED,), "resolve")
        ticket.status, ticket.resolved_at, ticket.escalation_due = RESOLVED, now, None
        _decide(ticket, now)
    elif event.type == "closed":
        _require(ticket, (REGISTERED, RESOLVED), "close")
        ticket.status, ticket.closed_at, ticket.escalation_due = CLOSED, now, None
        _decide(ticket, now)
    elif event.type == "reopened":
        _require(ticket, (RESOLVED, CLOSED), "reopen")
        ticket.status, ticket.resolved_at, ticket.closed_at = REGISTERED, None, None
        ticket.sla_outcome &= ~RESOLUTION_DECIDED
        ticket.escalation_due = _next_escalation(ticket, context)
    details: dict[str, Any]
    if event.type == "waiting_ended":
        # Already recorded, with the time waited, when the wait was stopped.
        session.add(ticket)
        if ticket.status != status_before:
            publish(session, "ticket.status_changed", now, ticket_id=ticket.id,
                    actor=event.actor, reason=event.reason, status_before=status_before)
        return 0
    if event.type == "priority_changed":
        enqueued, details = _change_priority(session, ticket, event, context)
    elif event.type == "priority_proposed":
        enqueued, details = _propose_priority(session, ticket, event, context)
    else:
        details = {"reason": event.reason, "status": ticket.status}
    record_event(session, ticket.id, event.type, now, event.actor, **details)
    session.add(ticket)
    if event.type == "priority_changed":
        publish(session, "ticket.priority_changed", now, ticket_id=ticket.id,
                actor=event.actor, **details)
    elif ticket.status != status_before:
        publish(session, "ticket.status_changed", now, ticket_id=ticket.id, actor=event.actor,
                reason=event.reason, status_before=status_before)
    log.info("ticket.event", ticket=ticket.number, type=event.type, actor=event.actor,
             status=ticket.status, priority=ticket.priority)
    return enqueued


def _decide(ticket: Ticket, now: datetime) -> None:
    """Resolving (or closing an unresolved ticket) decides its resolution, and its reaction
    when none was recorded: the SLA report's bits."""
    assert ticket.reaction_due is not None and ticket.resolution_due is not None
    if not ticket.sla_outcome & RESOLUTION_DECIDED:
        ticket.sla_outcome |= RESOLUTION_MET if now <= ticket.resolution_due else RESOLUTION_LATE
    if not ticket.sla_outcome & REACTION_DECIDED:
        ticket.sla_outcome |= REACTION_MET if now <= ticket.reaction_due else REACTION_LATE


def _require(ticket: Ticket, statuses: tuple[str, ...], verb: str) -> None:
    if ticket.status not in statuses:
        raise EventRefused(f"cannot {verb} {ticket.number}: it is {ticket.status}")


def _next_escalation(ticket: Ticket, context: Context) -> datetime | None:
    return next_escalation(ticket, context)


def _change_priority(session: Session, ticket: Ticket, event: TicketEventIn,
                     context: Context) -> tuple[int, dict[str, Any]]:
    """The seed's rules: raise any time; lower from critical or high only with the customer's
    agreement, unless the customer declared a priority that diagnosis shows to be wrong.

    The number of messages queued (the customer's notice) and the history entry's details.
    """
    assert event.priority is not None and ticket.id is not None
    _require(ticket, (*OPEN_STATUSES, WAITING_CUSTOMER), "change the priority of")
    old, new = ticket.priority, event.priority
    if old == new:
        raise EventRefused(f"{ticket.number} is {old} already")
    lowering = PRIORITIES.index(new) > PRIORITIES.index(old)
    declared_wrong = event.basis == "declared_mismatch" and ticket.declared_priority == old
    if (lowering and old in _AGREEMENT_NEEDED_FROM and not event.customer_agreed
            and not declared_wrong):
        raise EventRefused(f"lowering {ticket.number} from {old} to {new} needs the customer's "
                           "agreement (customer_agreed)")
    assert ticket.registered_at is not None
    details = {"reason": event.reason, "basis": event.basis,
               "customer_agreed": event.customer_agreed, "from": old, "to": new,
               "resolution_due_before": iso_utc(ticket.resolution_due)}
    # From the registration time, with the new target; escalations start over.
    due = schedule(ticket.registered_at, ticket_tier(ticket, context), new, ticket.request_type,
                   context.policy)
    ticket.priority, ticket.proposed_priority = new, None
    ticket.reaction_due = due.reaction_due
    # Earlier waits for the customer still move the resolution clock.
    ticket.resolution_due = shifted(due.resolution_due, ticket, context) or due.resolution_due
    ticket.ack_at_risk, ticket.escalation_level = due.ack_at_risk, 0
    ticket.escalation_due = (None if ticket.status == WAITING_CUSTOMER
                             else shifted(due.escalation_due, ticket, context))
    if ticket.acknowledged_at is not None and ticket.sla_outcome & (REACTION_MET | REACTION_LATE):
        ticket.sla_outcome &= ~(REACTION_MET | REACTION_LATE)
        ticket.sla_outcome |= (REACTION_MET if ticket.acknowledged_at <= due.reaction_due
                               else REACTION_LATE)
    details["resolution_due"] = iso_utc(ticket.resolution_due)
    return _tell_customer(session, ticket, context, "priority_changed", old_priority=old,
                          reason=(event.reason or "").strip()), details


def _propose_priority(session: Session, ticket: Ticket, event: TicketEventIn,
                      context: Context) -> tuple[int, dict[str, Any]]:
    """Ask the customer to agree to a lower priority; their reply with an agreement word
    (see `agrees`) applies it."""
    assert event.priority is not None and ticket.id is not None
    _require(ticket, OPEN_STATUSES, "propose a priority for")
    if PRIORITIES.index(event.priority) <= PRIORITIES.index(ticket.priority):
        raise EventRefused(f"a proposal lowers the priority; {ticket.number} is "
                           f"{ticket.priority}")
    recipient = customer_address(ticket, context)
    if recipient is None:
        raise EventRefused(f"{ticket.number} has no customer address to ask")
    ticket.proposed_priority = event.priority
    enqueued = _tell_customer(session, ticket, context, "priority_proposal",
                              proposed_priority=event.priority,
                              reason=(event.reason or "").strip())
    return enqueued, {"reason": event.reason, "from": ticket.priority, "to": event.priority}


def _tell_customer(session: Session, ticket: Ticket, context: Context, template: str,
                   **extra: Any) -> int:
    """Queue a notice from TEMPLATE to the ticket's customer, in the thread of their request;
    the number queued (none when nobody may be written to)."""
    recipient = customer_address(ticket, context)
    if recipient is None or ticket.id is None:
        return 0
    now = context.clock.now()
    added = enqueue_ticket_mail(
        session, ticket, template=template, recipient=recipient,
        language=ticket_language(ticket, context), sender=context.settings.outgoing.sender,
        now=now, kind="notice", limits=context.settings.loops,
        dedup_key=(f"{template}:{ticket.id}:{ticket.priority}:{ticket.proposed_priority}:"
                   f"{now.isoformat()}"),
        in_reply_to=first_message_id(session, ticket), **extra)
    return 1 if added else 0


# Agreement and refusal in the first lines of a reply (quotes and signature already removed).
_REFUSAL = re.compile(r"\b(не\s+соглас\w*|возража\w*|против|нет|disagree\w*|"
                      r"(do\s*n[o']t|not)\s+(agree\w*|ok)|object\w*|no)\b", re.IGNORECASE)
_AGREEMENT = re.compile(r"\b(соглас\w*|не\s+возража\w*|да|подтвержда\w*|agree\w*|yes|ok|"
                        r"okay|confirm\w*|no\s+objection\w*)\b", re.IGNORECASE)


def agrees(reply_text: str) -> bool:
    """Whether a reply says yes (ru/en) to our proposal, in its first 300 characters."""
    head = reply_text.strip()[:300]
    without_double_negative = re.sub(r"не\s+возража\w*|no\s+(objection|problem)\w*", "да",
                                     head, flags=re.IGNORECASE)
    if _REFUSAL.search(without_double_negative):
        return False
    return bool(_AGREEMENT.search(head))


def accept_by_reply(session: Session, ticket: Ticket, reply_text: str, sender: str | None,
                    context: Context) -> int:
    """A customer's reply to a ticket with a pending priority proposal: when it agrees (and
    comes from the requester), the priority changes with the customer's agreement. The
    messages queued."""
    if (ticket.proposed_priority is None or ticket.status not in OPEN_STATUSES
            or not sender or sender.lower() != (ticket.requester_email or "").lower()
            or not agrees(reply_text)):
        return 0
    event = TicketEventIn.model_validate({
        "type": "priority_changed", "priority": ticket.proposed_priority,
        "reason": "agreed by the customer's reply", "basis": "partial_restoration",
        "customer_agreed": True, "actor": f"customer <{sender.lower()}>"})
    return apply_to(session, ticket, event, context)
