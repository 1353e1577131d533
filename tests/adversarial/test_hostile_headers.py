"""Hostile e-mail headers: what is stored and shown has no lone surrogates or bidi controls."""

from __future__ import annotations

import smtplib

import pytest

from gateway.tickets.view import list_tickets
from tests.conftest import RunningGateway, Sink, make_mail

pytestmark = pytest.mark.adversarial


def test_surrogates_and_bidi_overrides_in_mail_headers_are_removed(
        make_gateway, relay_sink: Sink) -> None:
    """A UTF-7 encoded word decodes to a lone surrogate (PostgreSQL cannot store it); U+202E
    in the sender's name and the subject would make them display reversed."""
    running: RunningGateway = make_gateway(relay_port=relay_sink.port)
    raw = make_mail(sender="=?utf-8?b?SXZhbiDigK5zb3J0ZVA=?= <ivan@acme.example>",
                    message_id="<hostile-headers@acme.example>")
    raw = raw.replace(b"Subject: Messages are not delivered",
                      b"Subject: =?utf-7?q?Invoice_+2AA-_paid?= =?utf-8?b?4oCuZXhlLnBkZg==?=")
    with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=60) as client:
        client.sendmail("ivan@acme.example", ["support@example.com"], raw)
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Invoice  paidexe.pdf", ticket
    assert ticket["requester"]["name"] == "Ivan sorteP"
    [ack] = relay_sink.messages
    for text in (str(ack["Subject"]), str(ack["To"])):
        assert not any(c in text for c in "\u202e\ud800"), text
