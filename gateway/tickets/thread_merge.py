"""When one message belongs to two tickets: merge the younger into the older, or link them.

Without this, mail arriving out of order split one conversation: two replies to a message we
had not seen yet registered two tickets, and the message joining them went to the newest.
Merging makes the grouping the same whatever the order of arrival.
"""

from __future__ import annotations

import json
from datetime import datetime

import structlog
from sqlalchemy import update
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from gateway.store.models import (
    CLOSED,
    MERGED,
    Input,
    ThreadId,
    Ticket,
    TicketEvent,
    TicketMessage,
)

log = structlog.get_logger("gateway.processing")
# A chain of merges is short; the bound only guards against a cycle written by hand.
_MAX_HOPS = 20


def _note(ticket: Ticket, text: str) -> None:
    notes = json.loads(ticket.notes or "[]")
    if text not in notes:
        notes.append(text)
        ticket.notes = json.dumps(notes, ensure_ascii=False)


def surviving(session: Session, ticket: Ticket) -> Ticket:
    """TICKET, or the ticket it was merged into (followed to the end)."""
    for _ in range(_MAX_HOPS):
        if ticket.status != MERGED or not ticket.merged_into:
            return ticket
        into = session.exec(_by_number(ticket.merged_into)).first()
        if into is None:
            return ticket
        ticket = into
    return ticket


def _by_number(number: str) -> SelectOfScalar[Ticket]:
    return select(Ticket).where(Ticket.number == number)


def choose(session: Session, found: list[Ticket], message_id: str | None, policy: str,
           now: datetime) -> Ticket:
    """The ticket a message that belongs to all of FOUND joins (merging them under "merge").

    Closed tickets stay as they are (a follow-up shares its closed predecessor's ids): the
    live ones are joined, the oldest first; with none live, the newest ticket.
    """
    tickets = list({t.id: t for t in (surviving(session, t) for t in found)}.values())
    live = sorted((t for t in tickets if t.status not in (CLOSED, MERGED)),
                  key=lambda t: (t.received_at, t.id or 0))
    if not live:
        return max(tickets, key=lambda t: t.id or 0)
    older, younger = live[0], live[1:]
    via = f"<{message_id}>" if message_id else "a message"
    for other in younger:
        if policy == "merge":
            merge(session, other, older, via, now)
        else:
            _note(older, f"linked with {other.number}: {via} belongs to both")
            _note(other, f"linked with {older.number}: {via} belongs to both")
            log.info("ticket.linked", ticket=older.number, other=other.number)
    return older


def merge(session: Session, younger: Ticket, older: Ticket, via: str, now: datetime) -> None:
    """YOUNGER's messages, inputs and thread ids become OLDER's; YOUNGER stays findable by
    its number with status merged, its history and a note pointing to OLDER."""
    young_id, old_id = int(younger.id or 0), int(older.id or 0)
    for model in (ThreadId, TicketMessage, Input):
        table = model.__table__  # type: ignore[union-attr]
        session.execute(update(table).where(table.c.ticket_id == young_id)
                        .values(ticket_id=old_id))
    younger.status, younger.merged_into = MERGED, older.number
    younger.escalation_due = None
    _note(younger, f"merged into {older.number}: {via} belongs to both")
    _note(older, f"{younger.number} merged into this ticket: {via} belongs to both")
    for ticket, other in ((older, younger), (younger, older)):
        session.add(TicketEvent(ticket_id=int(ticket.id or 0), at=now, kind="merged",
                                actor="threading", details=json.dumps(
                                    {"merged": younger.number, "into": older.number,
                                     "via": via, "other": other.number})))
    session.add_all([younger, older])
    session.flush()
    log.info("ticket.merged", ticket=older.number, merged=younger.number)
