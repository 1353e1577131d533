"""Which ticket a message belongs to: its subject's ticket tag, else any Message-ID it shares."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlmodel import Session, col, select

from gateway.store.models import OutboxItem, ThreadId, Ticket
from gateway.store.prepared import Prepared, PreparedIn
from gateway.tickets.registration import ticket_tag_pattern
from gateway.tickets.thread_merge import choose, surviving
from parsers.model import Request

# Long References chains are cut to their newest ids: the root and the recent parents are
# what joins a thread, and a hostile header must not make one message cost thousands of rows.
MAX_CITED_IDS = 50
# A bounce without the returned Message-ID is matched to what we sent its recipient lately.
BOUNCE_LOOKBACK = timedelta(days=7)

_THREAD_IDS = ThreadId.__table__  # type: ignore[attr-defined]
_INSERT_THREAD_IDS = Prepared(insert(_THREAD_IDS))


# The tickets any of the ids belongs to: this runs for every input, and most find nothing.
_TICKETS_OF_IDS = PreparedIn(lambda ids: select(_THREAD_IDS.c.ticket_id).distinct().where(
    _THREAD_IDS.c.message_id.in_(ids)))


def thread_ids(request: Request) -> list[str]:
    """The message's own id and every id it cites, each once, own id first.

    A References cycle (A cites B, B cites A) is just a set of ids here: nothing walks it.
    """
    cited = [request.in_reply_to, *request.references[-MAX_CITED_IDS:]]
    if request.original_message_id:
        cited.append(request.original_message_id)
    ids = dict.fromkeys(i for i in (request.message_id, *cited) if i)
    return list(ids)


def find_ticket(session: Session, request: Request, prefix: str, links: str = "merge",
                now: datetime | None = None) -> Ticket | None:
    """The ticket REQUEST belongs to, or None when it starts a new one. A message that
    belongs to several live tickets merges or links them (LINKS, see thread_merge)."""
    if request.subject and (match := ticket_tag_pattern(prefix).search(request.subject)):
        ticket = session.exec(select(Ticket).where(Ticket.number == match.group(1).upper())).first()
        if ticket is not None:
            return surviving(session, ticket)
    ids = thread_ids(request)
    if ids:
        found = [row[0] for row in _TICKETS_OF_IDS.execute(session.connection(), ids).fetchall()]
        if len(found) == 1:
            return surviving(session, session.get_one(Ticket, found[0]))
        if found:
            tickets = [session.get_one(Ticket, ticket_id) for ticket_id in found]
            return choose(session, tickets, request.message_id, links,
                          now or datetime.now(UTC))
    if request.kind == "bounce" and request.failed_recipients:
        return _ticket_of_bounced(session, request.failed_recipients, request.date)
    return None


def _ticket_of_bounced(session: Session, recipients: list[str],
                       date: datetime | None) -> Ticket | None:
    """The ticket of the last message we sent to one of RECIPIENTS before the bounce."""
    query = (select(Ticket).join(OutboxItem, col(OutboxItem.ticket_id) == col(Ticket.id))
             .where(col(OutboxItem.recipient).in_([r.lower() for r in recipients])))
    if date is not None:
        query = query.where(col(OutboxItem.created_at) >= date - BOUNCE_LOOKBACK,
                            col(OutboxItem.created_at) <= date + timedelta(hours=1))
    return session.exec(query.order_by(col(OutboxItem.id).desc()).limit(1)).first()


def link_ids(session: Session, ticket_id: int, ids: Iterable[str]) -> None:
    """Remember IDS as the thread of a ticket just registered (it has none yet)."""
    rows = [{"ticket_id": ticket_id, "message_id": i[:998]} for i in dict.fromkeys(ids)]
    if rows:
        _INSERT_THREAD_IDS.executemany(session.connection(), rows)


def extend_thread(session: Session, ticket_id: int, request: Request) -> None:
    """Add REQUEST's ids to an existing ticket's thread, skipping those it has already."""
    ids = thread_ids(request)
    if not ids:
        return
    have = set(session.exec(select(ThreadId.message_id).where(
        ThreadId.ticket_id == ticket_id, col(ThreadId.message_id).in_(ids))).all())
    link_ids(session, ticket_id, [i for i in ids if i not in have])
