"""Delivery of outgoing mail: an SMTP relay (aiosmtplib) or, without one, a local maildir."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import aiosmtplib
import structlog

from gateway.config.settings import OutgoingSettings
from gateway.outbox.oauth_failures import TokenFailure

if TYPE_CHECKING:
    # The token source brings msal and Authlib: only a process that fetches tokens loads them.
    from gateway.outbox.oauth_tokens import TokenSource
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
        await asyncio.to_thread(self.write, data)

    def write(self, data: bytes) -> None:
        """Write DATA into `new/` (blocking)."""
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

    def __init__(self, settings: OutgoingSettings, tokens: TokenSource | None = None,
                 on_token_failure: Callable[[TokenFailure], Awaitable[None]] | None = None,
                 ) -> None:
        assert settings.host is not None
        self._settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._slots = asyncio.Semaphore(settings.connections)
        # OAuth 2.0: where tokens come from, and when each connection's login expires.
        self.tokens = tokens
        self._on_token_failure = on_token_failure
        self._logged_in_until: weakref.WeakKeyDictionary[aiosmtplib.SMTP, float] = (
            weakref.WeakKeyDictionary())

    def _client(self) -> aiosmtplib.SMTP:
        s = self._settings
        oauth = self.tokens is not None
        return aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout_s,
            use_tls=s.security == "tls", start_tls=s.security == "starttls",
            # XOAUTH2 is aiosmtplib's own; OAUTHBEARER is sent after connecting (_bearer).
            username=None if oauth and s.auth == "oauthbearer" else s.username,
            password=s.password.get_secret_value() if s.password and not oauth else None,
            oauth_token_generator=self._token if oauth and s.auth == "xoauth2" else None,
        )

    async def _token(self) -> str:
        assert self.tokens is not None
        return await asyncio.to_thread(self.tokens.access_token)

    async def _connect(self, client: aiosmtplib.SMTP) -> None:
        await client.connect()
        if self.tokens is not None:
            if self._settings.auth == "oauthbearer":
                await _bearer(client, self._settings.username or "", await self._token())
            self._logged_in_until[client] = self.tokens.expires_at()
            self.tokens.accepted()

    def _stale(self, client: aiosmtplib.SMTP) -> bool:
        """A connection logged in with a token about to expire: the relay may drop it."""
        if self.tokens is None or not client.is_connected:
            return False
        until = self._logged_in_until.get(client, 0.0)
        return until - self.tokens.margin_s <= time.time()

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        # An IDNA domain goes out as A-labels: no relay needs SMTPUTF8 for that.
        recipient = ascii_address(recipient) or recipient
        async with self._slots:
            client = self._idle.get_nowait() if not self._idle.empty() else self._client()
            try:
                if self._stale(client):
                    await _drop(client)
                if not client.is_connected:
                    await self._connect(client)
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
            except TokenFailure as failure:
                await _drop(client)
                if self._on_token_failure is not None:
                    await self._on_token_failure(failure)
                raise TemporaryFailure(f"relay login: {failure.reason}") from None
            except aiosmtplib.SMTPAuthenticationError as error:
                await _drop(client)
                if self.tokens is None:
                    raise _classify(error.code, error.message) from error
                # The relay refused a token the provider gave: a fresh one next time; refused
                # as well, the login itself is wrong, and the duty engineer hears of it.
                refused = self.tokens.refused_by_server(
                    f"the relay refused the token: {error.code} {error.message}")
                if refused is not None and self._on_token_failure is not None:
                    await self._on_token_failure(refused)
                raise TemporaryFailure(f"relay refused the token: {error.code} "
                                       f"{error.message}") from error
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


async def _bearer(client: aiosmtplib.SMTP, username: str, token: str) -> None:
    """AUTH OAUTHBEARER (RFC 7628), which aiosmtplib does not offer itself."""
    await client.ehlo()
    if "oauthbearer" not in client.server_auth_methods:
        raise aiosmtplib.SMTPException("the relay does not offer AUTH OAUTHBEARER")
    initial = f"n,a={username},\x01auth=Bearer {token}\x01\x01".encode()
    response = await client.execute_command(b"AUTH", b"OAUTHBEARER",
                                            base64.b64encode(initial))
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)


async def _drop(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def make_delivery(settings: OutgoingSettings, tokens: TokenSource | None = None,
                  on_token_failure: Callable[[TokenFailure], Awaitable[None]] | None = None,
                  ) -> Delivery:
    if settings.host:
        return SmtpRelay(settings, tokens, on_token_failure)
    return MaildirDelivery(settings.maildir)
