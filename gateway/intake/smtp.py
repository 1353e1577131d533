"""The SMTP listener: aiosmtpd in the daemon's loop; 250 only after the input is committed."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.config.settings import LimitSettings, SmtpSettings, split_host_port
from gateway.intake.door import IncomingInput, IntakeDoor
from gateway.intake.limits import LimitExceeded, check_structure
from gateway.intake.refusals import LargeSessions, PeerConnections, limit_bit
from gateway.intake.smtp_data import IntakeSMTP, off_loop

log = structlog.get_logger("gateway.smtp")


class IntakeHandler:
    """aiosmtpd handler: checks recipients, hands DATA to the door, answers from the outcome."""

    def __init__(self, door: IntakeDoor, recipients: list[str],
                 limits: LimitSettings | None = None) -> None:
        self._door = door
        self._recipients = {r.lower() for r in recipients}
        self.limits = limits or LimitSettings()
        self.closing = False
        # The listener's cap on large DATA, set when it starts (tests and metrics read it).
        self.large: LargeSessions | None = None
        self.peers: PeerConnections | None = None

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        if self.closing:
            return "421 4.3.2 Service shutting down, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self._recipients and address.lower() not in self._recipients:
            return "550 5.1.1 Recipient not accepted here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.closing:
            return "421 4.3.2 Service shutting down, try again later"
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # only with decode_data=True, which we never set
            raw = raw.encode("utf-8", "surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        try:
            # Before the commit: a refused message is never stored, the sender keeps it.
            await off_loop(raw, partial(check_structure, limits=self.limits))
        except LimitExceeded as error:
            limit_bit(error.name, "smtp", reason=str(error), peer=peer, size=len(raw))
            return f"554 5.3.4 Message too complex: {error}"
        item = IncomingInput("email", raw, {
            "via": "smtp", "mail_from": envelope.mail_from or "",
            "rcpt_to": list(envelope.rcpt_tos), "peer": peer, "helo": session.host_name,
        })
        try:
            accepted = await self._door.accept(item)
        except Exception as error:
            log.error("smtp.not_stored", error=str(error), size=len(raw))
            return "451 4.3.0 Could not store the message, try again later"
        log.info("smtp.accepted", input_id=accepted.input_id, duplicate=accepted.duplicate,
                 size=len(raw))
        return f"250 2.0.0 OK stored as input {accepted.input_id}"


async def start_smtp(handler: IntakeHandler, settings: SmtpSettings,
                     spool_dir: Path | None = None) -> asyncio.Server:
    """Listen on settings.listen inside the running loop; large messages arrive in SPOOL_DIR."""
    host, port = split_host_port(settings.listen)
    loop = asyncio.get_running_loop()
    large = handler.large = LargeSessions(settings.large_message_bytes,
                                          settings.large_sessions, spool_dir)
    peers = handler.peers = PeerConnections(settings.connections_per_peer)

    def factory() -> Any:
        return IntakeSMTP(handler, data_size_limit=settings.max_message_bytes,
                    hostname=settings.hostname, ident="Intake Gateway",
                    enable_SMTPUTF8=True, decode_data=False, loop=loop, large=large,
                    peers=peers, timeout=settings.idle_timeout_s)

    return await loop.create_server(factory, host=host, port=port)
