"""Message-ID clashes: a re-delivery is one input, a different message is its own (issue 17)."""

from __future__ import annotations

import json
import smtplib

import pytest
from sqlalchemy import text

from tests.conftest import RunningGateway, make_mail

pytestmark = pytest.mark.adversarial


def send(port: int, raw: bytes, smtputf8: bool = False) -> int:
    """The input id the daemon's 250 names."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("client.example")
        client.mail("ivan@acme.example", ["SMTPUTF8"] if smtputf8 else [])
        client.rcpt("support@example.com")
        code, reply = client.data(raw)
    assert code == 250, reply
    return int(reply.rsplit(b" ", 1)[1])


def stored(running: RunningGateway) -> dict[int, dict[str, object]]:
    with running.gateway.db.engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id, idempotency_key, source, status, outcome FROM inputs")).all()
    return {int(r[0]): {"key": r[1], "source": json.loads(r[2]), "status": r[3],
                        "outcome": r[4]} for r in rows}


def test_a_redelivery_through_another_relay_is_the_same_input(make_gateway) -> None:
    """Trace fields added on the way do not make a message another one."""
    running: RunningGateway = make_gateway()
    raw = make_mail(message_id="<same@acme.example>")
    first = send(running.smtp_port, raw)
    relayed = (b"Received: from relay2.example by mx.example; Mon, 7 Dec 2026 10:00:00 +0000\r\n"
               b"Return-Path: <ivan@acme.example>\r\n" + raw.replace(b"\r\n", b"\n"))
    assert send(running.smtp_port, relayed) == first
    assert len(stored(running)) == 1


def test_a_different_message_reusing_a_message_id_is_its_own_input_with_the_clash_noted(
        make_gateway) -> None:
    running: RunningGateway = make_gateway()
    first = send(running.smtp_port, make_mail(message_id="<reused@acme.example>"))
    other = make_mail("The VPN drops every ten minutes", message_id="<reused@acme.example>",
                      body="Our VPN connection to the office drops every ten minutes today.")
    second = send(running.smtp_port, other)
    assert second != first
    # Its own re-delivery is a duplicate of it, not of the first.
    assert send(running.smtp_port, other) == second
    inputs = stored(running)
    assert len(inputs) == 2
    assert inputs[second]["source"]["message_id_clash"] == first  # type: ignore[index]
    running.settle()
    inputs = stored(running)
    assert inputs[second]["status"] == "processed"
    assert f"used before by input {first}" in str(inputs[second]["outcome"])


def test_non_ascii_message_ids_of_equal_byte_length_do_not_collide(make_gateway) -> None:
    """RFC 6532 ids: decoding with replacement once made these one key."""
    running: RunningGateway = make_gateway()
    ids = []
    for n in (1, 2):
        raw = make_mail(message_id="<x@example.com>").replace(
            b"<x@example.com>", f"<заявка{n}@пример.рф>".encode())
        ids.append(send(running.smtp_port, raw, smtputf8=True))
    assert ids[0] != ids[1]
    keys = {str(i["key"]) for i in stored(running).values()}
    assert keys == {"msgid:заявка1@пример.рф", "msgid:заявка2@пример.рф"}
