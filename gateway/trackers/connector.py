"""One tracker connector: hands our tickets over as the feed says, and brings status changes back.

The connector knows nothing of a particular tracker: it talks to a `Tracker`. It keeps its
health (connected, consecutive failures, last error) for /readyz and /metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from gateway.clock import Clock
from gateway.config.tracker_settings import TrackerSettings
from gateway.store.db import Database
from gateway.store.models import CLOSED, RESOLVED
from gateway.trackers.handover import Outcome, Owed, Plan, claim, plan, record, sync_trackers
from gateway.trackers.interface import RemoteChange, Tracker, TrackerRefused, TrackerUnavailable
from gateway.trackers.status_sync import apply_change, cursor_of, save_cursor

if TYPE_CHECKING:
    from gateway.tickets.context import Context

log = structlog.get_logger("gateway.trackers")

# At most this many deliveries in one round (each is claimed, sent and recorded alone).
ROUND = 32
IDLE_S = 0.5


def make_tracker(settings: TrackerSettings) -> Tracker:
    """The module for the configured kind (one line per tracker the gateway knows)."""
    from gateway.trackers.request_tracker import RequestTracker

    return RequestTracker(settings)


async def prepare_trackers(db: Database, trackers: Sequence[TrackerSettings]) -> None:
    """Mirror the configured trackers as feed subscriptions, before the first event."""
    await db.run(sync_trackers, db.engine, trackers)


def connectors_for(db: Database, trackers: Sequence[TrackerSettings], clock: Clock,
                   context: Callable[[], Context],
                   on_enqueued: Callable[[], None]) -> list[TrackerConnector]:
    """One connector per `[[trackers]]` entry."""
    return [TrackerConnector(db, t, make_tracker(t), clock, context, on_enqueued)
            for t in trackers]


class TrackerConnector:
    """`run_once` (deliveries) and `poll_once` (changes) for tests; `run` in the daemon."""

    def __init__(self, db: Database, settings: TrackerSettings, tracker: Tracker, clock: Clock,
                 context: Callable[[], Context], on_enqueued: Callable[[], None]) -> None:
        self.name = settings.name
        self.settings = settings
        self.tracker = tracker
        self._db = db
        self._clock = clock
        self._context = context
        self._on_enqueued = on_enqueued
        self.actor = f"tracker:{settings.name}"
        # Health: whether the last exchange with the tracker went through.
        self.connected = True
        self.failures = 0
        self.last_error: str | None = None
        self._busy = asyncio.Lock()

    @property
    def lease(self) -> timedelta:
        # One handover makes a few calls (find, create, read back, messages), each timed out.
        return timedelta(seconds=10 * self.settings.timeout_s + 5)

    def _succeeded(self) -> None:
        if not self.connected:
            log.info("tracker.connected", tracker=self.name)
        self.connected, self.failures, self.last_error = True, 0, None

    def _failed(self, error: Exception) -> None:
        self.connected, self.failures, self.last_error = False, self.failures + 1, str(error)
        log.warning("tracker.failing", tracker=self.name, failures=self.failures,
                    error=str(error))

    async def run_once(self) -> int:
        """Hand over up to a round of owed deliveries; how many were attempted. A tracker
        that is down ends the round (the rest would only wait for the same timeout)."""
        done = 0
        async with self._busy:
            while done < ROUND:
                owed = await self._db.run(claim, self._db.engine, self.name, self._clock.now(),
                                          self.lease)
                if not owed:
                    break
                outcome = await self.hand_over(owed[0])
                await self._db.run(record, self._db.engine, self.settings, [outcome],
                                   self._clock.now())
                done += 1
                if outcome.error is not None:
                    break
        return done

    async def hand_over(self, item: Owed) -> Outcome:
        if item.ticket_number is None:
            return Outcome(item, None, None)
        wanted = await self._db.run(plan, self._db.engine, self.name, item.ticket_number,
                                    self.settings.messages_as)
        if wanted is None:
            return Outcome(item, None, None)
        # The link as it stands, updated in place as each step succeeds: what went through
        # (a ticket created, messages added) is recorded even when a later step fails.
        progress: dict[str, Any] = {}
        if wanted.link is not None:
            progress = {"remote_id": wanted.link.remote_id,
                        "remote_status": wanted.link.remote_status,
                        "last_message_id": wanted.link.last_message_id}
        try:
            await self._bring_up_to_date(item, wanted, progress)
        except (TrackerUnavailable, TrackerRefused) as error:
            self._failed(error)
            return Outcome(item, progress or None, str(error))
        self._succeeded()
        return Outcome(item, progress, None)

    async def _bring_up_to_date(self, item: Owed, wanted: Plan, progress: dict[str, Any]) -> None:
        """Create (or find) the tracker ticket, add the messages it lacks, carry a priority
        or status change of ours."""
        adopted = False
        if not progress:
            # An earlier attempt may have created it and died before recording it.
            found = await self.tracker.find(wanted.ticket.number)
            if found is not None:
                remote_id, status = found
                adopted = True
                log.info("tracker.found", tracker=self.name, ticket=wanted.ticket.number,
                         remote_id=remote_id)
            else:
                remote_id, status = await self.tracker.create(wanted.ticket)
                log.info("tracker.created", tracker=self.name, ticket=wanted.ticket.number,
                         remote_id=remote_id)
            progress.update(remote_id=remote_id, remote_status=status,
                            last_message_id=wanted.first_message_id)
        remote_id = progress["remote_id"]
        # A message may be there already when an earlier attempt got that far.
        check = adopted or item.attempts > 1
        for message_id, message in wanted.messages:
            if message is not None and not (
                    check and await self.tracker.has_message(remote_id, message.marker)):
                await self.tracker.add_message(remote_id, message)
            progress["last_message_id"] = message_id
        if item.event_type == "ticket.priority_changed":
            await self.tracker.update(remote_id, priority=wanted.ticket.priority)
        if item.event_type == "ticket.status_changed" and item.actor != self.actor:
            await self._carry_status(wanted, progress)

    async def _carry_status(self, wanted: Plan, progress: dict[str, Any]) -> None:
        """Our status change to the tracker, unless the tracker changed since we last
        looked (or a change of its waited for our registration): its news wins then."""
        remote_id = progress["remote_id"]
        current = await self.tracker.status(remote_id)
        if current != progress["remote_status"]:
            change = RemoteChange(remote_id, current, self.tracker.meaning(current), "")
            applied = await self._db.run(apply_change, self._db.engine, self.name, change,
                                         self.tracker.meaning, self._context())
            if applied is not None:
                progress["remote_status"] = current
                if applied:
                    self._on_enqueued()
            return
        ours_done = wanted.status in (RESOLVED, CLOSED)
        theirs_done = self.tracker.meaning(current) != "active"
        if ours_done != theirs_done:
            progress["remote_status"] = await self.tracker.update(
                remote_id, status="resolved" if ours_done else "active")

    async def poll_once(self) -> int:
        """Look for the tracker's changes since the last look and apply them; how many
        tracker tickets were seen changed."""
        # Real time (not the injected clock): the tracker's own now is what counts.
        began = datetime.now(UTC)
        since = await self._db.run(cursor_of, self._db.engine, self.name, began)
        try:
            changes = await self.tracker.changes(since)
        except (TrackerUnavailable, TrackerRefused) as error:
            self._failed(error)
            return 0
        self._succeeded()
        enqueued = 0
        for change in changes:
            applied = await self._db.run(apply_change, self._db.engine, self.name, change,
                                         self.tracker.meaning, self._context())
            enqueued += applied or 0
        await self._db.run(save_cursor, self._db.engine, self.name, began)
        if enqueued:
            self._on_enqueued()
        return len(changes)

    async def run(self) -> None:
        next_poll = 0.0
        while True:
            attempted = 0
            try:
                attempted = await self.run_once()
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + self.settings.poll_interval_s
                    await self.poll_once()
            except Exception as error:  # the database may be down; keep trying
                log.error("tracker.error", tracker=self.name, error=str(error))
            if not attempted:
                await asyncio.sleep(IDLE_S)

    async def close(self) -> None:
        await self.tracker.close()

