"""The outbox table: a message enqueued with the change that caused it, claimed when due,
its outcome recorded."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, bindparam, case, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from gateway.store.db import read_transaction, transaction
from gateway.store.feed import publish
from gateway.store.models import (
    FAILED,
    PENDING,
    REACTION_DECIDED,
    REACTION_LATE,
    REACTION_MET,
    SENDING,
    SENT,
    OutboxItem,
    Ticket,
)
from gateway.store.prepared import Prepared

log = structlog.get_logger("gateway.outbox")


LEASE = timedelta(minutes=5)
BACKOFF_BASE_S = 15.0
BACKOFF_CAP_S = 3600.0


_OUTBOX = OutboxItem.__table__  # type: ignore[attr-defined]
# On the driver's cursor: they run for every acknowledgement.
_INSERT_OUTBOX = Prepared(insert(_OUTBOX))
_OUTBOX_KEY_EXISTS = Prepared(select(_OUTBOX.c.id).where(_OUTBOX.c.dedup_key == bindparam("key")))


def enqueue(session: Session, values: dict[str, Any], look_first: bool = True) -> bool:
    """Add an outbox row unless one with its dedup key exists; True when added.

    Without LOOK_FIRST a duplicate key raises IntegrityError (the unique constraint), for
    callers that redo their work with LOOK_FIRST when that happens.
    """
    connection = session.connection()
    if look_first:
        exists = _OUTBOX_KEY_EXISTS.execute(connection, {"key": values["dedup_key"]}).fetchone()
        if exists is not None:
            return False
    _INSERT_OUTBOX.execute(connection, {"status": PENDING, "attempts": 0, **values})
    return True


@dataclass(frozen=True)
class Claimed:
    id: int
    ticket_id: int | None
    kind: str
    sender: str
    recipient: str
    data: bytes
    attempts: int  # including this one


@dataclass(frozen=True)
class Outcome:
    item: Claimed
    error: str | None = None
    permanent: bool = False
    # When the relay took it (a send); None: the time of the record.
    at: datetime | None = None


def claim_due(engine: Engine, now: datetime, limit: int,
              lease: timedelta = LEASE) -> list[Claimed]:
    """Lease up to LIMIT due items to this worker; an expired lease (a crash) is due again."""
    table = _OUTBOX
    with transaction(engine, flush_to_disk=False) as session:
        connection = session.connection()
        rows = connection.execute(
            sa_select(table.c.id, table.c.ticket_id, table.c.kind, table.c.sender,
                   table.c.recipient, table.c.message, table.c.attempts)
            .where(or_(table.c.status == PENDING,
                       (table.c.status == SENDING) & (table.c.lease_until < now)))
            .where(table.c.next_attempt_at <= now)
            # Earliest deadline first: acknowledgements by their ticket's reaction_due.
            .order_by(func.coalesce(table.c.send_by, table.c.next_attempt_at), table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)).all()
        if not rows:
            return []
        connection.execute(update(table).where(table.c.id.in_([r.id for r in rows]))
                           .values(status=SENDING, lease_until=now + lease,
                                   attempts=table.c.attempts + 1))
        return [Claimed(r.id, r.ticket_id, r.kind, r.sender, r.recipient, r.message,
                        r.attempts + 1) for r in rows]


def next_due(engine: Engine) -> datetime | None:
    """When the earliest pending item is due, for the worker's sleep."""
    with read_transaction(engine) as session:
        return session.exec(
            select(OutboxItem.next_attempt_at).where(OutboxItem.status == PENDING)
            .order_by(col(OutboxItem.next_attempt_at)).limit(1)).first()


def backoff(attempts: int, base_s: float = BACKOFF_BASE_S) -> timedelta:
    """Exponential with full jitter, capped: 15 s, 30 s, 1 min ... 1 h (for a 15 s base)."""
    ceiling = min(BACKOFF_CAP_S, base_s * 2 ** max(0, attempts - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
_MARK_SENT = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("item_id"))
              .values(status=SENT, sent_at=bindparam("at"), last_error=None, lease_until=None))
# The reaction is decided when the relay takes the acknowledgement: met, or late (a miss in
# the SLA report); a ticket acknowledged before keeps its first time.
_MARK_ACKNOWLEDGED = (
    update(_TICKETS).where(_TICKETS.c.id == bindparam("ticket"))
    .where(_TICKETS.c.acknowledged_at.is_(None))
    .values(acknowledged_at=bindparam("at"), sla_outcome=case(
        (_TICKETS.c.sla_outcome.op("&")(REACTION_DECIDED) == 0,
         _TICKETS.c.sla_outcome.op("|")(case(
             (_TICKETS.c.reaction_due >= bindparam("at"), REACTION_MET), else_=REACTION_LATE))),
        else_=_TICKETS.c.sla_outcome)))


def record_outcomes(engine: Engine, outcomes: Sequence[Outcome], now: datetime,
                    max_attempts: int, retry_base_s: float = BACKOFF_BASE_S) -> None:
    """Mark each claimed item sent (at the time the relay took it), due again later, or
    failed for good; one transaction, one statement per kind of change."""
    sent = [{"item_id": o.item.id, "at": o.at or now} for o in outcomes if o.error is None]
    acknowledged = [{"ticket": o.item.ticket_id, "at": o.at or now} for o in outcomes
                    if o.error is None and o.item.kind == "acknowledgement"
                    and o.item.ticket_id is not None]
    with transaction(engine, flush_to_disk=False) as session:
        connection = session.connection()
        if sent:
            connection.execute(_MARK_SENT, sent)
        for outcome in outcomes:
            if outcome.error is None:
                continue
            if outcome.permanent or outcome.item.attempts >= max_attempts:
                values: dict[str, Any] = {"status": FAILED}
            else:
                values = {"status": PENDING,
                          "next_attempt_at": now + backoff(outcome.item.attempts, retry_base_s)}
            connection.execute(update(_OUTBOX).where(_OUTBOX.c.id == outcome.item.id).values(
                last_error=outcome.error, lease_until=None, **values))
            if values["status"] == FAILED and outcome.item.ticket_id is not None:
                _note_not_sent(connection, outcome, now)
        if acknowledged:
            # Only a ticket's first acknowledgement is news for the feed.
            first = set(connection.execute(
                sa_select(_TICKETS.c.id)
                .where(_TICKETS.c.id.in_([a["ticket"] for a in acknowledged]))
                .where(_TICKETS.c.acknowledged_at.is_(None))).scalars())
            connection.execute(_MARK_ACKNOWLEDGED, acknowledged)
            for outcome in outcomes:
                ticket_id = outcome.item.ticket_id
                if (ticket_id in first and outcome.error is None
                        and outcome.item.kind == "acknowledgement"):
                    first.discard(ticket_id)
                    publish(session, "sla.acknowledged", now, ticket_id=ticket_id,
                            acknowledged_at=outcome.at or now)


def _note_not_sent(connection: Connection, outcome: Outcome, now: datetime) -> None:
    """Say in the ticket's notes that its mail failed for good, and why (a relay without
    SMTPUTF8 for an internationalised address, say): the outbox is not where people look."""
    notes = connection.execute(sa_select(_TICKETS.c.notes).where(
        _TICKETS.c.id == outcome.item.ticket_id)).scalar_one_or_none()
    listed = json.loads(notes or "[]")
    listed.append(f"{now.isoformat()}: {outcome.item.kind} to {outcome.item.recipient} "
                  f"not sent: {outcome.error}")
    connection.execute(update(_TICKETS).where(_TICKETS.c.id == outcome.item.ticket_id)
                       .values(notes=json.dumps(listed, ensure_ascii=False)))
