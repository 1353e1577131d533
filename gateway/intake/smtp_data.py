"""aiosmtpd's SMTP with a DATA phase that reads the message in large chunks, not line by line."""

from __future__ import annotations

import asyncio
import re

from aiosmtpd.smtp import MISSING, SMTP, syntax

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


def _longest_line(content: bytes) -> int:
    return max(map(len, content.split(b"\r\n"))) + 2


class IntakeSMTP(SMTP):
    """The same SMTP session, but DATA costs a few reads per message rather than a Python loop
    iteration per line (aiosmtpd spent more time there than the rest of the daemon's event loop
    together). Answers are aiosmtpd's: 552 for too much data, 500 for a line over 1,001 bytes,
    both only after the end of data, as RFC 5321 § 4.2.5 implies. Plain addresses in MAIL and
    RCPT skip the e-mail package's general (and slow) address parser."""

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
            stuffed, too_much = await self._read_until_end()
        except asyncio.IncompleteReadError:
            self._writer.close()  # the client went away mid-message: nothing to answer
            return
        except asyncio.CancelledError:
            self._writer.close()
            raise
        if too_much:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        if stuffed and _longest_line(stuffed) > MAX_LINE:
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

    async def _read_until_end(self) -> tuple[bytes, bool]:
        """The message as sent (dot-stuffed, with its last line's CRLF) and whether it was
        over the size limit (then its bytes were dropped as they came, as aiosmtpd does)."""
        reader, limit = self._reader, self.data_size_limit
        # The CRLF that ended the DATA line starts the data as far as the mark goes, so an
        # empty message (".\r\n" at once) ends like any other.
        data = bytearray(b"\r\n")
        received, too_much = 0, False
        while True:
            partial = _partial_end(data)
            try:
                # Never read past the mark: a pipelining client may have sent more after it.
                # Where the data ends in the mark's first bytes, read just the rest of it.
                chunk = await (reader.readexactly(len(END) - partial) if partial
                               else reader.readuntil(END))
            except asyncio.LimitOverrunError as error:
                # No mark within the reader's limit: take what it holds (it keeps back what
                # could be the start of the mark).
                chunk = await reader.readexactly(error.consumed)
            searched = max(0, len(data) - len(END) + 1)
            data += chunk
            received += len(chunk)
            at = data.find(END, searched)
            if at >= 0:
                # The last line's ".\r\n" is the mark's own; the CRLF before it is data.
                too_much = too_much or bool(limit and received - 3 > limit)
                return (b"" if too_much else bytes(data[2:at + 2])), too_much
            if limit and received > limit:
                too_much = True
            if too_much:
                # Only what could still begin the mark matters now.
                del data[:-(len(END) - 1)]
