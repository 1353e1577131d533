"""Acknowledgement delivery: retries on 4xx and outages, permanent 5xx, exactly one send."""

from __future__ import annotations

import asyncio
import smtplib
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select

from gateway.outbox.mailer import MaildirDelivery
from gateway.store.models import OutboxItem
from gateway.tickets.view import list_tickets
from tests.conftest import (
    RunningGateway,
    SessionsController,
    Sink,
    free_port,
    make_mail,
    stop_controller,
)


def submit(running: RunningGateway, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
        client.sendmail("ivan@acme.example", ["support@example.com"], raw)


def outbox_rows(running: RunningGateway) -> list[OutboxItem]:
    with Session(running.gateway.db.engine) as session:
        return list(session.exec(select(OutboxItem)))


def test_temporary_failure_is_retried_with_backoff(make_gateway, relay_sink: Sink) -> None:
    """A 451 from the relay keeps the item pending until its backoff passes, then it is sent."""
    relay_sink.handler.replies = ["451 4.3.0 try later"]
    running = make_gateway(relay_port=relay_sink.port)
    submit(running, make_mail())
    running.settle()
    [item] = outbox_rows(running)
    assert (item.status, item.attempts) == ("pending", 1)
    assert item.last_error is not None and item.last_error.startswith("451")
    assert relay_sink.messages == []
    assert list_tickets(running.gateway.db.engine)[0]["acknowledged_at"] is None

    running.clock.advance(timedelta(seconds=16))
    running.settle()
    [item] = outbox_rows(running)
    assert (item.status, item.attempts) == ("sent", 2)
    assert len(relay_sink.messages) == 1
    assert list_tickets(running.gateway.db.engine)[0]["acknowledged_at"] == "2026-11-25T08:00:16Z"


def test_permanent_failure_is_recorded_and_not_retried(make_gateway, relay_sink: Sink) -> None:
    """A 550 from the relay marks the item failed with the relay's words; it is never resent."""
    relay_sink.handler.replies = ["550 5.1.1 no such user"]
    running = make_gateway(relay_port=relay_sink.port)
    submit(running, make_mail())
    running.settle()
    running.clock.advance(timedelta(hours=2))
    running.settle()
    [item] = outbox_rows(running)
    assert (item.status, item.attempts, item.last_error) == ("failed", 1, "550 5.1.1 no such user")
    assert relay_sink.messages == []


def test_relay_down_then_up(make_gateway) -> None:
    """With nothing listening on the relay port the item waits; once a relay is there it goes."""
    from tests.conftest import SinkHandler

    port = free_port()
    running = make_gateway(relay_port=port)
    submit(running, make_mail())
    running.settle()
    [item] = outbox_rows(running)
    assert item.status == "pending" and item.last_error is not None
    handler = SinkHandler()
    controller = SessionsController(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        running.clock.advance(timedelta(minutes=1))
        running.settle()
    finally:
        stop_controller(controller)
    assert len(handler.messages) == 1
    assert outbox_rows(running)[0].status == "sent"


def test_gives_up_after_max_attempts(make_gateway, relay_sink: Sink) -> None:
    """A relay that keeps answering 4xx exhausts max_attempts; the item ends failed."""
    relay_sink.handler.replies = ["452 4.2.2 mailbox full"] * 3
    running = make_gateway(relay_port=relay_sink.port)
    object.__setattr__(running.gateway.outbox, "_max_attempts", 3)
    submit(running, make_mail())
    for _ in range(3):
        running.settle()
        running.clock.advance(timedelta(hours=2))
    [item] = outbox_rows(running)
    assert (item.status, item.attempts) == ("failed", 3)


def test_expired_lease_is_sent_again(make_gateway, relay_sink: Sink) -> None:
    """An item left 'sending' by a crash is sent once its lease expires; nothing is lost."""
    running = make_gateway(relay_port=relay_sink.port)
    from sqlalchemy import update

    from gateway.store.models import OutboxItem as Row

    submit(running, make_mail())
    running.loop.run(running.gateway.process_once())
    engine = running.gateway.db.engine
    with engine.begin() as connection:  # what a crash in the middle of a send leaves behind
        lease = running.clock.now() + timedelta(minutes=5)
        connection.execute(update(Row).values(status="sending", lease_until=lease))
    running.settle()
    assert relay_sink.messages == []
    running.clock.advance(timedelta(minutes=6))
    running.settle()
    assert len(relay_sink.messages) == 1


def test_maildir_keeps_one_copy_of_a_message_sent_twice(tmp_path: Path) -> None:
    """A message sent again after a kill (written, not yet recorded) replaces its first copy."""
    maildir = MaildirDelivery(tmp_path / "outgoing")
    first = b"Message-ID: <ack-1@example.com>\r\nSubject: one\r\n\r\nbody\r\n"
    second = b"Message-ID: <ack-2@example.com>\r\nSubject: two\r\n\r\nbody\r\n"
    for data in (first, first, second):
        asyncio.run(maildir.send("support@example.com", "ivan@acme.example", data))
    delivered = sorted(path.read_bytes() for path in (tmp_path / "outgoing" / "new").iterdir())
    assert delivered == sorted([first, second])
    assert list((tmp_path / "outgoing" / "tmp").iterdir()) == []
