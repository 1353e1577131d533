"""Loop protection end to end: the per-ticket rate limit and the signals that forbid an answer."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from gateway.config.settings import LoopSettings
from gateway.daemon.context_files import build_context
from gateway.store.db import transaction
from gateway.store.models import NO_ACKNOWLEDGEMENT, OutboxItem, Ticket
from gateway.tickets.lifecycle import apply_event, parse_event
from gateway.tickets.mail_loops import ticket_limit_reached
from gateway.tickets.view import list_tickets
from tests.conftest import RunningGateway, Sink, make_mail
from tests.gateway.outbox.test_outbox import submit
from tests.gateway.sla.test_sla_clock import FRIDAY_EVENING, MONDAY_OPEN, ticket
from tests.gateway.tickets.test_mail_threads import acknowledgements, delivery_report
from tests.gateway.tickets.test_processing import _dispose_engines, ingest, setup, statuses
from tests.gateway.tickets.test_ticket_events import event

__all__ = ["_dispose_engines"]

# Texts the default rules judge low, medium, high and critical: each reply raises the ticket.
LOW = "Help!"
MEDIUM = ("Since 09:00 the admin console shows an empty message queue for all our admins; users "
          "are not affected.")
HIGH = "Since this morning messages are not delivered to most users of ours."
CRITICAL = "Now the whole system is down: nobody can log in at all, no workaround."


def reply(body: str) -> bytes:
    return make_mail("Re: [SUP-000001] Help", body=body)


def outgoing(shown: dict[str, object]) -> list[str]:
    messages = shown["messages"]
    assert isinstance(messages, list)
    return [m["kind"] for m in messages if m["direction"] == "out"]


def test_replies_get_at_most_the_ticket_limit_of_messages(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink) -> None:
    """A customer whose replies keep changing the ticket gets at most `loops.ticket_limit`
    (default 5) messages about it per window; the notice withheld is in the ticket's notes with
    its reason, and once the window has passed we write again."""
    running = make_gateway(relay_port=relay_sink.port)
    submit(running, make_mail("Help", body=LOW))
    running.settle()
    # Each reply raises the priority, and each raise tells the customer: three notices. A
    # minute apart, as mail comes: notices at one instant to one priority share a dedup key.
    for body in (MEDIUM, HIGH, CRITICAL):
        running.clock.advance(timedelta(minutes=1))
        submit(running, reply(body))
        running.settle()
    running.clock.advance(timedelta(minutes=1))
    event(running, "SUP-000001", type="priority_proposed", priority="high",
          reason="Messages flow again for most users")
    running.settle()
    assert len(relay_sink.messages) == 5
    # Agreeing applies the change; telling the customer would be the sixth message this hour.
    running.clock.advance(timedelta(minutes=1))
    submit(running, reply("I agree."))
    running.settle()
    shown = ticket(running)
    assert shown["priority"] == "high"
    assert len(relay_sink.messages) == 5
    assert outgoing(shown) == ["acknowledgement"] + ["notice"] * 4
    assert shown["notes"] == ["2026-11-25T08:05:00+00:00: priority changed notice not sent: "
                              "rate limit: 5 automatic messages about this ticket in the last "
                              "60 min"]
    running.clock.advance(timedelta(minutes=61))
    event(running, "SUP-000001", type="priority_proposed", priority="medium",
          reason="A workaround is in place")
    running.settle()
    assert len(relay_sink.messages) == 6, "the window has moved on"


def test_acknowledgement_at_registration_is_held_to_the_ticket_limit(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink) -> None:
    """The acknowledgement sent when the intake window opens counts like any message about the
    ticket: over the limit it is withheld, and the notes say why."""
    running = make_gateway(
        relay_port=relay_sink.port, extra="[loops]\nticket_limit = 1\nticket_window_min = 5000\n")
    running.clock.set(FRIDAY_EVENING)
    submit(running, make_mail())
    running.settle()
    assert outgoing(ticket(running)) == ["notice"]  # the courtesy notice
    running.clock.set(MONDAY_OPEN + timedelta(seconds=20))
    running.settle()
    shown = ticket(running)
    assert shown["status"] == "registered"
    assert shown["notes"] == ["2026-11-30T07:00:20+00:00: acknowledgement not sent: rate limit: "
                              "1 automatic messages about this ticket in the last 5000 min"]
    assert len(relay_sink.messages) == 1
    # Like a request that is never acknowledged: no reaction to count in the SLA report.
    with Session(running.gateway.db.engine) as session:
        registered = session.get(Ticket, 1)
        assert registered is not None and registered.sla_outcome & NO_ACKNOWLEDGEMENT


def test_staff_mail_does_not_count_towards_the_ticket_limit(database_url: str,
                                                            tmp_path: Path) -> None:
    """Escalations and alerts go to our own staff: they cannot loop with the customer, and
    must not use up the messages the customer may still be sent about the ticket."""
    engine, loaded, clock = setup(database_url, tmp_path)
    ingest(engine, loaded, clock, make_mail())
    limits = LoopSettings(ticket_limit=2)
    with transaction(engine) as session:
        found = session.exec(select(Ticket)).one()
        for number, kind in enumerate(["escalation", "escalation", "alert"]):
            session.add(OutboxItem(dedup_key=f"staff:{number}", ticket_id=found.id, kind=kind,
                                   sender="support@example.com", recipient="duty@example.com",
                                   message_id=f"s{number}", message=b"x",
                                   next_attempt_at=clock.now(), created_at=clock.now()))
        session.flush()
        assert ticket_limit_reached(session, int(found.id or 0), clock.now(), limits) is None


def test_no_notice_to_an_address_our_mail_bounced_from(database_url: str,
                                                       tmp_path: Path) -> None:
    """Once a bounce of our acknowledgement marks the customer undeliverable, a priority change
    still applies but queues no notice to them, and the ticket's notes say why."""
    engine, loaded, clock = setup(database_url, tmp_path)
    ingest(engine, loaded, clock, make_mail())
    [ack] = acknowledgements(engine)
    ingest(engine, loaded, clock, delivery_report(ack.message.split(b"\r\n\r\n", 1)[0]))
    clock.advance(timedelta(minutes=1))
    applied = apply_event(engine, build_context(loaded, clock), "SUP-000001", parse_event(
        {"type": "priority_changed", "priority": "critical", "reason": "all users affected"}))
    assert (applied.ticket["priority"], applied.enqueued) == ("critical", 0)
    assert applied.ticket["notes"][-1] == (
        "2026-11-25T08:01:00+00:00: priority changed notice not sent: ivan@acme.example is "
        "undeliverable: bounce of our message to ivan@acme.example")
    assert len(acknowledgements(engine)) == 1


def outbox_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(OutboxItem)).all())


@pytest.mark.parametrize(("sender", "headers", "reason"), [
    ("noreply@acme.example", {}, "no-reply sender noreply@acme.example"),
    ("No Reply <no-reply@acme.example>", {}, "no-reply sender no-reply@acme.example"),
    ("do_not_reply@acme.example", {}, "no-reply sender do_not_reply@acme.example"),
    ("Ivan Petrov <ivan@acme.example>", {"X-Auto-Response-Suppress": "OOF, AutoReply"},
     "X-Auto-Response-Suppress: oof, autoreply"),
    # Our own outgoing address, however its case is written.
    ("Support Team <Support@Example.COM>", {}, "sender support@example.com is our own address"),
    # Without an SMTP envelope (IMAP, `ingest`), the delivering server's Return-Path tells.
    ("Ivan Petrov <ivan@acme.example>", {"Return-Path": "<>"}, "null return path"),
], ids=["noreply", "no-reply", "do_not_reply", "x-auto-response-suppress", "own-address",
        "return-path-header"])
def test_loop_signal_is_stored_with_its_reason_and_never_acknowledged(
        database_url: str, tmp_path: Path, sender: str, headers: dict[str, str],
        reason: str) -> None:
    """A request that must never be answered automatically is registered all the same, its
    notes say why it was not acknowledged, and nothing is queued to be sent."""
    engine, loaded, clock = setup(database_url, tmp_path)
    ingest(engine, loaded, clock, make_mail(sender=sender, headers=headers))
    [stored] = list_tickets(engine)
    assert stored["notes"] == [f"no acknowledgement: {reason}"]
    assert statuses(engine) == [("processed", "registered SUP-000001", None)]
    assert outbox_count(engine) == 0


def test_null_return_path_is_stored_with_its_reason_and_never_acknowledged(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink) -> None:
    """Mail sent with `MAIL FROM:<>` (how RFC 5321 marks mail that must not be answered) is
    registered, its notes say "null return path", and nothing reaches the relay."""
    running = make_gateway(relay_port=relay_sink.port)
    with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
        client.ehlo()
        assert client.mail("")[0] == 250  # smtplib writes an empty sender as MAIL FROM:<>
        assert client.rcpt("support@example.com")[0] == 250
        assert client.data(make_mail())[0] == 250
    running.settle()
    engine = running.gateway.db.engine
    with engine.connect() as connection:
        [source] = connection.execute(text("SELECT source FROM inputs")).scalars().all()
    assert json.loads(source)["mail_from"] == "<>"
    [stored] = list_tickets(engine)
    assert stored["notes"] == ["no acknowledgement: null return path"]
    assert outbox_count(engine) == 0
    assert relay_sink.messages == []
