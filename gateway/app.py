"""The daemon: channels, the intake door, the processor and the outbox in one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from email.utils import parseaddr

import structlog
from sqlalchemy import Engine

from gateway.clock import Clock, SystemClock
from gateway.customers import Directory, load_customers
from gateway.db import Database, migrate, transaction
from gateway.inbound.smtp import IntakeHandler, start_smtp
from gateway.intake import IntakeDoor
from gateway.mailer import make_delivery
from gateway.models import Customer
from gateway.outbox import OutboxWorker
from gateway.processing import Context, Loaded, Parsed, apply_parsed, load_pending, parse_many
from gateway.settings import LoadedSettings

log = structlog.get_logger("gateway.app")

# Inputs stored by another process (the `ingest` command, a second instance) are noticed
# within this many seconds even when nothing wakes the processor.
POLL_INTERVAL_S = 2.0


def sync_customers(engine: Engine, directory: Directory) -> None:
    """Mirror the customers file into the customers table for joins and reports."""
    with transaction(engine) as session:
        for entry in directory.customers:
            session.merge(Customer(
                id=entry.id, name=entry.name, tier=entry.tier, language=entry.language,
                emails=json.dumps(entry.emails), domains=json.dumps(entry.domains),
                phones=json.dumps(entry.phones), engineer=entry.engineer, manager=entry.manager))


def build_context(loaded: LoadedSettings, clock: Clock) -> Context:
    settings = loaded.settings
    own = {parseaddr(settings.outgoing.sender)[1].lower()}
    if settings.smtp:
        own |= {r.lower() for r in settings.smtp.recipients}
    own |= {m.username.lower() for m in settings.mailboxes if "@" in m.username}
    return Context(settings, load_customers(settings.files.customers), clock, frozenset(own))


def _new_parse_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent has threads (database, to_thread) that fork would copy.
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


class Gateway:
    """One running gateway; `start`, then `stop` (or `run_until_idle` in tests)."""

    def __init__(self, loaded: LoadedSettings, clock: Clock | None = None) -> None:
        self.loaded = loaded
        self.settings = loaded.settings
        self.clock = clock or SystemClock()
        self.context = build_context(loaded, self.clock)
        self.db = Database(self.settings.database_url())
        self.delivery = make_delivery(self.settings.outgoing)
        self.outbox = OutboxWorker(self.db, self.delivery, self.clock,
                                   self.settings.outgoing.max_attempts)
        self._work = asyncio.Event()
        self.door = IntakeDoor(self.db, self.clock, on_stored=self._work.set)
        self.smtp_handler = IntakeHandler(self.door, self.settings.smtp.recipients
                                          if self.settings.smtp else [])
        self.smtp_server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._processing = asyncio.Lock()
        self._parse_pool: ProcessPoolExecutor | None = None

    async def start(self, workers: bool = True) -> None:
        """Migrate, then listen. Without WORKERS nothing is processed or sent until
        `run_until_idle` is called (tests drive the pipeline step by step that way)."""
        await self.db.run(migrate, self.db.engine)
        await self.db.run(sync_customers, self.db.engine, self.context.directory)
        self._tasks = [asyncio.create_task(self.door.run(), name="intake")]
        if workers and self.settings.intake.parse_workers:
            self._parse_pool = _new_parse_pool(self.settings.intake.parse_workers)
        if workers:
            self._tasks += [asyncio.create_task(self._process_forever(), name="processor"),
                            asyncio.create_task(self.outbox.run(), name="outbox")]
        if self.settings.smtp:
            self.smtp_server = await start_smtp(self.smtp_handler, self.settings.smtp)
        log.info("gateway.ready", smtp=self.settings.smtp.listen if self.settings.smtp else None,
                 database=self.db.engine.url.render_as_string(hide_password=True),
                 outgoing=self.settings.outgoing.host or str(self.settings.outgoing.maildir))

    async def process_once(self) -> int:
        """Process one batch of received inputs; the number handled.

        Parsing, the costly part, runs in a worker process when one is configured, so the
        event loop and the database thread keep the other core.
        """
        async with self._processing:
            loaded = await self.db.run(load_pending, self.db.engine,
                                       self.settings.intake.processing_batch)
            if not loaded:
                return 0
            parsed = await self._parse(loaded)
            result = await self.db.run(apply_parsed, self.db.engine, self.context, parsed)
        if result.enqueued:
            self.outbox.wake()
        return result.processed + result.failed

    async def _parse(self, loaded: list[Loaded]) -> Parsed:
        if self._parse_pool is None:
            return await self.db.run(parse_many, loaded)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._parse_pool, parse_many, loaded)
        except BrokenProcessPool as error:
            # A worker died (killed, out of memory): start a new pool, parse this batch here.
            log.error("parse_pool.broken", error=str(error))
            self._parse_pool = _new_parse_pool(self.settings.intake.parse_workers)
            return await self.db.run(parse_many, loaded)

    async def _process_forever(self) -> None:
        """A two-stage pipeline: while one batch is registered, the next one is parsed."""
        parsed_batches: asyncio.Queue[Parsed] = asyncio.Queue(maxsize=1)
        applier = asyncio.create_task(self._apply_forever(parsed_batches), name="applier")
        # Inputs up to this id are in the pipeline already; reset to 0 whenever the pipeline
        # is empty, so inputs stored out of id order (other writers) are found as well.
        after_id = 0
        try:
            while True:
                self._work.clear()
                try:
                    loaded = await self.db.run(load_pending, self.db.engine,
                                               self.settings.intake.processing_batch, None,
                                               after_id)
                    if loaded:
                        after_id = loaded[-1].id
                        await parsed_batches.put(await self._parse(loaded))
                        continue
                except Exception as error:  # the database may be down; keep trying
                    log.error("processor.error", error=str(error))
                await parsed_batches.join()
                after_id = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), POLL_INTERVAL_S)
        finally:
            applier.cancel()
            await asyncio.gather(applier, return_exceptions=True)

    async def _apply_forever(self, parsed_batches: asyncio.Queue[Parsed]) -> None:
        while True:
            parsed = await parsed_batches.get()
            try:
                async with self._processing:
                    result = await self.db.run(apply_parsed, self.db.engine, self.context,
                                               parsed)
                if result.enqueued:
                    self.outbox.wake()
            except Exception as error:  # the inputs stay received and are loaded again
                log.error("processor.error", error=str(error))
            finally:
                parsed_batches.task_done()

    async def run_until_idle(self) -> None:
        """Process and send everything that is due now (tests, one-shot commands)."""
        while await self.process_once() or await self.outbox.run_once():
            pass

    def reload(self) -> None:
        """Re-read the customers file; a bad file keeps the previous customers."""
        try:
            self.context = build_context(self.loaded, self.clock)
        except Exception as error:
            log.error("reload.failed", error=str(error))
            return
        log.info("reload.done", customers=len(self.context.directory.customers))

    async def stop(self, drain_deadline_s: float = 10.0) -> None:
        """Stop taking input, finish what was accepted within the deadline, then close."""
        self.smtp_handler.closing = True
        if self.smtp_server is not None:
            self.smtp_server.close()
        # The pipeline stops first (a batch half-way is simply loaded again), then what was
        # accepted is processed and sent in this task, within the deadline.
        workers = [t for t in self._tasks if t.get_name() != "intake"]
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        try:
            await asyncio.wait_for(self.run_until_idle(), drain_deadline_s)
        except Exception as error:  # TimeoutError included: what is left stays stored
            log.warning("gateway.drain_incomplete", error=str(error) or type(error).__name__)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.delivery.close()
        if self._parse_pool is not None:
            self._parse_pool.shutdown(wait=True, cancel_futures=True)
        self.db.close()
        log.info("gateway.stopped")


async def run_daemon(loaded: LoadedSettings) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads."""
    gateway = Gateway(loaded)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, gateway.reload)
    await gateway.start()
    await stop.wait()
    log.info("gateway.stopping")
    await gateway.stop()


def deliver_now(loaded: LoadedSettings) -> int:
    """Process what is waiting and send what is due, once, without listening (CLI commands).

    Safe beside a running daemon: outbox items are leased, so nothing is sent twice.
    """

    async def once() -> int:
        gateway = Gateway(loaded)
        sent = 0
        try:
            await gateway.db.run(migrate, gateway.db.engine)
            while await gateway.process_once():
                pass
            while claimed := await gateway.outbox.run_once():
                sent += claimed
        finally:
            await gateway.delivery.close()
            gateway.db.close()
        return sent

    return asyncio.run(once())
