"""The transactional outbox: messages enqueued with the change that caused them, sent once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

import structlog

from gateway.clock import Clock
from gateway.outbox.mailer import Delivery, PermanentFailure, TemporaryFailure
from gateway.outbox.sent_journal import SentJournal, Taken
from gateway.outbox.table import (
    BACKOFF_BASE_S,
    LEASE,
    Claimed,
    Outcome,
    claim_due,
    next_due,
    record_outcomes,
)
from gateway.store.db import Database

log = structlog.get_logger("gateway.outbox")

# Sends recorded together at most, and how long a record waits for more to finish.
RECORD_GROUP = 32
RECORD_WAIT_S = 0.05
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


# How often the outbox looks for journals that dead processes left.
ORPHAN_LOOK_S = 60.0


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
        # When to look next for journals of dead processes (at the first batch, then now
        # and then: an `ingest` killed beside the daemon leaves one).
        self._next_orphan_look = 0.0

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
            if self._journal is not None and time.monotonic() >= self._next_orphan_look:
                await self._record_orphans()
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
        await self._record_entries(self._journal.entries())
        self._journal.clear()

    async def _record_orphans(self) -> None:
        """Record what the journals of dead processes (a killed daemon or `ingest`) say the
        relay took, then delete them; looked for at start and every ORPHAN_LOOK_S."""
        assert self._journal is not None
        self._next_orphan_look = time.monotonic() + ORPHAN_LOOK_S
        for orphan in self._journal.orphans():
            try:
                await self._record_entries(orphan.entries)
            except BaseException:
                orphan.let_go()  # kept for the next look
                raise
            orphan.forget()

    async def _record_entries(self, taken: list[Taken]) -> None:
        if taken:
            await self._db.run(record_outcomes, self._db.engine, [
                Outcome(Claimed(entry.outbox_id, entry.ticket_id, entry.kind, "", "", b"", 0),
                        at=entry.at) for entry in taken],
                self._clock.now(), self._max_attempts, self._retry_base_s)
            log.info("outbox.journal_recorded", count=len(taken))

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
