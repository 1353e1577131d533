"""Internationalised senders (RFC 6531/6532, IDNA) are registered, acknowledged and matched."""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.tickets.view import list_tickets
from tests.conftest import (
    RunningGateway,
    SessionsController,
    Sink,
    SinkHandler,
    free_port,
    make_mail,
    stop_controller,
)

pytestmark = pytest.mark.adversarial

CUSTOMERS = """
[[customer]]
id = "primer"
name = "Пример"
tier = "24/7"
language = "ru"
domains = ["XN--E1AFMKFD.xn--p1ai"]
"""


@pytest.fixture
def ascii_relay() -> Iterator[Sink]:
    """A relay that does not offer SMTPUTF8 (aiosmtpd's Controller does by default)."""
    handler = SinkHandler()
    port = free_port()
    controller = SessionsController(handler, hostname="127.0.0.1", port=port,
                                    enable_SMTPUTF8=False)
    controller.start()
    try:
        yield Sink(handler, port)
    finally:
        stop_controller(controller)


def send_eai(port: int, sender: str, message_id: str) -> None:
    raw = make_mail(message_id="<placeholder@acme.example>").replace(
        b"Ivan Petrov <ivan@acme.example>", f"Иван Петров <{sender}>".encode()).replace(
        b"<placeholder@acme.example>", message_id.encode())
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("client.example")
        client.mail(sender, ["SMTPUTF8"])
        client.rcpt("support@example.com")
        code, reply = client.data(raw)
    assert code == 250, reply


def gateway_with(make_gateway, relay: Sink, tmp_path: Path) -> RunningGateway:
    (tmp_path / "customers.toml").write_text(CUSTOMERS, encoding="utf-8")
    running: RunningGateway = make_gateway(
        relay_port=relay.port, extra=f'[files]\ncustomers = "{tmp_path / "customers.toml"}"\n')
    return running


def test_an_eai_sender_is_registered_matched_and_acknowledged_with_smtputf8(
        make_gateway, relay_sink: Sink, tmp_path: Path) -> None:
    """иван@пример.рф matches the customer configured as xn--e1afmkfd.xn--p1ai and gets an
    acknowledgement through a relay that offers SMTPUTF8, addressed as written."""
    running = gateway_with(make_gateway, relay_sink, tmp_path)
    send_eai(running.smtp_port, "иван@пример.рф", "<eai-1@пример.рф>")
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["customer"] == "primer"
    assert ticket["requester"]["email"] == "иван@пример.рф"
    [ack] = relay_sink.messages
    assert ack["X-Envelope-To"] == "иван@пример.рф"
    assert "иван@пример.рф" in str(ack["To"])


def test_an_idna_domain_needs_no_smtputf8(make_gateway, ascii_relay: Sink,
                                          tmp_path: Path) -> None:
    """An ASCII local part at a Unicode domain is sent to the domain's A-labels."""
    running = gateway_with(make_gateway, ascii_relay, tmp_path)
    send_eai(running.smtp_port, "ivan@пример.рф", "<eai-2@acme.example>")
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["customer"] == "primer"
    [ack] = ascii_relay.messages
    assert ack["X-Envelope-To"] == "ivan@xn--e1afmkfd.xn--p1ai"


def test_without_smtputf8_at_the_relay_the_ticket_says_why(make_gateway, ascii_relay: Sink,
                                                           tmp_path: Path) -> None:
    """Registered all the same; the acknowledgement fails for good (not retried) and the
    ticket's notes name the reason."""
    running = gateway_with(make_gateway, ascii_relay, tmp_path)
    send_eai(running.smtp_port, "иван@пример.рф", "<eai-3@пример.рф>")
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ascii_relay.messages == []
    with running.gateway.db.engine.connect() as connection:
        notes = json.loads(connection.execute(text("SELECT notes FROM tickets")).scalar_one())
        [(status, error)] = connection.execute(text("SELECT status, last_error FROM outbox"))
    assert status == "failed" and "SMTPUTF8" in error
    assert any("SMTPUTF8" in note and "иван@пример.рф" in note for note in notes), notes
    assert ticket["customer"] == "primer"
