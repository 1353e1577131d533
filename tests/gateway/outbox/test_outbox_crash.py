"""The outbox across a death or a database restart: what was sent is recorded, not sent again."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

import gateway.outbox.worker
from gateway.outbox.mailer import Delivery
from gateway.outbox.sent_journal import SentJournal
from gateway.outbox.table import Outcome
from gateway.outbox.worker import OutboxWorker
from gateway.tickets.view import list_tickets
from tests.conftest import RunningGateway, Sink, make_mail
from tests.gateway.outbox.test_outbox import outbox_rows, submit


class StallsAfter:
    """Delivers the first SENDS messages, then hangs forever (the process is about to die)."""

    def __init__(self, inner: Delivery, sends: int) -> None:
        self.inner = inner
        self.left = sends

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        if self.left <= 0:
            await asyncio.Event().wait()
        self.left -= 1
        await self.inner.send(sender, recipient, data)

    async def close(self) -> None:
        await self.inner.close()


def pending_acknowledgements(running: RunningGateway, count: int) -> None:
    for n in range(count):
        submit(running, make_mail(f"Request {n}", sender=f"c{n}@acme.example"))
    while running.call(running.gateway.process_once):
        pass


def test_each_delivery_is_recorded_as_it_is_sent(make_gateway, relay_sink: Sink) -> None:
    """The worker dies half-way through a batch: every message the relay took was recorded as
    it was taken, so after the restart (the lease expired) only the one in flight goes out;
    none twice."""
    running = make_gateway(relay_port=relay_sink.port)
    pending_acknowledgements(running, 10)
    outbox = running.gateway.outbox
    real = outbox._delivery
    outbox._delivery = StallsAfter(real, sends=9)
    with pytest.raises(TimeoutError):
        running.loop.run(asyncio.wait_for(outbox.run_once(), 5))
    statuses = sorted(item.status for item in outbox_rows(running))
    assert statuses == ["sending"] + ["sent"] * 9
    outbox._delivery = real
    running.clock.advance(timedelta(minutes=6))
    running.settle()
    assert [item.status for item in outbox_rows(running)] == ["sent"] * 10
    recipients = sorted(str(m["X-Envelope-To"]) for m in relay_sink.messages)
    assert recipients == sorted(f"c{n}@acme.example" for n in range(10))


def test_recording_is_retried_while_the_database_is_away(make_gateway, relay_sink: Sink,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The database fails the first attempt to record a send: the worker tries again, so the
    message is recorded sent and not sent a second time when its lease would have expired."""
    running = make_gateway(relay_port=relay_sink.port)
    pending_acknowledgements(running, 1)
    real = gateway.outbox.worker.record_outcomes
    failures = [OperationalError("UPDATE outbox", {}, Exception("server closed the connection"))]

    def flaky(*args: object) -> None:
        if failures:
            raise failures.pop()
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(gateway.outbox.worker, "record_outcomes", flaky)
    running.settle()
    assert [(item.status, item.attempts) for item in outbox_rows(running)] == [("sent", 1)]
    running.clock.advance(timedelta(minutes=6))
    running.settle()
    assert len(relay_sink.messages) == 1


def test_sends_taken_before_a_kill_are_recorded_from_the_journal(
        make_gateway, relay_sink: Sink) -> None:
    """The relay takes a batch, then the process dies before any record commits: the next
    start records them as sent, at the time they were taken, from the journal; none goes out
    twice when the leases expire."""
    running = make_gateway(relay_port=relay_sink.port)
    pending_acknowledgements(running, 5)
    dying = running.gateway.outbox

    async def never_recorded(outcomes: list[Outcome]) -> None:
        await asyncio.Event().wait()

    dying._record = never_recorded  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        running.loop.run(asyncio.wait_for(dying.run_once(), 2))
    assert len(relay_sink.messages) == 5
    assert [item.status for item in outbox_rows(running)] == ["sending"] * 5

    gateway = running.gateway
    gateway.journal.close()  # as the kill would: its lines stay, its lock goes
    journal = SentJournal.of_process(gateway.settings.intake.state_dir)
    gateway.outbox = OutboxWorker(gateway.db, gateway.delivery, running.clock,
                                  gateway.settings.outgoing.max_attempts, journal=journal)
    running.clock.advance(timedelta(minutes=6))
    running.settle()
    assert [item.status for item in outbox_rows(running)] == ["sent"] * 5
    assert len(relay_sink.messages) == 5
    acknowledged = {t["acknowledged_at"] for t in list_tickets(gateway.db.engine)}
    assert acknowledged == {"2026-11-25T08:00:00Z"}
    assert journal.entries() == []
    assert list(gateway.settings.intake.state_dir.glob("outbox-sent*.journal")) == [journal.path]


def test_journal_closes_once(tmp_path: Path) -> None:
    """A gateway stopped twice closes its journal once; the second close must not close a
    descriptor that reused the number."""
    journal = SentJournal(tmp_path / "journal")
    journal.close()
    reused = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT)
    try:
        journal.close()
        os.fstat(reused)  # still open
    finally:
        os.close(reused)
