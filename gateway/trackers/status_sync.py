"""A tracker's status changes come back as our lifecycle events (resolved, closed, reopened).

Each change is applied in its own commit together with the link's new remote status, so a
change seen twice (the next look starts where this one ended, inclusive) does nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy import Engine, func
from sqlmodel import select

from gateway.store.db import read_transaction, transaction
from gateway.store.models import (
    CLOSED,
    PENDING_REGISTRATION,
    REGISTERED,
    RESOLVED,
    Ticket,
    TrackerCursor,
    TrackerLink,
)
from gateway.tickets.context import Context
from gateway.tickets.lifecycle import EventRefused, TicketEventIn, apply_to
from gateway.trackers.interface import RemoteChange, StatusMeaning

log = structlog.get_logger("gateway.trackers")


def cursor_of(engine: Engine, tracker: str, now: datetime) -> datetime:
    """Where the next look starts: when the last one began, else the first link's creation
    (NOW when there is none)."""
    with read_transaction(engine) as session:
        cursor = session.get(TrackerCursor, tracker)
        if cursor is not None:
            return datetime.fromisoformat(cursor.changed_since)
        first = session.exec(select(func.min(TrackerLink.created_at))
                             .where(TrackerLink.tracker == tracker)).first()
    return first or now


def event_for(meaning: StatusMeaning, status: str) -> str | None:
    """The lifecycle event that brings a ticket in STATUS to the tracker's MEANING."""
    if meaning == "resolved" and status == REGISTERED:
        return "resolved"
    if meaning == "rejected" and status in (REGISTERED, RESOLVED):
        return "closed"
    if meaning == "active" and status in (RESOLVED, CLOSED):
        return "reopened"
    return None


def apply_change(engine: Engine, tracker: str, change: RemoteChange,
                 meaning: Callable[[str], StatusMeaning], context: Context) -> int | None:
    """Apply one remote change to its linked ticket; the messages the lifecycle queued, or
    None when it must wait: a ticket still waiting for the intake window cannot be resolved
    yet, so its link keeps the old status and its registration applies the change (the
    connector compares then)."""
    actor = f"tracker:{tracker}"
    with transaction(engine) as session:
        link = session.exec(select(TrackerLink).where(TrackerLink.tracker == tracker)
                            .where(TrackerLink.remote_id == change.remote_id)
                            .with_for_update()).first()
        if link is None or link.remote_status == change.status:
            return 0
        ticket = session.exec(select(Ticket).where(Ticket.number == link.ticket_number)
                              .with_for_update()).first()
        if ticket is not None and ticket.status == PENDING_REGISTRATION:
            log.info("tracker.change_waits", tracker=tracker, ticket=ticket.number,
                     remote_status=change.status)
            return None
        before = meaning(link.remote_status)
        link.remote_status, link.updated_at = change.status, context.clock.now()
        session.add(link)
        if before == change.meaning:
            return 0  # new -> open, say: nothing for our ticket
        event_type = event_for(change.meaning, ticket.status) if ticket else None
        if ticket is None or event_type is None:
            return 0
        event = TicketEventIn.model_validate({
            "type": event_type, "actor": actor,
            "reason": f"{change.status} in {tracker} (ticket {change.remote_id})"})
        try:
            # A refusal comes before any change to the ticket, so the commit stays clean.
            enqueued = apply_to(session, ticket, event, context)
        except EventRefused as error:
            # The link still learns the status; the ticket stays as our rules allow.
            log.warning("tracker.change_refused", tracker=tracker, ticket=ticket.number,
                        remote_status=change.status, error=str(error))
            return 0
        log.info("tracker.change_applied", tracker=tracker, ticket=ticket.number,
                 remote_id=change.remote_id, remote_status=change.status, applied=event_type)
        return enqueued


def save_cursor(engine: Engine, tracker: str, look_began: datetime) -> None:
    with transaction(engine, flush_to_disk=False) as session:
        session.merge(TrackerCursor(tracker=tracker, changed_since=look_began.isoformat()))
