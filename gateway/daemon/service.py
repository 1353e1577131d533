"""The daemon: channels, the intake door, the processor and the outbox in one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from datetime import timedelta

import structlog

from gateway.clock import Clock, SystemClock
from gateway.config.rules_file import RulesWatcher
from gateway.config.settings import LoadedSettings
from gateway.daemon.child_start import start_child
from gateway.daemon.config_reload import reread
from gateway.daemon.context_files import build_context, sync_customers
from gateway.daemon.gc_freeze import settle
from gateway.daemon.mail_logins import MailLogins
from gateway.daemon.sd_notify import Notifier, reload_notified, running_status
from gateway.daemon.worker_batches import PackedContext, worker_ready
from gateway.daemon.worker_deaths import process_in_worker
from gateway.daemon.worker_pool import WorkerPool
from gateway.http.server import HttpServer
from gateway.http.services import Services
from gateway.intake.door import IntakeDoor
from gateway.intake.imap import MailboxWorker, mailbox_workers
from gateway.intake.smtp import IntakeHandler, start_smtp
from gateway.outbox.chat_replies import ChatReplies, RoutedDelivery
from gateway.outbox.mailer import Delivery, make_delivery
from gateway.outbox.sent_journal import SentJournal
from gateway.outbox.webhooks import WebhookDispatcher
from gateway.outbox.worker import OutboxWorker
from gateway.sla.calendar_check import missing_transfers
from gateway.sla.report import ReportQuery, build_report
from gateway.sla.report_render import render
from gateway.store.db import Database, migrate, migrate_url
from gateway.store.roles import Role, claim_sqlite
from gateway.tickets.claims import claim_pending, instance_name, release_claims
from gateway.tickets.lifecycle import Applied, apply_event, parse_event
from gateway.tickets.processing import BatchResult, process_pending
from gateway.tickets.sla_watch import sla_step
from gateway.trackers.connector import connectors_for, prepare_trackers

log = structlog.get_logger("gateway.app")

# How often the SLA clock looks for registrations, escalations and acknowledgements at risk.
SLA_INTERVAL_S = 15.0
# Inputs stored by another process (the `ingest` command, a second instance) are noticed
# within this many seconds even when nothing wakes the processor.
POLL_INTERVAL_S = 2.0


class Gateway:
    """One running gateway; `start`, then `stop` (or `run_until_idle` in tests)."""

    def __init__(self, loaded: LoadedSettings, clock: Clock | None = None) -> None:
        self.loaded = loaded
        self.settings = loaded.settings
        self.clock = clock or SystemClock()
        self.context = build_context(loaded, self.clock)
        self.db = Database(self.settings.database_url())
        self.logins = MailLogins(self.settings, self.db, self.clock,
                                 lambda: self.context.policy.escalation.duty_address)
        self.delivery: Delivery = RoutedDelivery(
            make_delivery(self.settings.outgoing, self.logins.relay_tokens, self.logins.alert),
            ChatReplies(self.settings.chat_platforms))
        alerts = self.settings.alerts
        self.alert_delivery = make_delivery(alerts) if alerts is not None else None
        outgoing = self.settings.outgoing
        self.journal = SentJournal.of_process(self.settings.intake.state_dir)
        self.outbox = OutboxWorker(self.db, self.delivery, self.clock, outgoing.max_attempts,
                                   retry_base_s=outgoing.retry_base_s,
                                   lease=timedelta(seconds=outgoing.lease_s),
                                   journal=self.journal, alert_delivery=self.alert_delivery)
        self.webhooks = WebhookDispatcher(self.db, self.settings.subscriptions, self.clock)
        self._work = asyncio.Event()
        # The context as workers receive it, pickled on first use after each (re)load.
        self._packed_context: PackedContext | None = None
        self.door = IntakeDoor(self.db, self.clock, on_stored=self._work.set)
        self.smtp_handler = IntakeHandler(self.door, self.settings.smtp.recipients
                                          if self.settings.smtp else [], self.settings.limits)
        self.smtp_server: asyncio.Server | None = None
        self.http = HttpServer(Services(self.door, self.db, self.clock, self.settings,
                                        context=lambda: self.context,
                                        ticket_event=self.ticket_event,
                                        sla_report=self.sla_report,
                                        wake_outbox=self.outbox.wake,
                                        login_states=self.logins.states))
        self.sla_role = Role(self.db.engine, "sla-clock")
        self.instance = instance_name(self.settings.intake.state_dir)
        self.mailboxes: list[MailboxWorker] = mailbox_workers(
            self.settings.mailboxes, self.door, self.db, self.clock, self.logins.tokens_for,
            self.logins.alert)
        self.http.services.mailboxes = self.mailboxes
        self.http.services.trackers = self.trackers = connectors_for(
            self.db, self.settings.trackers, self.clock, lambda: self.context, self.outbox.wake)
        self._tasks: list[asyncio.Task[None]] = []
        self._processing = asyncio.Lock()
        self._in_flight: set[asyncio.Task[BatchResult]] = set()  # the processor's batches
        self._claiming = asyncio.Lock()
        self._pool: WorkerPool | None = None

    async def start(self, workers: bool = True) -> None:
        """Migrate, then listen. Without WORKERS nothing is processed or sent until
        `run_until_idle` is called (tests drive the pipeline step by step that way)."""
        await self._migrate(separately=workers and self.settings.intake.workers > 0)
        await self.db.run(sync_customers, self.db.engine, self.context.directory)
        await self.webhooks.start()
        await prepare_trackers(self.db, self.settings.trackers)
        self._tasks = [asyncio.create_task(self.door.run(), name="intake")]
        if self.settings.files.rules is not None:
            watcher = RulesWatcher(self.settings.files.rules, self.reload)
            self._tasks.append(asyncio.create_task(watcher.run(), name="rules-watch"))
        if workers and self.settings.intake.workers:
            self._pool = self._new_pool()
            # Start every worker now, so their imports do not delay the first messages.
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(self._pool, worker_ready)
                                   for _ in range(self.settings.intake.workers)))
        if workers:
            self._tasks += [asyncio.create_task(self._process_forever(), name="processor"),
                            asyncio.create_task(self.outbox.run(), name="outbox"),
                            asyncio.create_task(self.webhooks.run(), name="webhooks"),
                            asyncio.create_task(self._sla_forever(), name="sla"),
                            *(asyncio.create_task(t.run(), name=f"tracker-{t.name}")
                              for t in self.trackers)]
        if self.settings.smtp:
            self.smtp_server = await start_smtp(self.smtp_handler, self.settings.smtp,
                                                self.settings.intake.state_dir / "spool")
        await self.http.start()
        if workers:
            await self.start_mailboxes()
        for problem in missing_transfers(self.context.policy, self.clock.now().date()):
            log.warning("calendar.no_transfers", problem=problem)
        log.info("gateway.ready", smtp=self.settings.smtp.listen if self.settings.smtp else None,
                 http=self.settings.http.listen,
                 mailboxes=[m.name for m in self.mailboxes],
                 database=self.db.engine.url.render_as_string(hide_password=True),
                 outgoing=self.settings.outgoing.host or str(self.settings.outgoing.maildir))

    async def _migrate(self, separately: bool) -> None:
        """Bring the schema up to date, SEPARATELY in a short-lived process.

        alembic and the migration scripts stay in memory once loaded (13 MB) for a job done
        once; the workers share the database anyway, so another process may do it.
        """
        if not separately:
            await self.db.run(migrate, self.db.engine)
            return
        pool = self._new_pool(1)
        try:
            await asyncio.get_running_loop().run_in_executor(
                pool, migrate_url, self.settings.database_url())
        finally:
            await asyncio.to_thread(pool.shutdown)

    async def start_mailboxes(self) -> None:
        """Follow every configured IMAP mailbox, one task each (`start` does this with workers;
        tests without workers call it, or drive `mailboxes[i].poll_once()` themselves)."""
        for mailbox in self.mailboxes:
            mailbox.start()

    async def process_once(self) -> int:
        """Process one batch of received inputs here; the number handled (tests, drains)."""
        # The processor's batches (and a claim it is making) lock their inputs' rows: a claim
        # now would pass them by, and "nothing left" would not mean processed.
        async with self._claiming:
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            ids = await self.db.run(claim_pending, self.db.engine,
                                    self.settings.intake.processing_batch, 0, self.clock.now(),
                                    self.instance)
        if not ids:
            return 0
        result = await self._process_batch(ids, in_worker=False)
        return result.processed + result.failed

    async def _process_batch(self, ids: list[int], in_worker: bool = True) -> BatchResult:
        """Parse and register the inputs IDS, in a worker process when there is a pool.

        The workers open their own database connections, so this process keeps its core for
        SMTP, the intake door and the outbox.
        """
        try:
            if in_worker and self._pool is not None:
                result = await process_in_worker(self, ids)
            else:
                async with self._processing:
                    result = await self.db.run(process_pending, self.db.engine, self.context,
                                               len(ids), ids)
        finally:
            await self.db.run(release_claims, self.db.engine, ids)
        if result.enqueued:
            self.outbox.wake()
        return result

    def packed(self) -> PackedContext:
        if self._packed_context is None:
            self._packed_context = PackedContext.of(self.context)
        return self._packed_context

    def worker_pool(self) -> WorkerPool:
        assert self._pool is not None
        return self._pool

    def replace_pool(self, broken: WorkerPool) -> WorkerPool:
        """A new pool for BROKEN, unless another caller replaced it already."""
        if self._pool is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        assert self._pool is not None
        return self._pool

    def _new_pool(self, workers: int | None = None) -> WorkerPool:
        """WORKERS processes (default: the configured number), logging as this one does."""
        logging_settings = self.settings.logging
        # Fresh interpreters, not fork: this process has threads (database, to_thread) that
        # fork would copy; not multiprocessing's spawn either, whose resource tracker is one
        # more interpreter (see WorkerPool). Workers run at a lower priority: when the cores
        # are busy, the daemon's answers to senders and callers go first, and processing,
        # which nobody waits on, takes what is left.
        return WorkerPool(workers or self.settings.intake.workers, start_child,
                          (logging_settings.level, logging_settings.format),
                          niceness=self.settings.intake.worker_niceness)

    async def _process_forever(self) -> None:
        """Hand batches of received inputs to the workers, a few in flight at a time."""
        in_flight = self._in_flight
        most_in_flight = 4 * max(1, self.settings.intake.workers)
        # Inputs up to this id are handed out already; reset to 0 whenever nothing is in
        # flight, so inputs committed out of id order (other writers) are found as well.
        after_id = 0
        while True:
            self._work.clear()
            async with self._claiming:
                try:
                    ids = await self.db.run(claim_pending, self.db.engine,
                                            self.settings.intake.processing_batch, after_id,
                                            self.clock.now(), self.instance)
                except Exception as error:  # the database may be down; keep trying
                    log.error("processor.error", error=str(error))
                    ids = []
                if ids:
                    in_flight.add(asyncio.create_task(self._process_batch(ids)))
            if ids:
                after_id = ids[-1]
                if len(in_flight) < most_in_flight:
                    continue
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            else:
                done, _ = await asyncio.wait(in_flight) if in_flight else (set(), set())
                after_id = 0
            in_flight -= done
            for task in done:
                if task.exception() is not None:
                    log.error("processor.error", error=str(task.exception()))
            if not ids:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work.wait(), POLL_INTERVAL_S)

    async def sla_once(self) -> int:
        """One step of the SLA clock at the injected clock's now: register what waited for the
        intake window, alert on acknowledgements at risk, escalate; the number of tickets
        acted on."""
        result = await self.db.run(sla_step, self.db.engine, self.context)
        if result.enqueued:
            self.outbox.wake()
        return result.registered + result.escalated + result.at_risk

    async def _sla_forever(self) -> None:
        # Instances sharing a database take turns by a role: one runs the clock, and when it
        # dies another takes over within an interval (two would alert and escalate twice).
        while True:
            try:
                if await self.db.run(self.sla_role.held):
                    await self.sla_once()
            except Exception as error:  # the database may be down; keep the clock going
                log.error("sla.error", error=str(error))
            await asyncio.sleep(SLA_INTERVAL_S)

    async def ticket_event(self, number: str, payload: object) -> Applied:
        """A lifecycle event for ticket NUMBER (the HTTP layer's POST .../events): the ticket
        afterwards, or TicketNotFound (404), EventRefused (409), EventInvalid (422)."""
        event = parse_event(payload)
        applied = await self.db.run(apply_event, self.db.engine, self.context, number, event)
        if applied.enqueued:
            self.outbox.wake()
        return applied

    async def sla_report(self, query: ReportQuery, output_format: str) -> bytes:
        """The SLA report in OUTPUT_FORMAT (the HTTP layer's GET /api/v1/reports/sla)."""
        report = await self.db.run(build_report, self.db.engine, self.context.policy, query,
                                   self.clock.now())
        # Laying out a PDF takes a while: off the event loop.
        return await asyncio.to_thread(render, report, output_format)

    async def run_until_idle(self) -> None:
        """Process, register, escalate and send everything that is due now (tests, one-shot
        commands)."""
        while (await self.process_once() or await self.sla_once()
               or await self.outbox.run_once() or await self.webhooks.run_once()
               or any([await t.run_once() for t in self.trackers])):
            pass

    def reload(self) -> bool:
        """Re-read the config file (what can change safely, daemon/config_reload.py) and the
        policy, customers and rules files; a bad file keeps the previous ones."""
        try:
            config = reread(self.loaded)
            self.context = build_context(config.loaded, self.clock)
            self._packed_context = None
        except Exception as error:
            log.error("reload.failed", error=str(error))
            return False
        self.loaded, self.settings = config.loaded, config.loaded.settings
        if config.need_restart:
            log.warning("reload.needs_restart", keys=config.need_restart)
        settle()
        log.info("reload.done", config=config.applied,
                 customers=len(self.context.directory.customers),
                 policy=self.context.policy.source, rules=len(self.context.ruleset.rules),
                 rules_source=self.context.ruleset.source)
        return True

    async def stop(self, drain_deadline_s: float = 10.0) -> None:
        """Stop taking input, finish what was accepted within the deadline, then close."""
        self.smtp_handler.closing = True
        self.http.close_intake()
        if self.smtp_server is not None:
            self.smtp_server.close()
        # Requests in flight are answered (their inputs are committed by the door) first.
        await self.http.stop()
        await asyncio.gather(*(mailbox.stop() for mailbox in self.mailboxes))
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
        if self.alert_delivery is not None:
            await self.alert_delivery.close()
        await self.webhooks.close()
        await asyncio.gather(*(t.close() for t in self.trackers), return_exceptions=True)
        self.journal.remove_if_empty()
        self.journal.close()
        self.sla_role.release()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.db.close()
        log.info("gateway.stopped")


async def run_daemon(loaded: LoadedSettings) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads. Tells systemd (sd_notify) each step."""
    notifier = Notifier()
    notifier.status("starting")
    gateway = Gateway(loaded)
    claim_sqlite(gateway.db.engine)  # held until the process ends
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, functools.partial(reload_notified, gateway, notifier))
    await gateway.start()
    settle()
    watchdog = asyncio.create_task(notifier.watchdog(lambda: running_status(gateway)),
                                   name="watchdog")
    notifier.ready(running_status(gateway))
    await stop.wait()
    log.info("gateway.stopping")
    notifier.stopping("draining: no new input, finishing what was accepted")
    # The watchdog keeps pinging while draining: a long drain is not a hang.
    await gateway.stop()
    watchdog.cancel()
    notifier.close()
