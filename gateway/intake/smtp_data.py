"""aiosmtpd's SMTP with a DATA phase that reads the message in large chunks, not line by line."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable
from typing import IO, Any, TypeVar

import structlog
from aiosmtpd.smtp import MISSING, SMTP, syntax

from gateway.intake.refusals import LargeSessions, PeerConnections, limit_bit

log = structlog.get_logger("gateway.smtp")
T = TypeVar("T")
END = b"\r\n.\r\n"
# Longest line RFC 5321 allows, CRLF included (aiosmtpd's own line_length_limit).
MAX_LINE = 1001


# `<local@domain>` of plain dot-atoms and an optional rest (parameters): what nearly every
# MAIL FROM and RCPT TO carries, and what the e-mail package's header parser returns as is.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"\s*<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
                         r"((?:\s.*)?)", re.DOTALL)


def _partial_end(data: bytes | bytearray) -> int:
    """How many bytes at the end of DATA begin the end-of-data mark (0 to 4)."""
    for length in (4, 3, 2, 1):
        if data.endswith(END[:length]):
            return length
    return 0


# A line of MAX_LINE bytes or more before its LF: its CR included, that is a CRLF line over
# MAX_LINE, or a bare-LF line (which Python's own `as_bytes()` writes) over it by one byte.
# Lines end at any LF: counting CRLF only refused every bare-LF message over 1,001 bytes.
# Found after its LF: a pattern that begins with a literal lets the regex engine skip to each
# LF in C, where "(?m)^" was tried at every byte (a third of a millisecond per bench mail).
_LONG_LINE = re.compile(rb"\n[^\n]{%d}" % MAX_LINE)
# Bytes one regex call looks at: it holds the interpreter lock, and this runs in a thread
# beside the event loop for large messages.
_WINDOW = 1 << 20


def has_long_line(content: bytes) -> bool:
    """Whether a line of CONTENT (ended by LF, or by the end) is over MAX_LINE bytes."""
    first_end = content.find(b"\n")
    if (len(content) if first_end < 0 else first_end) >= MAX_LINE:
        return True
    start = max(first_end, 0)
    while start < len(content):
        end = min(len(content), start + _WINDOW)
        if _LONG_LINE.search(content, start, end):
            return True
        # A long line whose LF comes before the cut lies whole in this window or the next.
        start = end if end == len(content) else end - MAX_LINE - 1
    return False


# Messages up to this size are checked on the event loop: a thread costs more than that.
OFF_LOOP_BYTES = 256 << 10


async def off_loop(content: bytes, check: Callable[[bytes], T]) -> T:
    """CHECK(CONTENT), in a thread when CONTENT is large, so that the loop keeps answering
    every other client meanwhile (the checks search in windows for the same reason)."""
    if len(content) <= OFF_LOOP_BYTES:
        return check(content)
    return await asyncio.to_thread(check, content)


class IntakeSMTP(SMTP):
    """The same SMTP session, but DATA costs a few reads per message rather than a Python loop
    iteration per line (aiosmtpd spent more time there than the rest of the daemon's event loop
    together). Answers are aiosmtpd's: 552 for too much data, 500 for a line over 1,001 bytes,
    both only after the end of data, as RFC 5321 § 4.2.5 implies; a line ends at any LF, so
    bare-LF mail is taken as its sender wrote it. Plain addresses in MAIL and
    RCPT skip the e-mail package's general (and slow) address parser."""

    def __init__(self, *args: Any, large: LargeSessions | None = None,
                 peers: PeerConnections | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._large = large
        self._holding_large = self._refused_large = self._spool_failed = False
        self._peers = peers
        self._counted_peer: str | None = None
        self._turned_away = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._peers is not None and self._counted_peer is None and not self._turned_away:
            peername = transport.get_extra_info("peername")
            peer = str(peername[0] if isinstance(peername, tuple) else peername)
            if not self._peers.enter(peer):
                # Answered at once and closed: the client learns why (RFC 5321 § 3.8).
                self._turned_away = True
                limit_bit("smtp_connections_per_peer", "smtp", peer=peer,
                          most=self._peers.most)
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(b"421 4.7.0 Too many connections from your address, "
                                b"try again later\r\n")
                transport.close()
                return
            self._counted_peer = peer
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._turned_away:
            return
        if self._peers is not None and self._counted_peer is not None:
            self._peers.leave(self._counted_peer)
            self._counted_peer = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        return False if self._turned_away else super().eof_received()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH.fullmatch(arg) if arg.isascii() else None
        if plain is None or "(" in plain.group(2):  # a comment: the parser drops those
            return super()._getaddr(arg)
        address = plain.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        # The parser takes the whitespace after ">" with the address.
        return address, plain.group(2).lstrip(" \t\r\n")

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            await self._receive_data()
        finally:
            if self._holding_large:
                assert self._large is not None
                self._large.give_back()
                self._holding_large = False

    async def _receive_data(self) -> None:
        """DATA after the 354: read, checked, handed to the handler, answered."""
        assert self.envelope is not None
        try:
            stuffed, too_much = await self._read_until_end()
        except asyncio.IncompleteReadError:
            self._writer.close()  # the client went away mid-message: nothing to answer
            return
        except asyncio.CancelledError:
            self._writer.close()
            raise
        if too_much and self._spool_failed:
            # Temporary: our disk is full or failing (RFC 3463 4.3.1, mail system full).
            await self.push("452 4.3.1 Insufficient system storage, try again later")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        if too_much and self._large is not None and self._refused_large:
            # Temporary: the client keeps the message and tries again later (RFC 3463 4.3.1).
            await self.push("452 4.3.1 Too many large messages at once, try again later")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        if too_much:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        long_line: bool = bool(stuffed) and await off_loop(stuffed, has_long_line)
        if long_line:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        # RFC 5321 § 4.5.2: a leading dot of any line was added by the client; the CRLF put
        # in front makes the first line like every other.
        content = (b"\r\n" + stuffed).replace(b"\r\n.", b"\r\n")[2:] if stuffed else b""
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    def _take_large(self, received: int) -> bool:
        """Whether a message of RECEIVED bytes so far may go on being read into memory."""
        if self._large is None or self._holding_large or received <= self._large.large_bytes:
            return True
        if self._large.take():
            self._holding_large = True
            return True
        limit_bit("large_sessions", "smtp", peer=str(self.session.peer) if self.session
                  else "", most=self._large.most, received=received)
        return False

    async def _read_until_end(self) -> tuple[bytes, bool]:
        """The message as sent (dot-stuffed, with its last line's CRLF) and whether it was
        over the size limit (then its bytes were dropped as they came, as aiosmtpd does)."""
        reader, limit = self._reader, self.data_size_limit
        # The CRLF that ended the DATA line starts the data as far as the mark goes, so an
        # empty message (".\r\n" at once) ends like any other.
        data = bytearray(b"\r\n")
        received, too_much = 0, False
        self._refused_large = self._spool_failed = False
        spool: IO[bytes] | None = None
        try:
            while True:
                partial = _partial_end(data)
                try:
                    # Never read past the mark: a pipelining client may have sent more after
                    # it. Where the data ends in the mark's first bytes, read just the rest.
                    chunk = await (reader.readexactly(len(END) - partial) if partial
                                   else reader.readuntil(END))
                except asyncio.LimitOverrunError as error:
                    # No mark within the reader's limit: take what it holds (it keeps back
                    # what could be the start of the mark).
                    chunk = await reader.readexactly(error.consumed)
                searched = max(0, len(data) - len(END) + 1)
                data += chunk
                received += len(chunk)
                at = data.find(END, searched)
                if at >= 0:
                    # The last line's ".\r\n" is the mark's own; the CRLF before it is data.
                    too_much = too_much or bool(limit and received - 3 > limit)
                    if too_much:
                        return b"", True
                    if spool is None:
                        return bytes(data[2:at + 2]), False
                    return self._unspooled(spool, data[:at + 2]), False
                if limit and received > limit:
                    too_much = True
                if not too_much and not self._take_large(received):
                    too_much = self._refused_large = True
                if too_much:
                    # Only what could still begin the mark matters now.
                    del data[:-(len(END) - 1)]
                elif self._large is not None and len(data) > self._large.large_bytes:
                    spool = self._spooled(spool, data)
                    too_much = self._spool_failed
        finally:
            if spool is not None:
                spool.close()

    def _spooled(self, spool: IO[bytes] | None, data: bytearray) -> IO[bytes] | None:
        """DATA moved to the spool file (made on first use), all but what could begin the
        mark: a large message goes on arriving on disk, so a slow sender holds no memory."""
        assert self._large is not None
        try:
            if spool is None:
                directory = self._large.spool_dir
                if directory is not None:
                    directory.mkdir(parents=True, exist_ok=True)
                # Unlinked at once: nothing is left behind by a crash.
                spool = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by the caller)
            spool.write(data[:-(len(END) - 1)])
        except OSError as error:
            log.error("smtp.spool_failed", error=str(error))
            self._spool_failed = True
        del data[:-(len(END) - 1)]
        return spool

    @staticmethod
    def _unspooled(spool: IO[bytes], tail: bytearray) -> bytes:
        """The whole message back from SPOOL and TAIL, without the leading CRLF, read once."""
        spool.write(tail)
        spool.seek(2)
        return spool.read()
