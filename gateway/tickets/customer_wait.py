"""Waiting for the customer: the resolution clock stands still from when we ask until they
answer, and the deadline moves by the time waited (in its target's unit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gateway.sla.deadlines import escalation_instant
from gateway.sla.working_calendar import WorkingCalendar, add, between
from gateway.store.models import REGISTERED, WAITING_CUSTOMER, Ticket
from gateway.tickets.notices import ticket_tier

if TYPE_CHECKING:
    from gateway.tickets.context import Context


def start_waiting(ticket: Ticket, now: datetime) -> None:
    """TICKET waits for its customer from NOW: no resolution clock, no escalation."""
    ticket.status, ticket.paused_since, ticket.escalation_due = WAITING_CUSTOMER, now, None


def stop_waiting(ticket: Ticket, now: datetime, context: Context) -> int:
    """The wait is over at NOW: the time waited is added up, the resolution deadline and the
    next escalation move by it in the target's unit (working time for a working-hours
    target), and the ticket is worked on again. The seconds waited this time."""
    assert ticket.paused_since is not None and ticket.resolution_due is not None
    since, due = _aware(ticket.paused_since), _aware(ticket.resolution_due)
    waited_s = max(0, int((now - since).total_seconds()))
    calendar = _resolution_calendar(ticket, context)
    shift = between(since, now, calendar) if now > since else timedelta(0)
    ticket.paused_s += waited_s
    ticket.paused_due_s += int(shift.total_seconds())
    ticket.resolution_due = add(due, shift, calendar)
    ticket.status, ticket.paused_since = REGISTERED, None
    ticket.escalation_due = next_escalation(ticket, context)
    return waited_s


def next_escalation(ticket: Ticket, context: Context) -> datetime | None:
    """When the ticket's next escalation threshold is reached, its waits included."""
    assert ticket.registered_at is not None
    instant = escalation_instant(ticket.registered_at, ticket_tier(ticket, context),
                                 ticket.priority, ticket.request_type, ticket.escalation_level,
                                 context.policy)
    return shifted(instant, ticket, context)


def shifted(instant: datetime | None, ticket: Ticket, context: Context) -> datetime | None:
    """INSTANT of the resolution clock moved by the ticket's earlier waits."""
    if instant is None or not ticket.paused_due_s:
        return instant
    return add(instant, timedelta(seconds=ticket.paused_due_s),
               _resolution_calendar(ticket, context))


def _aware(instant: datetime) -> datetime:
    # SQLite gives stored instants back naive, in UTC.
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _resolution_calendar(ticket: Ticket, context: Context) -> WorkingCalendar | None:
    targets = context.policy.targets_for(ticket_tier(ticket, context), ticket.request_type,
                                         ticket.priority)
    return targets.resolution.calendar
