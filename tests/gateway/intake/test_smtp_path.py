"""The e-mail path end to end over real SMTP conversations, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import smtplib
import subprocess
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.tickets.view import list_tickets, show_ticket
from tests.conftest import RunningGateway, Sink, make_mail
from tests.gateway.cli.test_cli import MakeGateway, cli


def send(port: int, raw: bytes, sender: str = "ivan@acme.example",
         recipients: tuple[str, ...] = ("support@example.com",)) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, list(recipients), raw)


def test_mail_becomes_ticket_and_acknowledgement(make_gateway, relay_sink: Sink) -> None:
    """A message answered 250 is a registered ticket whose acknowledgement reaches the relay."""
    running: RunningGateway = make_gateway(relay_port=relay_sink.port, workers=True)
    send(running.smtp_port, make_mail(message_id="<m1@acme.example>"))
    running.settle()

    tickets = list_tickets(running.gateway.db.engine)
    assert [t["number"] for t in tickets] == ["SUP-000001"]
    ticket = tickets[0]
    assert ticket["status"] == "registered"
    assert ticket["requester"] == {"name": "Ivan Petrov", "email": "ivan@acme.example",
                                   "phone": None}
    assert ticket["acknowledged_at"] == "2026-11-25T08:00:00Z"
    assert [m["kind"] for m in ticket["messages"]] == ["request", "acknowledgement"]

    [ack] = relay_sink.messages
    assert ack["Subject"] == "[SUP-000001] Messages are not delivered"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == "<m1@acme.example>"
    assert ack["References"] == "<m1@acme.example>"
    assert ack["X-Envelope-To"] == "ivan@acme.example"
    assert ticket["messages"][1]["message_id"] == ack["Message-ID"]
    body = ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "SUP-000001" in body and "2 (" in body  # messages not delivered: high (seed)


def test_same_message_twice_registers_once(make_gateway, relay_sink: Sink) -> None:
    """A redelivered message (same Message-ID) is one ticket and one acknowledgement."""
    running = make_gateway(relay_port=relay_sink.port)
    raw = make_mail(message_id="<twice@acme.example>")
    send(running.smtp_port, raw)
    running.settle()
    send(running.smtp_port, raw)
    send(running.smtp_port, raw)
    running.settle()
    assert len(list_tickets(running.gateway.db.engine)) == 1
    assert len(relay_sink.messages) == 1


def test_numbers_are_sequential(make_gateway) -> None:
    """Ticket numbers count up from SUP-000001 without gaps."""
    running = make_gateway()
    for index in range(5):
        send(running.smtp_port, make_mail(f"request {index}"))
    running.settle()
    numbers = sorted(t["number"] for t in list_tickets(running.gateway.db.engine))
    assert numbers == [f"SUP-00000{i}" for i in range(1, 6)]
    acknowledgements = list((running.state / "outgoing" / "new").iterdir())
    assert len(acknowledgements) == 5


def test_unknown_recipient_gets_550(make_gateway) -> None:
    """With a recipient allow-list, any other RCPT TO is refused with 550 and nothing is stored."""
    running = make_gateway(smtp='recipients = ["support@example.com"]')
    with smtplib.SMTP("127.0.0.1", running.smtp_port) as client:
        client.ehlo()
        client.mail("ivan@acme.example")
        code, _ = client.rcpt("sales@example.com")
        assert code == 550
        code, _ = client.rcpt("Support@Example.com")
        assert code == 250


def test_oversize_message_gets_552(make_gateway) -> None:
    """A message above max_message_bytes is refused with 552 at DATA and not stored."""
    running = make_gateway(smtp="max_message_bytes = 10000")
    big = make_mail(body=("x" * 70 + "\n") * 300)
    with smtplib.SMTP("127.0.0.1", running.smtp_port) as client:
        client.ehlo()
        # No SIZE= on MAIL FROM, so the limit can only be enforced on the data itself.
        assert client.mail("ivan@acme.example")[0] == 250
        assert client.rcpt("support@example.com")[0] == 250
        code, answer = client.data(big)
    assert code == 552, answer
    # A client that declares the size is refused before it sends anything.
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        send(running.smtp_port, big)
    assert refused.value.smtp_code == 552
    running.settle()
    assert list_tickets(running.gateway.db.engine) == []


def test_thirty_megabytes_get_552_at_data_under_the_default_limit(
        make_gateway: MakeGateway) -> None:
    """Under the default max_message_bytes (25 MiB) a 30 MB message is refused with 552 at
    DATA and not stored, and the same session then delivers an ordinary message."""
    running: RunningGateway = make_gateway()
    assert running.gateway.settings.smtp is not None
    assert running.gateway.settings.smtp.max_message_bytes == 25 * 1024 * 1024
    line = b"x" * 76 + b"\r\n"
    huge = (b"From: Ivan Petrov <ivan@acme.example>\r\nTo: support@example.com\r\n"
            b"Subject: Full server log\r\nMessage-ID: <huge@acme.example>\r\n\r\n"
            + line * (30_000_000 // len(line) + 1))
    assert len(huge) > 30_000_000
    with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=120) as client:
        client.ehlo()
        # No SIZE= on MAIL FROM (smtplib's sendmail would declare it and be refused there).
        assert client.mail("ivan@acme.example")[0] == 250
        assert client.rcpt("support@example.com")[0] == 250
        code, answer = client.data(huge)
        assert code == 552, answer
        client.sendmail("ivan@acme.example", ["support@example.com"],
                        make_mail("After the huge one", message_id="<after@acme.example>"))
    running.settle()
    with running.gateway.db.engine.connect() as connection:
        keys = connection.execute(text("SELECT idempotency_key FROM inputs")).scalars().all()
    assert keys == ["msgid:after@acme.example"]
    assert [t["subject"] for t in list_tickets(running.gateway.db.engine)] == [
        "After the huge one"]


def test_database_failure_answers_451_then_recovers(make_gateway) -> None:
    """When the input cannot be committed the sender gets 451 (and retries); later it works."""
    running = make_gateway()
    engine = running.gateway.db.engine
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inputs RENAME TO inputs_away"))
    raw = make_mail(message_id="<retry@acme.example>")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(running.smtp_port, raw)
    assert refused.value.smtp_code == 451
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inputs_away RENAME TO inputs"))
    send(running.smtp_port, raw)
    running.settle()
    assert len(list_tickets(engine)) == 1


def test_shutdown_answers_421(make_gateway) -> None:
    """While stopping, a new transaction is told 421 so the sender keeps the mail."""
    running = make_gateway()
    running.gateway.smtp_handler.closing = True
    with smtplib.SMTP("127.0.0.1", running.smtp_port) as client:
        client.ehlo()
        code, _ = client.mail("ivan@acme.example")
    assert code == 421


def test_reply_with_ticket_tag_joins_ticket(make_gateway, relay_sink: Sink) -> None:
    """A reply naming [SUP-000001] or our acknowledgement's Message-ID adds to that ticket."""
    running = make_gateway(relay_port=relay_sink.port)
    send(running.smtp_port, make_mail(message_id="<first@acme.example>"))
    running.settle()
    [ack] = relay_sink.messages
    send(running.smtp_port, make_mail("Re: [SUP-000001] Messages are not delivered",
                                      body="It is still broken for everyone here, please hurry."))
    send(running.smtp_port, make_mail("Re: your mail", body="Logs attached as promised today.",
                                      headers={"In-Reply-To": str(ack["Message-ID"])}))
    running.settle()
    engine = running.gateway.db.engine
    assert len(list_tickets(engine)) == 1
    ticket = show_ticket(engine, "SUP-000001")
    assert ticket is not None
    assert [m["kind"] for m in ticket["messages"]] == [
        "request", "acknowledgement", "reply", "reply"]
    assert len(relay_sink.messages) == 1


def test_configured_prefix_numbers_tags_and_threads(make_gateway: MakeGateway,
                                                    relay_sink: Sink) -> None:
    """With ticket_prefix "HD-" tickets are numbered HD-000001 on, the acknowledgement's
    subject carries [HD-000001], a reply with that tag joins the ticket, and a [SUP-…] tag
    (not ours now) starts a new one."""
    running: RunningGateway = make_gateway(relay_port=relay_sink.port,
                                           intake='ticket_prefix = "HD-"')
    send(running.smtp_port, make_mail(message_id="<hd1@acme.example>"))
    send(running.smtp_port, make_mail("Calls drop", message_id="<hd2@acme.example>",
                                      body="Calls drop after ten seconds for all our users."))
    running.settle()
    assert {str(m["In-Reply-To"]): str(m["Subject"]) for m in relay_sink.messages} == {
        "<hd1@acme.example>": "[HD-000001] Messages are not delivered",
        "<hd2@acme.example>": "[HD-000002] Calls drop"}
    send(running.smtp_port, make_mail("Re: [HD-000001] Messages are not delivered",
                                      body="It is still broken for everyone here, please hurry."))
    send(running.smtp_port, make_mail("Fwd: [SUP-000001] Messages are not delivered",
                                      message_id="<sup@acme.example>",
                                      body="The old system's ticket, the same trouble again."))
    running.settle()
    engine = running.gateway.db.engine
    assert [t["number"] for t in list_tickets(engine)] == ["HD-000003", "HD-000002", "HD-000001"]
    first = show_ticket(engine, "HD-000001")
    assert first is not None
    assert [m["kind"] for m in first["messages"]] == ["request", "acknowledgement", "reply"]
    assert str(relay_sink.messages[-1]["Subject"]) == (
        "[HD-000003] Fwd: [SUP-000001] Messages are not delivered")
    assert len(relay_sink.messages) == 3


CUSTOMERS = ('[[customer]]\nid = "acme"\nname = "ACME"\ntier = "8/5"\nlanguage = "en"\n'
             'domains = ["acme.example"]\n')


def test_unknown_sender_registers_with_customer_null(make_gateway: MakeGateway,
                                                     tmp_path: Path) -> None:
    """Mail from a sender no customer matches is registered with customer and tier null, on
    the clock of intake.unknown_customer_tier, as `tickets show --json` prints it."""
    (tmp_path / "customers.toml").write_text(CUSTOMERS, encoding="utf-8")
    # Premium (15 min reaction) rather than the default 8/5 (1 h): the setting must be applied.
    running: RunningGateway = make_gateway(intake='unknown_customer_tier = "premium"',
                                           extra='[files]\ncustomers = "customers.toml"\n')
    send(running.smtp_port, make_mail(sender="Olga <olga@stranger.example>"),
         sender="olga@stranger.example")
    send(running.smtp_port, make_mail("From a customer"))
    running.settle()
    config = running.gateway.loaded.path
    assert config is not None
    shown = json.loads(cli("tickets", "show", "SUP-000001", "--json", config=config).stdout)
    assert (shown["customer"], shown["tier"], shown["requester"]["email"]) == (
        None, None, "olga@stranger.example")
    # Received at START (11:00 in Moscow), high priority (messages not delivered): premium
    # reacts within 15 minutes and resolves within 6 hours, both on the clock.
    assert {key: shown[key] for key in ("status", "priority", "registered_at", "reaction_due",
                                        "resolution_due", "acknowledged_at")} == {
        "status": "registered", "priority": "high", "registered_at": "2026-11-25T08:00:00Z",
        "reaction_due": "2026-11-25T08:15:00Z", "resolution_due": "2026-11-25T14:00:00Z",
        "acknowledged_at": "2026-11-25T08:00:00Z"}
    known = show_ticket(running.gateway.db.engine, "SUP-000002")
    assert known is not None and (known["customer"], known["tier"]) == ("acme", "8/5")


def test_auto_reply_is_stored_but_never_acknowledged(make_gateway, relay_sink: Sink) -> None:
    """An out-of-office answer is stored without a ticket and bulk mail registers one; each
    says why, and neither gets an acknowledgement."""
    running = make_gateway(relay_port=relay_sink.port)
    send(running.smtp_port, make_mail("Out of office", headers={"Auto-Submitted": "auto-replied"},
                                      body="I am out of the office until Monday, 30 November."))
    send(running.smtp_port, make_mail("Bulk", headers={"Precedence": "bulk"},
                                      body="Our monthly newsletter with many words in it here."))
    running.settle()
    assert relay_sink.messages == []
    engine = running.gateway.db.engine
    with engine.connect() as connection:
        inputs = connection.execute(text("SELECT status, outcome FROM inputs ORDER BY id")).all()
        queued = connection.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    assert [tuple(row) for row in inputs] == [
        ("processed", "stored, not registered: auto reply"),
        ("processed", "registered SUP-000001")]
    [bulk] = list_tickets(engine)
    assert bulk["notes"] == ["no acknowledgement: Precedence: bulk"]
    assert queued == 0


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed (apt swaks)")
def test_swaks_as_independent_client(make_gateway, tmp_path: Path) -> None:
    """An SMTP client we did not write (swaks) gets its mail registered and acknowledged."""
    running = make_gateway()
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{running.smtp_port}", "--from", "olga@acme.example",
         "--to", "support@example.com", "--header", "Subject: Calls drop after ten seconds",
         "--body", "Calls drop after ten seconds for every user in our Moscow office today."],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  250 2.0.0 OK stored as input 1" in result.stdout
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Calls drop after ten seconds"
    [ack_file] = (running.state / "outgoing" / "new").iterdir()
    ack = message_from_bytes(ack_file.read_bytes(), policy=policy.default)
    assert ack["To"] == "olga@acme.example"


def test_hostile_bytes_over_smtp_are_stored_not_crashed_on(make_gateway) -> None:
    """NUL bytes, 8-bit junk, no headers, broken MIME: each gets 250 and an outcome; the
    listener keeps serving."""
    running = make_gateway()
    hostile = [
        b"\x00\x01\x02 binary \xff\xfe\r\n",
        b"just text, no header block\r\n",
        b"Subject: =?bogus?Q?=ZZ?=\r\nContent-Type: multipart/mixed\r\n\r\n--\r\n\xc0\xc1\r\n",
        b"From: <>\r\nSubject: \xd4\xc5\xd3\xd4 in raw koi8-r\r\n\r\n\xd4\xc5\xd3\xd4\r\n",
    ]
    for raw in hostile:
        send(running.smtp_port, raw)
    running.settle()
    send(running.smtp_port, make_mail("still alive"))
    running.settle()
    engine = running.gateway.db.engine
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status FROM inputs ORDER BY id")).scalars().all()
    assert len(rows) == len(hostile) + 1
    assert set(rows) <= {"processed", "failed"}
    assert list_tickets(engine)[0]["subject"] == "still alive"


def test_workers_keep_the_configuration_yet_follow_clock_and_reload(
        make_gateway, relay_sink: Sink, tmp_path: Path) -> None:
    """A worker process unpickles the configuration once, yet every batch runs at the
    gateway's current time and a reload's new rules apply to the next batch."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "all-low"\n[rule.when]\nsubject_contains = ["printer"]\n'
                     '[rule.then]\npriority = "low"\n', encoding="utf-8")
    running = make_gateway(relay_port=relay_sink.port, workers=True,
                           extra=f'[files]\nrules = "{rules}"\n')
    send(running.smtp_port, make_mail("The printer jams"))
    running.settle()
    running.clock.advance(timedelta(minutes=7))
    send(running.smtp_port, make_mail("The printer jams again"))
    running.settle()
    rules.write_text('[[rule]]\nname = "all-critical"\n[rule.when]\n'
                     'subject_contains = ["printer"]\n[rule.then]\npriority = "critical"\n',
                     encoding="utf-8")
    assert running.gateway.reload()
    send(running.smtp_port, make_mail("The printer is on fire"))
    running.settle()

    tickets = sorted(list_tickets(running.gateway.db.engine), key=lambda t: t["number"])
    assert [(t["priority"], t["acknowledged_at"]) for t in tickets] == [
        ("low", "2026-11-25T08:00:00Z"), ("low", "2026-11-25T08:07:00Z"),
        ("critical", "2026-11-25T08:07:00Z")]
