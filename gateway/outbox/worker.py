"""The transactional outbox: messages enqueued with the change that caused them, sent once."""

from __future__ import annotations

import asyncio
import contextlib
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

from gateway.clock import Clock
from gateway.outbox.chat_replies import CHAT_PREFIX, chat_reply
from gateway.outbox.mailer import Delivery, PermanentFailure, TemporaryFailure
from gateway.outbox.sent_journal import SentJournal, Taken
from gateway.store.db import Database, read_transaction, transaction
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
# Sends recorded together at most, and how long a record waits for more to finish.
RECORD_GROUP = 32
RECORD_WAIT_S = 0.05


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
    if values["recipient"].startswith(CHAT_PREFIX):
        # Mail to a chat's ticket goes to the chat: the same words, as the platform takes them.
        values = {**values, "message": chat_reply(values["message"], values["recipient"],
                                                  values["kind"])}
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


async def _gather_more(finished: list[Outcome], arrived: asyncio.Event, outstanding: int) -> None:
    """Wait up to RECORD_WAIT_S while FINISHED holds fewer than RECORD_GROUP outcomes and
    fewer than the OUTSTANDING ones still to record; ARRIVED is set as each one finishes."""
    deadline = asyncio.get_running_loop().time() + RECORD_WAIT_S
    while len(finished) < min(RECORD_GROUP, outstanding):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), left)
        arrived.clear()


class OutboxWorker:
    """Sends due items through a Delivery; woken when something is enqueued."""

    def __init__(self, db: Database, delivery: Delivery, clock: Clock, max_attempts: int,
                 batch: int = 64, retry_base_s: float = BACKOFF_BASE_S,
                 lease: timedelta = LEASE, journal: SentJournal | None = None) -> None:
        self._db = db
        self._delivery = delivery
        self._clock = clock
        self._max_attempts = max_attempts
        self._batch = batch
        self._retry_base_s = retry_base_s
        self._lease = lease
        self._journal = journal
        self._wake = asyncio.Event()
        # One batch at a time, so a caller waiting for "idle" also waits for sends in flight.
        self._busy = asyncio.Lock()
        # What the relay took and the database has not recorded yet, by outbox id. Kept here
        # as well as in the journal: with the disk full, neither the journal line nor the
        # record could be written, and each retry sent the acknowledgement once more.
        self._unrecorded: dict[int, Taken] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """Send one batch of due items; the number claimed."""
        async with self._busy:
            # Sends not yet recorded, ours or (in the journal) a killed process's: recorded
            # before anything else is sent; while that fails nothing is sent at all.
            if self._unrecorded:
                await self._record_taken(list(self._unrecorded.values()))
            if self._journal is not None and self._journal.has_entries():
                await self._record_journal()
            claimed = await self._db.run(claim_due, self._db.engine, self._clock.now(),
                                         self._batch, self._lease)
            if not claimed:
                return 0
            sent = await self._send_and_record(claimed)
            # Every send of the batch is in the database now: the journal can forget them.
            if self._journal is not None:
                self._journal.clear()
            return sent

    async def _record_taken(self, taken: list[Taken]) -> None:
        await self._db.run(record_outcomes, self._db.engine, [
            Outcome(Claimed(entry.outbox_id, entry.ticket_id, entry.kind, "", "", b"", 0),
                    at=entry.at) for entry in taken],
            self._clock.now(), self._max_attempts, self._retry_base_s)
        for entry in taken:
            self._unrecorded.pop(entry.outbox_id, None)
        log.info("outbox.unrecorded_recorded", count=len(taken))

    async def _record_journal(self) -> None:
        """Record as sent what the journal says the relay took (a kill came before the
        database record), each at the time it was taken."""
        assert self._journal is not None
        taken = self._journal.entries()
        if taken:
            await self._db.run(record_outcomes, self._db.engine, [
                Outcome(Claimed(entry.outbox_id, entry.ticket_id, entry.kind, "", "", b"", 0),
                        at=entry.at) for entry in taken],
                self._clock.now(), self._max_attempts, self._retry_base_s)
            log.info("outbox.journal_recorded", count=len(taken))
        self._journal.clear()

    async def _send_and_record(self, claimed: list[Claimed]) -> int:
        """Send CLAIMED concurrently; record each outcome as soon as the database can take it.

        A record is a group commit: the outcomes that arrived while the previous record was
        committing go together. With a journal, a record also waits up to RECORD_WAIT_S for
        RECORD_GROUP outcomes (or the batch's last): a record is a transaction whatever its
        size, and what a process killed meanwhile leaves sent and unrecorded is in the
        journal, recorded at the next start instead of sent again."""
        finished: list[Outcome] = []
        arrived = asyncio.Event()

        async def send(item: Claimed) -> None:
            try:
                outcome = await self._send(item)
            except Exception as error:  # a bug or an odd failure: retried like a 4xx
                log.error("outbox.send_error", outbox_id=item.id, error=str(error))
                outcome = Outcome(item, f"{type(error).__name__}: {error}")
            finished.append(outcome)
            arrived.set()

        sending = asyncio.gather(*(send(item) for item in claimed))
        try:
            recorded = 0
            while recorded < len(claimed):
                await arrived.wait()
                arrived.clear()
                if self._journal is not None:
                    await _gather_more(finished, arrived, len(claimed) - recorded)
                group = finished[:]
                del finished[:]
                await self._record(group)
                recorded += len(group)
        except BaseException:
            # Stopped, or the database stayed away: what is unrecorded goes again after its
            # lease, so nothing is lost by not waiting for the sends still in flight.
            sending.cancel()
            raise
        await sending
        return len(claimed)

    async def _record(self, outcomes: list[Outcome]) -> None:
        """Record OUTCOMES, retrying while the database is away (a restart, a failover): the
        messages are sent, and unrecorded they would be sent again once their lease expires."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lease.total_seconds() / 2
        delay = 0.1
        while True:
            try:
                await self._db.run(record_outcomes, self._db.engine, outcomes,
                                   self._clock.now(), self._max_attempts, self._retry_base_s)
                for outcome in outcomes:
                    self._unrecorded.pop(outcome.item.id, None)
                return
            except Exception as error:
                if loop.time() + delay > deadline:
                    raise
                log.warning("outbox.record_retry", count=len(outcomes), error=str(error))
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)

    async def _send(self, item: Claimed) -> Outcome:
        try:
            await self._delivery.send(item.sender, item.recipient, item.data)
            taken_at = self._clock.now()
            taken = self._unrecorded[item.id] = Taken(item.id, item.kind, item.ticket_id,
                                                      taken_at)
            if self._journal is not None:  # at once: the relay has it, whatever happens next
                try:
                    self._journal.append(taken)
                except OSError as error:
                    # The disk is full, say: still sent (the relay has it), and remembered
                    # here until recorded; a failure here used to mean "send it again".
                    log.error("outbox.journal_failed", outbox_id=item.id, error=str(error))
        except PermanentFailure as error:
            log.warning("outbox.permanent_failure", outbox_id=item.id, kind=item.kind,
                        ticket_id=item.ticket_id, attempts=item.attempts, error=str(error))
            return Outcome(item, str(error), permanent=True)
        except TemporaryFailure as error:
            # The last attempt allowed fails the message for good (record_outcomes agrees).
            if item.attempts >= self._max_attempts:
                log.warning("outbox.failed", outbox_id=item.id, kind=item.kind,
                            ticket_id=item.ticket_id, attempts=item.attempts, error=str(error))
            else:
                log.info("outbox.temporary_failure", outbox_id=item.id, kind=item.kind,
                         ticket_id=item.ticket_id, attempts=item.attempts, error=str(error))
            return Outcome(item, str(error))
        log.info("outbox.sent", outbox_id=item.id, kind=item.kind, ticket_id=item.ticket_id,
                 attempts=item.attempts)
        return Outcome(item, at=taken_at)

    async def run(self) -> None:
        """Deliver until cancelled; sleep until woken or the next retry is due."""
        while True:
            self._wake.clear()
            try:
                while await self.run_once():
                    pass
                due = await self._db.run(next_due, self._db.engine)
            except Exception as error:  # the database may be down; keep the worker alive
                log.error("outbox.worker_error", error=str(error))
                due = None
                timeout = 1.0  # try again soon, not in half a minute
            else:
                timeout = 30.0
            if due is not None:
                timeout = max(0.05, min(timeout, (due - self._clock.now()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
