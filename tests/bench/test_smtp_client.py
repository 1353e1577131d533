"""The SMTP bench's load generator speaks SMTP correctly to a real aiosmtpd relay."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bench.smtp_client import Submitter, wire_data
from tests.conftest import Sink


@dataclass(frozen=True)
class Mail:
    sender: str
    data: bytes
    eight_bit: bool = False


def _mail(n: int, body: str) -> Mail:
    head = (f"From: a{n}@client.example\r\nTo: support@example.com\r\nSubject: n{n}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n")
    return Mail(f"a{n}@client.example", (head + "\r\n" + body).encode("utf-8"),
                eight_bit=not body.isascii())


def test_wire_data_doubles_leading_dots_and_ends_with_the_mark() -> None:
    assert wire_data(b".first\nsecond\r\n.third") == b"..first\r\nsecond\r\n..third\r\n.\r\n"
    assert wire_data(b"plain\r\n") == b"plain\r\n.\r\n"


def test_every_message_arrives_intact_over_reused_sessions(relay_sink: Sink) -> None:
    mails = [_mail(0, ".a line that starts with a dot\r\n..two\r\n"),
             _mail(1, "Здравствуйте, не работает почта.\r\n"), _mail(2, "third\r\n")]
    submitter = Submitter(relay_sink.port, mails, "support@example.com", sessions=2,
                          per_session=2, stop=threading.Event(), timeout=10)
    submitter.run()
    assert [r.ok for r in submitter.results] == [True, True, True]
    assert all(r.accepted >= r.started > 0 for r in submitter.results)
    assert submitter.connections == 2 and not submitter.errors
    got = {m["Subject"]: m for m in relay_sink.messages}
    text = {subject: m.get_content().replace("\r\n", "\n") for subject, m in got.items()}
    assert text["n0"] == ".a line that starts with a dot\n..two\n"
    assert text["n1"] == "Здравствуйте, не работает почта.\n"
    assert got["n2"]["X-Envelope-To"] == "support@example.com"


def test_a_refused_message_is_retried_then_reported(relay_sink: Sink) -> None:
    relay_sink.handler.replies += ["451 try later", "550 no such user", "550 no such user"]
    submitter = Submitter(relay_sink.port, [_mail(0, "hello\r\n")], "support@example.com",
                          sessions=1, per_session=5, stop=threading.Event(), timeout=10)
    submitter.run()
    result = submitter.results[0]
    assert not result.ok and result.attempts == 3
    assert "550 no such user" in result.error
    assert submitter.errors == {"ReplyError": 3}
    assert relay_sink.messages == []
