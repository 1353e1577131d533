"""Delivery of outgoing mail: an SMTP relay (aiosmtplib) or, without one, a local maildir."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from pathlib import Path
from typing import Protocol

import aiosmtplib
import structlog

from gateway.config.settings import OutgoingSettings
from parsers.idn import ascii_address

log = structlog.get_logger("gateway.mailer")


class TemporaryFailure(Exception):
    """Try again later: a 4xx answer, a dropped connection, a relay that is down."""


class PermanentFailure(Exception):
    """Do not try again: a 5xx answer."""


class Delivery(Protocol):
    async def send(self, sender: str, recipient: str, data: bytes) -> None: ...

    async def close(self) -> None: ...


class MaildirDelivery:
    """Writes each message to `new/` of a maildir, via `tmp/` so readers never see half a file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        # Named by its content, so a message sent again (a process killed after writing it
        # and before recording that, its lease expired) replaces its first copy in `new/`
        # instead of adding a second one. Every message carries its own Message-ID.
        name = f"{hashlib.sha256(data).hexdigest()[:40]}.{self._host}"
        temporary = self.root / "tmp" / name
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(temporary, self.root / "new" / name)
        except OSError as error:
            raise TemporaryFailure(f"maildir {self.root}: {error.strerror}") from error

    async def close(self) -> None:
        return None


class SmtpRelay:
    """Sends through one relay over a few persistent connections, reconnecting as needed."""

    def __init__(self, settings: OutgoingSettings) -> None:
        assert settings.host is not None
        self._settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(settings.connections)

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout_s,
            use_tls=s.security == "tls", start_tls=s.security == "starttls",
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
        )

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        # An IDNA domain goes out as A-labels: no relay needs SMTPUTF8 for that.
        recipient = ascii_address(recipient) or recipient
        async with self._slots:
            client = self._idle.get_nowait() if not self._idle.empty() else self._client()
            try:
                if not client.is_connected:
                    await client.connect()
                # A non-ASCII address (RFC 6531) or header (RFC 6532) needs SMTPUTF8.
                utf8 = not (recipient.isascii() and sender.isascii() and _ascii_head(data))
                if utf8 and client.is_ehlo_or_helo_needed:
                    await client.ehlo()  # what the relay offers is known after EHLO
                if utf8 and not client.supports_extension("smtputf8"):
                    self._idle.put_nowait(client)
                    raise PermanentFailure(
                        f"the relay {self._settings.host} does not offer SMTPUTF8, which the "
                        f"address {recipient} needs (RFC 6531)")
                await client.sendmail(sender, [recipient], data,
                                      mail_options=["SMTPUTF8"] if utf8 else ())
            except aiosmtplib.SMTPRecipientsRefused as error:
                self._idle.put_nowait(client)
                refusal = error.recipients[0]
                raise _classify(refusal.code, refusal.message) from error
            except aiosmtplib.SMTPResponseException as error:
                await _drop(client)
                raise _classify(error.code, error.message) from error
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                await _drop(client)
                raise TemporaryFailure(f"relay {self._settings.host}: {error}") from error
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            await _drop(self._idle.get_nowait())


def _ascii_head(data: bytes) -> bool:
    end = data.find(b"\r\n\r\n")
    return data[:end if end >= 0 else len(data)].isascii()


def _classify(code: int, message: str) -> Exception:
    text = f"{code} {message}".strip()
    return PermanentFailure(text) if 500 <= code < 600 else TemporaryFailure(text)


async def _drop(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def make_delivery(settings: OutgoingSettings) -> Delivery:
    return SmtpRelay(settings) if settings.host else MaildirDelivery(settings.maildir)
