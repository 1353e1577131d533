"""IMAP intake: one asyncio task per mailbox; its blocking imapclient session in its own thread.

Order for every batch: fetch (BODY.PEEK[], nothing changes on the server) -> the intake door
commits -> after_import (seen / delete / move) -> the checkpoint advances. A crash anywhere
in between only means the batch is fetched again; the door recognises it (Message-ID, else
a hash of the bytes), so nothing registers twice and nothing is flagged before it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import Engine
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential
from tenacity.wait import wait_base

from gateway.clock import Clock
from gateway.config.settings import MailboxSettings
from gateway.intake.door import Accepted, IncomingInput, IntakeDoor
from gateway.intake.imap_session import Fetched, ImapSession, Selected
from gateway.store.db import Database, read_transaction, transaction
from gateway.store.models import MailboxCheckpoint
from gateway.store.roles import Role

log = structlog.get_logger("gateway.imap")
T = TypeVar("T")


def load_checkpoint(engine: Engine, name: str) -> MailboxCheckpoint | None:
    with read_transaction(engine) as session:
        return session.get(MailboxCheckpoint, name)


def save_checkpoint(engine: Engine, name: str, folder: str, uidvalidity: int, last_uid: int,
                    now: datetime) -> None:
    with transaction(engine) as session:
        session.merge(MailboxCheckpoint(name=name, folder=folder, uidvalidity=uidvalidity,
                                        last_uid=last_uid, updated_at=now))


def reconnect_wait(settings: MailboxSettings) -> wait_base:
    """The wait before reconnect attempt n: random up to 0.5 s * 2**(n-1), at most
    reconnect_max_s (full jitter: mailboxes on one failed server do not return in step)."""
    return wait_random_exponential(multiplier=0.5, max=settings.reconnect_max_s)


# How often an instance that does not read a mailbox asks whether its reader is gone.
ROLE_RETRY_S = 5.0


class MailboxWorker:
    """Imports one mailbox: `poll_once()` catches up; `start()` follows it (IDLE or polling)."""

    def __init__(self, settings: MailboxSettings, door: IntakeDoor, db: Database,
                 clock: Clock) -> None:
        self.settings = settings
        # Instances sharing a database read a mailbox one at a time (each polling it took
        # every message once per instance, and raced on its checkpoint).
        self.role = Role(db.engine, f"mailbox:{settings.name}")
        self.owned = False
        self.name = settings.name
        self._door = door
        self._db = db
        self._clock = clock
        self._stopping = threading.Event()
        self._session = ImapSession(settings, self._stopping)
        # One thread per mailbox: a long IDLE never takes a thread another mailbox needs.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"imap-{settings.name}")
        self._lock = asyncio.Lock()
        self._selected: Selected | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = log.bind(mailbox=settings.name)
        # State for health checks and tests.
        self.connected = False
        self.failures = 0  # consecutive
        self.last_error: str | None = None
        self.fetched = 0  # messages fetched from the server since start
        self.imported = 0  # of those, inputs stored new (not duplicates)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    # -- one round -----------------------------------------------------------------------

    async def poll_once(self) -> int:
        """Connect if needed and import everything above the checkpoint; new inputs stored."""
        async with self._lock:
            try:
                return await self._import_new()
            except Exception:
                await self._disconnect(graceful=False)
                raise

    async def _import_new(self) -> int:
        s = self.settings
        if self._selected is None or not self._session.connected:
            self._selected = await self._call(self._session.open)
            self.connected = True
            self._log.info("imap.connected", host=s.host, port=s.port, security=s.security,
                           folder=s.folder, uidvalidity=self._selected.uidvalidity)
        uidvalidity = self._selected.uidvalidity
        checkpoint = await self._db.run(load_checkpoint, self._db.engine, self.name)
        last_uid = 0
        if checkpoint is not None and (checkpoint.uidvalidity, checkpoint.folder) == (
                uidvalidity, s.folder):
            last_uid = checkpoint.last_uid
        else:
            if checkpoint is not None:
                # The server renumbered the folder: take it all again, the door de-duplicates.
                self._log.warning("imap.uidvalidity_changed", old=checkpoint.uidvalidity,
                                  new=uidvalidity, old_folder=checkpoint.folder,
                                  folder=s.folder)
            await self._save(uidvalidity, 0)
        uids = await self._call(self._session.new_uids, self._selected, last_uid)
        stored = 0
        if uids:
            batches = await self._call(self._session.fetch_batches, uids)
            while (batch := await self._call(next, batches, None)) is not None:
                stored += await self._import_batch(uidvalidity, batch)
        self.failures = 0
        self.last_error = None
        return stored

    async def _import_batch(self, uidvalidity: int, batch: dict[int, Fetched]) -> int:
        s = self.settings
        uids = sorted(batch)
        self.fetched += len(uids)
        # The server's INTERNALDATE is the arrival (a backlog must not move the SLA clocks);
        # the door caps it at its commit, so a server clock ahead of ours gains nothing.
        items = [IncomingInput("email", batch[uid].raw, {
            "via": "imap", "mailbox": self.name, "folder": s.folder,
            "uidvalidity": uidvalidity, "uid": uid},
            arrived_at=batch[uid].internal_date) for uid in uids]
        results: list[Accepted | BaseException] = await asyncio.gather(
            *(self._door.accept(item) for item in items), return_exceptions=True)
        committed: list[int] = []
        error: BaseException | None = None
        for uid, result in zip(uids, results, strict=True):
            if isinstance(result, BaseException):
                error = result
                break
            committed.append(uid)
        # Counted and logged as soon as they are committed: a server lost before the flags
        # below makes the next round find them again, as duplicates.
        new = [r for r in results[:len(committed)] if isinstance(r, Accepted) and not r.duplicate]
        self.imported += len(new)
        self._log.info("imap.imported", count=len(committed), new=len(new),
                       duplicates=len(committed) - len(new),
                       last_uid=committed[-1] if committed else None,
                       input_ids=[r.input_id for r in new])
        # Only what the door committed is flagged, moved or deleted, and then checkpointed.
        if committed:
            await self._call(self._session.after_import, committed)
            await self._save(uidvalidity, committed[-1])
        if error is not None:
            raise error
        return len(new)

    async def _save(self, uidvalidity: int, last_uid: int) -> None:
        await self._db.run(save_checkpoint, self._db.engine, self.name, self.settings.folder,
                           uidvalidity, last_uid, self._clock.now())

    async def wait_for_news(self) -> bool:
        """IDLE (re-issued every idle_timeout_s) or sleep poll_interval_s; True on news."""
        s = self.settings
        idle = s.idle and b"IDLE" in self._session.capabilities
        async with self._lock:
            try:
                return await self._call(self._session.wait_for_news,
                                        s.idle_timeout_s if idle else s.poll_interval_s)
            except Exception:
                await self._disconnect(graceful=False)
                raise

    async def _disconnect(self, graceful: bool) -> None:
        self._selected = None
        self.connected = False
        await self._call(self._session.close, graceful)

    # -- the task ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"imap:{self.name}")

    async def run(self) -> None:
        """Catch up, then follow the mailbox; on any failure reconnect with backoff, forever.
        Only while this instance holds the mailbox's role: otherwise it waits its turn."""
        while not self._stopping.is_set():
            await self._own()
            retrying = AsyncRetrying(
                wait=reconnect_wait(self.settings), retry=retry_if_exception_type(Exception),
                before_sleep=self._log_retry)
            async for attempt in retrying:
                with attempt:
                    await self.poll_once()
            try:
                while not self._stopping.is_set() and await self._still_own():
                    await self.wait_for_news()
                    await self.poll_once()
            except Exception as error:
                self._note_failure(error)
                self._log.warning("imap.connection_lost", error=self.last_error)
                await asyncio.sleep(min(1.0, self.settings.reconnect_max_s))

    async def _own(self) -> None:
        """Wait until the mailbox's role is ours (another instance reading it may die)."""
        while not await self._still_own():
            await asyncio.sleep(ROLE_RETRY_S)

    async def _still_own(self) -> bool:
        try:
            owned = await self._db.run(self.role.held)
        except Exception as error:  # the database is down: whoever reads on may double
            self._log.warning("imap.role_unknown", error=str(error))
            owned = False
        if owned != self.owned:
            self._log.info("imap.role_taken" if owned else "imap.role_elsewhere")
            self.owned = owned
            if not owned:
                await self._disconnect(graceful=True)
        return owned

    def _note_failure(self, error: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {error}"

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is not None:
            self._note_failure(error)
        delay = state.next_action.sleep if state.next_action else 0.0
        self._log.error("imap.mailbox_failed", error=self.last_error, attempt=state.attempt_number,
                        retry_in_s=round(delay, 2), host=self.settings.host)

    async def stop(self) -> None:
        """Stop following the mailbox, log out, free the thread."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # The thread notices the stop within a second (IDLE is checked in slices).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._disconnect(graceful=True), 15)
        self._executor.shutdown(wait=False)
        self.role.release()  # closes its connection, if it holds one: quick
        self._log.info("imap.disconnected", reason="stopping")


def mailbox_workers(settings: list[MailboxSettings], door: IntakeDoor, db: Database,
                    clock: Clock) -> list[MailboxWorker]:
    return [MailboxWorker(mailbox, door, db, clock) for mailbox in settings]
