"""Structural limits: refused at the SMTP edge with 554, quarantined when they came another way."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from gateway.cli.quarantine import list_quarantine
from gateway.tickets.view import list_tickets
from tests.conftest import RunningGateway, make_mail
from tests.gateway.tickets.test_processing import ingest, setup, statuses

LIMITS = """
[limits]
mime_parts = 5
mime_depth = 3
header_count = 20
header_line_bytes = 200
attachments = 2
"""


def nested(depth: int) -> bytes:
    """A message whose multiparts are DEPTH deep."""
    body = b"Content-Type: text/plain\r\n\r\nThe printer on floor 3 does not print at all.\r\n"
    for level in range(depth):
        boundary = f"level{level}".encode()
        body = (b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--'
                + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
    return (b"From: Ivan Petrov <ivan@acme.example>\r\nTo: support@example.com\r\n"
            b"Subject: Nested\r\nMessage-ID: <nested@acme.example>\r\n" + body)


def with_attachments(count: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Ivan Petrov <ivan@acme.example>"
    message["To"] = "support@example.com"
    message["Subject"] = "Logs attached"
    message["Message-ID"] = f"<attach{count}@acme.example>"
    message.set_content("The printer on floor 3 does not print, logs attached here.")
    for index in range(count):
        message.add_attachment(b"log line\n", maintype="text", subtype="plain",
                               filename=f"log{index}.txt")
    return message.as_bytes(policy=SMTP)


OVER_LIMITS = {
    "header_count": make_mail(headers={f"X-Extra-{i}": "x" for i in range(30)}),
    "header_line_bytes": make_mail(headers={"X-Long": "word " * 100}),
    "mime_parts": with_attachments(6),
    "mime_depth": nested(5),
}


def refusal(port: int, raw: bytes) -> tuple[int, bytes]:
    with (smtplib.SMTP("127.0.0.1", port, timeout=30) as client,
          pytest.raises(smtplib.SMTPDataError) as refused):
        client.sendmail("ivan@acme.example", ["support@example.com"], raw)
    return refused.value.smtp_code, refused.value.smtp_error


def stored_inputs(running: RunningGateway) -> int:
    with running.gateway.db.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM inputs")).scalar_one())


@pytest.mark.parametrize("limit", sorted(OVER_LIMITS))
def test_smtp_refuses_message_over_a_limit(make_gateway, limit: str) -> None:
    """554 5.3.4 names the limit, the value and the maximum; nothing is stored; it is logged."""
    running: RunningGateway = make_gateway(extra=LIMITS)
    with capture_logs() as logs:
        code, message = refusal(running.smtp_port, OVER_LIMITS[limit])
    assert code == 554, message
    assert message.startswith(b"5.3.4 Message too complex: " + limit.encode() + b" ")
    assert b"exceeds the maximum" in message
    assert stored_inputs(running) == 0
    [logged] = [e for e in logs if e["event"] == "smtp.refused"]
    assert logged["limit"] == limit and logged["log_level"] == "warning"


def test_smtp_accepts_message_within_the_limits(make_gateway) -> None:
    """At the limits (two attachments, three levels) the message is stored and registered."""
    running: RunningGateway = make_gateway(extra=LIMITS)
    with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
        client.sendmail("ivan@acme.example", ["support@example.com"], with_attachments(2))
        client.sendmail("ivan@acme.example", ["support@example.com"], nested(3))
    running.settle()
    assert len(list_tickets(running.gateway.db.engine)) == 2


def test_smtp_default_limits_accept_ordinary_mail(make_gateway) -> None:
    running: RunningGateway = make_gateway()
    with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
        client.sendmail("ivan@acme.example", ["support@example.com"], with_attachments(20))
    assert stored_inputs(running) == 1


@pytest.mark.parametrize("limit", [*sorted(OVER_LIMITS), "attachments"])
def test_input_over_a_limit_is_quarantined(database_url: str, tmp_path: Path,
                                            limit: str) -> None:
    """An input that came by IMAP or ingest is kept, failed with the limit named, not registered."""
    engine, loaded, clock = setup(database_url, tmp_path, extra=LIMITS)
    raw = OVER_LIMITS.get(limit) or with_attachments(3)
    ingest(engine, loaded, clock, raw, make_mail("after the big one"))
    [(status, _, error), (after, _, _)] = statuses(engine)
    assert status == "failed" and after == "processed"
    assert error is not None and error.startswith(f"LimitExceeded: {limit} ")
    [quarantined] = list_quarantine(engine)
    assert quarantined["error"] == error
    assert [t["subject"] for t in list_tickets(engine)] == ["after the big one"]
