"""A lean SMTP load generator on one event loop: the bench's stand-in for a sending MTA."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bench.event_loop import new_event_loop

HELO_NAME = b"mta.bench.example"


class Message(Protocol):
    @property
    def sender(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def eight_bit(self) -> bool: ...


@dataclass
class Sent:
    started: float = 0.0  # MAIL FROM of the final attempt
    accepted: float = 0.0  # the 250 answer to DATA
    scheduled: float = 0.0  # latency phase: when it was due to be sent
    ok: bool = False
    attempts: int = 0
    error: str = ""


class ReplyError(Exception):
    """The server answered with a code the client did not expect."""


def wire_data(data: bytes) -> bytes:
    """DATA as it goes on the wire (RFC 5321 § 4.5.2): CRLF lines, leading dots doubled,
    the end-of-data mark after the last line."""
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


async def _reply(reader: asyncio.StreamReader, expected: tuple[int, ...]) -> None:
    """Read one (possibly multi-line) reply; ReplyError unless its code is EXPECTED."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        if line[3:4] != b"-":
            break
    code = int(line[:3])
    if code not in expected:
        raise ReplyError(line.decode("utf-8", "replace").strip())


class Session:
    """One SMTP connection: greeting and EHLO once, then one transaction per message."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Session:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _reply(reader, (220,))
        writer.write(b"EHLO " + HELO_NAME + b"\r\n")
        await _reply(reader, (250,))
        return cls(reader, writer)

    async def send(self, sender: bytes, wire: bytes, eight_bit: bool, recipient: bytes) -> None:
        """One transaction, command by command, as a client without PIPELINING sends it."""
        option = b" BODY=8BITMIME" if eight_bit else b""
        self.writer.write(b"MAIL FROM:<" + sender + b">" + option + b"\r\n")
        await _reply(self.reader, (250,))
        self.writer.write(b"RCPT TO:<" + recipient + b">\r\n")
        await _reply(self.reader, (250, 251))
        self.writer.write(b"DATA\r\n")
        await _reply(self.reader, (354,))
        self.writer.write(wire)
        await _reply(self.reader, (250,))

    async def quit(self) -> None:
        with contextlib.suppress(OSError, ConnectionError, ReplyError, ValueError):
            self.writer.write(b"QUIT\r\n")
            await _reply(self.reader, (221,))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.close()


class Submitter:
    """SESSIONS concurrent SMTP sessions, each reused for PER_SESSION messages, like an MTA
    delivering a queue in parallel; with SCHEDULE (index -> monotonic time) each message
    waits for its due time (an open loop: a slow answer does not delay the next send)."""

    def __init__(self, port: int, messages: Sequence[Message], recipient: str, sessions: int,
                 per_session: int, stop: threading.Event, timeout: float = 60.0,
                 schedule: Callable[[int], float] | None = None) -> None:
        self.port = port
        self.messages = messages
        self.recipient = recipient.encode("ascii")
        self.results = [Sent() for _ in messages]
        self.sessions = sessions
        self.per_session = per_session
        self.stop_event = stop
        self.timeout = timeout
        self.schedule = schedule
        self.connections = 0
        self.errors: Counter[str] = Counter()
        # Ready before the clock starts, as a queued message is on an MTA's disk.
        self._wire = [wire_data(m.data) for m in messages]
        self._next = itertools.count()

    def run(self) -> float:
        """Submit everything; the monotonic time the submission started."""
        begun = time.monotonic()
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(self._all())
        return begun

    async def _all(self) -> None:
        await asyncio.gather(*(self._session() for _ in range(self.sessions)))

    def _take(self) -> int | None:
        index = next(self._next)  # one event loop: no lock needed
        return index if index < len(self.messages) else None

    async def _session(self) -> None:
        session: Session | None = None
        in_session = 0
        try:
            while not self.stop_event.is_set():
                index = self._take()
                if index is None:
                    break
                result = self.results[index]
                if self.schedule is not None:
                    result.scheduled = self.schedule(index)
                    delay = result.scheduled - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                message = self.messages[index]
                sender = message.sender.encode("ascii")
                for attempt in range(1, 4):
                    result.attempts = attempt
                    try:
                        async with asyncio.timeout(self.timeout):
                            if session is None or in_session >= self.per_session:
                                if session is not None:
                                    await session.quit()
                                session = await Session.open(self.port)
                                self.connections += 1
                                in_session = 0
                            result.started = time.monotonic()
                            await session.send(sender, self._wire[index], message.eight_bit,
                                               self.recipient)
                        result.accepted = time.monotonic()
                        result.ok = True
                        in_session += 1
                        break
                    except (OSError, ConnectionError, ReplyError, TimeoutError,
                            ValueError) as error:
                        result.error = f"{type(error).__name__}: {error}"[:200]
                        self.errors[type(error).__name__] += 1
                        if session is not None:
                            session.close()
                        session = None
                        await asyncio.sleep(0.2 * attempt)
                        if self.stop_event.is_set():
                            break
        finally:
            if session is not None:
                await session.quit()
