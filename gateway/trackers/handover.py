"""The database side of a tracker handover: what is owed, what to send, and its record.

A tracker follows the event feed as a subscription of its own ("tracker:<name>"): its
deliveries are planned in the commit that wrote each event, leased while sent, retried with
backoff and never given up. The tracker ticket's id is recorded in the same commit that marks
the delivery done, so a retry finds it instead of creating another.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, and_, case, exists, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from gateway.config.tracker_settings import TrackerSettings
from gateway.store.db import read_transaction, transaction
from gateway.store.models import (
    DELIVERED,
    PENDING,
    SENDING,
    Delivery,
    FeedEvent,
    Input,
    InputBody,
    Subscription,
    Ticket,
    TicketMessage,
    TrackerLink,
)
from gateway.tickets.content import read_content
from gateway.trackers.interface import FileOut, MessageOut, TicketOut
from parsers.attachments import email_attachments

log = structlog.get_logger("gateway.trackers")

# The events a tracker follows (the rest it does not need).
TRACKER_EVENTS = ("ticket.registered", "ticket.message_added", "ticket.priority_changed",
                  "ticket.status_changed")
# A subscription name no `[[subscriptions]]` entry can have (they may not contain ":").
SUBSCRIPTION_PREFIX = "tracker:"
_TABLE = Delivery.__table__  # type: ignore[attr-defined]


def subscription_of(tracker: str) -> str:
    return f"{SUBSCRIPTION_PREFIX}{tracker}"


def sync_trackers(engine: Engine, trackers: Sequence[TrackerSettings]) -> None:
    """Mirror the configured trackers as subscriptions (the feed plans their deliveries); one
    no longer configured stops getting new ones."""
    names = {subscription_of(t.name) for t in trackers}
    with transaction(engine) as session:
        for row in session.exec(select(Subscription).where(
                col(Subscription.name).startswith(SUBSCRIPTION_PREFIX))):
            if row.name not in names:
                row.active = False
                session.add(row)
        for name in names:
            session.merge(Subscription(name=name, events=f",{','.join(TRACKER_EVENTS)},",
                                       active=True))


@dataclass(frozen=True)
class Owed:
    """One claimed delivery: which event of which ticket, and the how-manyth attempt."""

    id: int
    event_id: int
    event_type: str
    ticket_number: str | None
    attempts: int
    actor: str | None


def claim(engine: Engine, tracker: str, now: datetime, lease: timedelta,
          limit: int = 1) -> list[Owed]:
    """Lease the tracker's due deliveries whose ticket has no earlier one owed (in order per
    ticket), and those whose lease ran out (their sender died)."""
    name = subscription_of(tracker)
    earlier = aliased(_TABLE)
    owed_before = exists().where(
        earlier.c.subscription == _TABLE.c.subscription,
        earlier.c.ticket_number == _TABLE.c.ticket_number,
        earlier.c.id < _TABLE.c.id, earlier.c.status.in_([PENDING, SENDING]))
    with transaction(engine, flush_to_disk=False) as session:
        connection = session.connection()
        rows = connection.execute(
            sa_select(_TABLE.c.id, _TABLE.c.event_id, _TABLE.c.attempts,
                      _TABLE.c.ticket_number)
            .where(_TABLE.c.subscription == name)
            .where(or_(and_(_TABLE.c.status == PENDING, _TABLE.c.next_attempt_at <= now),
                       and_(_TABLE.c.status == SENDING, _TABLE.c.lease_until < now)))
            .where(~owed_before).order_by(_TABLE.c.id).limit(limit)
            .with_for_update(skip_locked=True)).all()
        if not rows:
            return []
        for row in rows:
            connection.execute(update(_TABLE).where(_TABLE.c.id == row.id).values(
                status=SENDING, attempts=row.attempts + 1, lease_until=now + lease))
        events = {e.id: e for e in session.exec(
            select(FeedEvent).where(col(FeedEvent.id).in_([r.event_id for r in rows])))}
    owed = []
    for row in rows:
        event = events[row.event_id]
        actor = _actor_of(event.data)
        owed.append(Owed(row.id, row.event_id, event.type, row.ticket_number,
                         row.attempts + 1, actor))
    return owed


def _actor_of(data: str) -> str | None:
    actor = json.loads(data).get("details", {}).get("actor")
    return str(actor) if actor else None


@dataclass(frozen=True)
class Plan:
    """What the tracker should have of one ticket: the ticket itself, our link if any, and
    the later messages not yet handed over (with their row ids)."""

    ticket: TicketOut
    status: str
    first_message_id: int
    link: TrackerLink | None
    messages: list[tuple[int, MessageOut | None]] = field(default_factory=list)


def _files_of(session: Session, message: TicketMessage) -> list[FileOut]:
    if message.input_id is None:
        return []
    row = session.exec(select(Input.channel, InputBody.raw)
                       .join(InputBody, col(InputBody.input_id) == col(Input.id))
                       .where(Input.id == message.input_id)).first()
    if row is None:
        return []
    channel, raw = row
    # E-mail: only the attachments (the text is stored already, and the daemon does not
    # load the full mail parser); phone and web: our own envelope.
    files = email_attachments(raw) if channel == "email" else read_content(raw, channel).attachments
    return [FileOut(f.filename or f"attachment-{f.position}", f.content_type, f.data)
            for f in files]


def message_marker(number: str, message_id: int) -> str:
    """Unique to one message of ours; it rides in the tracker message's subject."""
    return f"(intake {number} message {message_id})"


def plan(engine: Engine, tracker: str, number: str, messages_as: str) -> Plan | None:
    """The handover of ticket NUMBER as of now; None when there is no such ticket."""
    with read_transaction(engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).first()
        if ticket is None:
            return None
        link = session.get(TrackerLink, (tracker, number))
        rows = list(session.exec(select(TicketMessage).where(TicketMessage.ticket_id == ticket.id)
                                 .order_by(col(TicketMessage.id))))
        first = next((m for m in rows if m.direction == "in"), rows[0] if rows else None)
        first_id = first.id if first is not None and first.id is not None else 0
        out = TicketOut(
            number=ticket.number, subject=ticket.subject or "", priority=ticket.priority,
            requester_email=ticket.requester_email, requester_name=ticket.requester_name,
            requester_phone=ticket.requester_phone,
            text=first.body if first is not None else "",
            reaction_due=ticket.reaction_due, resolution_due=ticket.resolution_due,
            # The first message's files are read only while the ticket is still to create.
            attachments=_files_of(session, first) if first is not None and link is None else [])
        done = max(first_id, link.last_message_id if link else 0)
        later: list[tuple[int, MessageOut | None]] = []
        for message in rows:
            assert message.id is not None
            if message.id <= done:
                continue
            if message.direction != "in":
                # Our own mail (acknowledgements, notices): RT has no use for it.
                later.append((message.id, None))
                continue
            # A customer's reply joins the requester's thread; a bounce or a call event is
            # for the engineers only.
            visibility = messages_as if message.kind in ("request", "reply") else "comment"
            marker = message_marker(ticket.number, message.id)
            later.append((message.id, MessageOut(
                marker=marker, subject=f"[{ticket.number}] {ticket.subject or ''} {marker}",
                text=message.body, visibility=visibility,  # type: ignore[arg-type]
                attachments=_files_of(session, message))))
        return Plan(out, ticket.status, first_id, link, later)


@dataclass(frozen=True)
class Outcome:
    """What one attempt achieved: the link as it now stands (None: nothing to record) and
    the error in words (None: done)."""

    item: Owed
    link: dict[str, Any] | None
    error: str | None


def backoff(attempts: int, base_s: float, cap_s: float) -> timedelta:
    """Exponential with jitter: about base, 2 base, 4 base ... up to the cap."""
    ceiling = min(cap_s, base_s * 2 ** max(0, attempts - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def record(engine: Engine, tracker: TrackerSettings, outcomes: Sequence[Outcome],
           now: datetime) -> None:
    """In one commit: each link as it stands, and each delivery done or due again later (a
    tracker's deliveries are never given up)."""
    # Flushed to disk: the link is what keeps a second tracker ticket from being made.
    with transaction(engine) as session:
        connection = session.connection()
        for outcome in outcomes:
            if outcome.link is not None and outcome.item.ticket_number is not None:
                save_link(session, tracker.name, outcome.item.ticket_number, now,
                          **outcome.link)
            item = outcome.item
            values: dict[str, Any]
            if outcome.error is None:
                values = {"status": DELIVERED, "delivered_at": now, "last_error": None}
            else:
                values = {"status": PENDING, "last_error": outcome.error,
                          "next_attempt_at": now + backoff(item.attempts, tracker.retry_base_s,
                                                           tracker.retry_cap_s)}
                log.warning("tracker.retry", tracker=tracker.name, event_id=item.event_id,
                            ticket=item.ticket_number, attempts=item.attempts,
                            error=outcome.error)
            connection.execute(update(_TABLE).where(_TABLE.c.id == item.id)
                               .where(_TABLE.c.status == SENDING)
                               .where(_TABLE.c.attempts == item.attempts)
                               .values(lease_until=None, **values))


def save_link(session: Session, tracker: str, number: str, now: datetime, *, remote_id: str,
              remote_status: str, last_message_id: int) -> None:
    """Insert or update the link (a message counter only moves forward)."""
    link = session.get(TrackerLink, (tracker, number), with_for_update=True)
    if link is None:
        session.add(TrackerLink(tracker=tracker, ticket_number=number, remote_id=remote_id,
                                remote_status=remote_status, last_message_id=last_message_id,
                                created_at=now, updated_at=now))
        return
    link.remote_id, link.remote_status = remote_id, remote_status
    link.last_message_id = max(link.last_message_id, last_message_id)
    link.updated_at = now
    session.add(link)


def backlog(engine: Engine) -> dict[str, tuple[int, int]]:
    """Per tracker: deliveries owed, and of those the ones already failed at least once."""
    with read_transaction(engine) as session:
        rows = session.connection().execute(
            sa_select(_TABLE.c.subscription, func.count(),
                      func.sum(case((_TABLE.c.last_error.is_not(None), 1), else_=0)))
            .where(_TABLE.c.subscription.startswith(SUBSCRIPTION_PREFIX))
            .where(_TABLE.c.status.in_([PENDING, SENDING]))
            .group_by(_TABLE.c.subscription)).all()
    return {name.removeprefix(SUBSCRIPTION_PREFIX): (int(n), int(failed or 0))
            for name, n, failed in rows}
