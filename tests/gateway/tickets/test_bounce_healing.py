"""Bounces that heal: only a permanent failure blocks an address, and not for ever."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.clock import ManualClock
from gateway.config.settings import LoadedSettings
from gateway.daemon.context_files import build_context
from gateway.tickets.lifecycle import apply_event, parse_event
from parsers.email import parse_email
from tests.conftest import make_mail
from tests.gateway.tickets.test_mail_threads import acknowledgements
from tests.gateway.tickets.test_processing import _dispose_engines, ingest, setup

__all__ = ["_dispose_engines"]


def report(returned: bytes, action: str, status: str, diagnostic: str = "",
           recipient: str = "ivan@acme.example") -> bytes:
    """A multipart/report DSN about RECIPIENT returning the headers RETURNED."""
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.acme.example>\r\n"
        b"To: support@example.com\r\nSubject: Delivery Status Notification\r\n"
        b"Message-ID: <dsn-" + status.encode() + action.encode() + b"@mx.acme.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b" boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
        b"This is the mail system at host mx.acme.example.\r\n\r\n"
        b"--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.acme.example\r\n\r\nFinal-Recipient: rfc822; "
        + recipient.encode() + b"\r\nAction: " + action.encode() + b"\r\nStatus: "
        + status.encode() + b"\r\nDiagnostic-Code: smtp; " + diagnostic.encode() +
        b"\r\n\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n" + returned +
        b"\r\n--b1--\r\n")


def notice_queued(engine: Engine, loaded: LoadedSettings, clock: ManualClock,
                  priority: str) -> bool:
    """Whether a priority change of SUP-000001 queues a notice to the customer."""
    clock.advance(timedelta(minutes=1))
    applied = apply_event(engine, build_context(loaded, clock), "SUP-000001", parse_event(
        {"type": "priority_changed", "priority": priority, "reason": "scope changed",
         "customer_agreed": True}))
    return applied.enqueued == 1


def bounced(tmp_path: Path, database_url: str, action: str, status: str,
            diagnostic: str = "") -> tuple[Engine, LoadedSettings, ManualClock]:
    engine, loaded, clock = setup(database_url, tmp_path)
    ingest(engine, loaded, clock, make_mail())
    [ack] = acknowledgements(engine)
    ingest(engine, loaded, clock, report(ack.message.split(b"\r\n\r\n", 1)[0] + b"\r\n",
                                         action, status, diagnostic))
    return engine, loaded, clock


@pytest.mark.parametrize(("action", "status", "diagnostic"), [
    ("delayed", "4.4.1", "451 4.4.1 connection timed out, will retry"),
    ("failed", "5.2.2", "552 5.2.2 Mailbox full"),
    ("failed", "5.7.1", "550 5.7.1 Message rejected as spam"),
], ids=["4.x.x-delay", "mailbox-full", "policy-refusal"])
def test_temporary_or_message_failures_do_not_block(database_url: str, tmp_path: Path,
                                                    action: str, status: str,
                                                    diagnostic: str) -> None:
    engine, loaded, clock = bounced(tmp_path, database_url, action, status, diagnostic)
    assert notice_queued(engine, loaded, clock, "critical")


def test_unknown_user_blocks_until_the_customer_writes_again(database_url: str,
                                                             tmp_path: Path) -> None:
    engine, loaded, clock = bounced(tmp_path, database_url, "failed", "5.1.1",
                                    "550 5.1.1 User unknown")
    assert not notice_queued(engine, loaded, clock, "critical")
    ingest(engine, loaded, clock, make_mail("Another question"))
    assert len(acknowledgements(engine)) == 2  # the new request is acknowledged
    assert notice_queued(engine, loaded, clock, "high")


def test_a_block_expires(database_url: str, tmp_path: Path) -> None:
    """loops.undeliverable_days (30 by default) after the bounce, mail goes out again."""
    engine, loaded, clock = bounced(tmp_path, database_url, "failed", "5.1.1")
    assert not notice_queued(engine, loaded, clock, "critical")
    clock.advance(timedelta(days=31))
    assert notice_queued(engine, loaded, clock, "high")


def test_a_successful_delivery_report_lifts_the_block(database_url: str,
                                                      tmp_path: Path) -> None:
    engine, loaded, clock = bounced(tmp_path, database_url, "failed", "5.1.1")
    assert not notice_queued(engine, loaded, clock, "critical")
    ingest(engine, loaded, clock, report(b"X-Nothing: returned\r\n", "delivered", "2.0.0",
                                         "250 2.0.0 OK"))
    assert notice_queued(engine, loaded, clock, "high")


def test_bounce_permanence_and_recipients_without_a_delivery_status_part() -> None:
    """No-reply and MAILER-DAEMON-like senders with only a human-readable text."""
    unknown = parse_email(
        b"From: Mail Delivery System <no-reply@mail.example>\r\nTo: support@example.com\r\n"
        b"Subject: Message not delivered\r\n\r\nYour message to ivan@acme.example could not "
        b"be delivered.\r\nThe recipient mailbox does not exist.\r\n")
    assert (unknown.kind, unknown.failed_recipients, unknown.bounce_permanent) == (
        "bounce", ["ivan@acme.example"], True)
    full = parse_email(
        b"From: Postmaster <postmaster@acme.example>\r\nTo: support@example.com\r\n"
        b"Subject: Returned mail\r\n\r\nThe mailbox of ivan@acme.example is full, try again "
        b"later.\r\n")
    assert (full.kind, full.failed_recipients, full.bounce_permanent) == (
        "bounce", ["ivan@acme.example"], False)


@pytest.mark.parametrize("sender", [
    "users-owner@lists.example.org", "users-request@lists.example.org",
    "owner-users@lists.example.org", "LISTSERV@lists.example.org", "Majordomo@lists.example.org",
    "mailman@lists.example.org", "users-bounces+support=example.com@lists.example.org",
])
def test_list_managers_notices_are_not_acknowledged(database_url: str, tmp_path: Path,
                                                    sender: str) -> None:
    engine, loaded, clock = setup(database_url, tmp_path)
    raw = make_mail("Your message to users awaits moderator approval", sender=sender,
                    body="Your mail to 'users' is being held until the list moderator "
                         "can review it for approval.")
    assert parse_email(raw).kind == "list"
    ingest(engine, loaded, clock, raw)
    assert acknowledgements(engine) == []
