"""The chunked DATA reader against aiosmtpd's own, byte for byte, over real SMTP sessions."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.intake.smtp_data import MAX_LINE, IntakeSMTP, has_long_line
from tests.conftest import free_port, stop_controller

LIMIT = 4096


class Capture:
    """Keeps what each DATA delivered."""

    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes)
        self.contents.append(content)
        return "250 OK"


class Server(Controller):
    def __init__(self, smtp_class: type[SMTP]) -> None:
        super().__init__(Capture(), hostname="127.0.0.1", port=free_port(), data_size_limit=LIMIT,
                         enable_SMTPUTF8=True, decode_data=False)
        self.smtp_class = smtp_class

    def factory(self) -> SMTP:
        return self.smtp_class(self.handler, **self.SMTP_kwargs)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    """aiosmtpd's own SMTP and ours, side by side."""
    pair = (Server(SMTP), Server(IntakeSMTP))
    for server in pair:
        server.start()
    yield pair
    for server in pair:
        stop_controller(server)


def session(port: int, pieces: list[bytes]) -> list[str]:
    """Send PIECES (one write each) after EHLO/MAIL/RCPT/DATA; the reply codes after 354."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        reader = sock.makefile("rb")

        def reply() -> str:
            while True:
                line = reader.readline().decode()
                if line[3:4] != "-":
                    return line[:3]

        reply()
        for command in (b"EHLO test\r\n", b"MAIL FROM:<a@example.com>\r\n",
                        b"RCPT TO:<b@example.com>\r\n", b"DATA\r\n"):
            sock.sendall(command)
            reply()
        for piece in pieces:
            sock.sendall(piece)
        codes = [reply()]
        if pieces[-1].endswith(b"NOOP\r\n"):  # pipelined after the data: answered too
            codes.append(reply())
        sock.sendall(b"QUIT\r\n")
        codes.append(reply())
        return codes


def both(servers: tuple[Server, Server], pieces: list[bytes]) -> tuple[object, object]:
    """What aiosmtpd's reader and ours made of the same bytes: reply codes and content."""
    outcomes = []
    for server in servers:
        handler: Capture = server.handler
        before = len(handler.contents)
        codes = session(server.port, pieces)
        outcomes.append((codes, handler.contents[before:]))
    return outcomes[0], outcomes[1]


CASES = {
    "empty": [b".\r\n"],
    "one empty line": [b"\r\n.\r\n"],
    "plain": [b"Subject: hi\r\n\r\nhello\r\n.\r\n"],
    "dot-stuffed": [b"Subject: dots\r\n\r\n..\r\n...x\r\n.y\r\nend.\r\n.\r\n"],
    "first line stuffed": [b"..first\r\n.\r\n"],
    "mark split 1": [b"a\r", b"\n.\r\n"],
    "mark split 2": [b"a\r\n", b".", b"\r", b"\n"],
    "near marks": [b"a\r\n.x\r\n\r\n.\r\r\n.\n\r\n.\r\n"],
    "bare LF lines": [b"a\n.\nb\r\n.\r\n"],
    "over the size limit": [b"x" * 70 + b"\r\n"] * 80 + [b".\r\n"],
    "line too long": [b"y" * 1200 + b"\r\n.\r\n"],
    "long but allowed": [b"z" * 999 + b"\r\n.\r\n"],
    "pipelined NOOP": [b"body\r\n.\r\nNOOP\r\n"],
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_as_aiosmtpd(servers: tuple[Server, Server], name: str) -> None:
    stock, ours = both(servers, CASES[name])
    assert ours == stock


def test_each_split_of_a_message(servers: tuple[Server, Server]) -> None:
    """The end of data found wherever the TCP writes happen to cut it."""
    message = b"Subject: cut\r\n\r\n.leading\r\nmiddle\r\n\r\n.\r\n"
    for cut in range(1, len(message)):
        stock, ours = both(servers, [message[:cut], message[cut:]])
        assert ours == stock, cut


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.sampled_from([b"", b".", b"..", b".x", b"text", b"\r", b"\n", b"a.",
                                       b"\r\n.", b"x" * 300]), max_size=25),
       cut=st.integers(min_value=0, max_value=200))
def test_random_lines(servers: tuple[Server, Server], lines: list[bytes], cut: int) -> None:
    stream = b"".join(line + b"\r\n" for line in lines)
    # The mark ends the data at the first "." line, as the client meant or not.
    stream += b".\r\n"
    end = (b"\r\n" + stream).find(b"\r\n.\r\n") + 3
    stream = stream[:end]
    cut = min(cut, len(stream))
    pieces = [p for p in (stream[:cut], stream[cut:]) if p]
    stock, ours = both(servers, pieces)
    assert ours == stock


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="<>@.aZ0-+_\"() \t\r\n\x0b\u00a0é=:[]\\", max_size=30))
def test_addresses_read_as_aiosmtpd_reads_them(arg: str) -> None:
    """MAIL FROM and RCPT TO arguments: the fast path gives what aiosmtpd's parser gives
    (including its crashes, such as an IndexError on an empty quoted local part)."""
    assert address_outcome(IntakeSMTP, arg) == address_outcome(SMTP, arg)


def address_outcome(smtp_class: type[SMTP], arg: str) -> object:
    class Handler:
        pass

    # A loop of our own, closed after: without one aiosmtpd makes a loop and leaves it open
    # as the thread's, and whoever replaces it later (asyncio.run) sets off the garbage
    # collector's "unclosed socket" warning in some other test.
    loop = asyncio.new_event_loop()
    try:
        return smtp_class(Handler(), loop=loop)._getaddr(arg)
    except Exception as error:
        return type(error)
    finally:
        loop.close()


@pytest.mark.parametrize("arg", ["<ivan.petrov+support@acme-corp.example> SIZE=1234 BODY=8BITMIME",
                                 "<a@b.c>", " <a@b.c>\tSIZE=1", "<a@b.c> (comment) SIZE=1",
                                 "<иван@пример.рф>", "<>", "a@b.c"])
def test_common_addresses(arg: str) -> None:
    assert address_outcome(IntakeSMTP, arg) == address_outcome(SMTP, arg)


def _longest_line(content: bytes) -> int:
    return max(len(line) for line in content.split(b"\n"))


@settings(max_examples=300, deadline=None)
@given(lengths=st.lists(st.sampled_from([0, 1, 999, 1000, 1001, 1002, 4000]), min_size=1,
                        max_size=6),
       crlf=st.booleans())
def test_long_line_check_agrees_with_counting(lengths: list[int], crlf: bool) -> None:
    """has_long_line is "some line has MAX_LINE bytes before its LF", first and last line
    included, CRs counted, whatever the mix of lengths."""
    ending = b"\r\n" if crlf else b"\n"
    content = ending.join(b"q" * n for n in lengths)
    assert has_long_line(content) == (_longest_line(content) >= MAX_LINE)


@pytest.mark.parametrize("shift", [-2, -1, 0, 1, 2, 1000, 1001, 1002])
def test_long_line_found_across_the_search_window(shift: int) -> None:
    """A long line that straddles a window's edge is found, and lines just short of the
    limit across the edge are not mistaken for one."""
    window = 1 << 20
    short = b"a" * (MAX_LINE - 1) + b"\n"
    head = b"b\n" * ((window - shift) // 2)
    assert not has_long_line(head + short * 3)
    assert has_long_line(head + b"c" * MAX_LINE + b"\n" + short)
    assert has_long_line(head + short + b"d" * (MAX_LINE + 5))
