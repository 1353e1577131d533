"""The OAuth 2.0 logins of the daemon: a token source per mailbox and for the relay, their
state for /readyz and /metrics, and the one alert to the duty engineer when one fails."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from gateway.clock import Clock
from gateway.config.oauth_settings import OAuthSettings
from gateway.config.settings import MailboxSettings, Settings
from gateway.outbox.duty_alerts import send_duty_alert
from gateway.outbox.mailer import MaildirDelivery
from gateway.outbox.oauth_failures import LoginTarget, TokenFailure
from gateway.store.db import Database

if TYPE_CHECKING:
    from gateway.outbox.oauth_tokens import TokenSource

log = structlog.get_logger("gateway.oauth")


class MailLogins:
    """Token sources by login ("mailbox:NAME", "outgoing"); alerts through a path that does
    not need the failing token."""

    def __init__(self, settings: Settings, db: Database, clock: Clock,
                 duty_address: Callable[[], str]) -> None:
        self._settings = settings
        self._db = db
        self._clock = clock
        self._duty_address = duty_address
        self.sources: dict[str, TokenSource] = {}
        # Failure episodes this process has alerted about (or found alerted): not again.
        self._alerted: set[str] = set()
        outgoing = settings.outgoing
        self.relay_tokens = (self._source(outgoing, LoginTarget("outgoing", "outgoing", "smtp"))
                             if outgoing.host and outgoing.uses_oauth else None)

    def _source(self, settings: OAuthSettings, target: LoginTarget) -> TokenSource:
        # Imported here: a daemon without OAuth logins never loads msal and Authlib.
        from gateway.outbox.oauth_tokens import TokenSource

        source = TokenSource(settings, target, self._settings.intake.state_dir, self._db.engine)
        self.sources[f"{target.kind}:{target.name}" if target.kind == "mailbox"
                     else target.kind] = source
        return source

    def tokens_for(self, mailbox: MailboxSettings) -> TokenSource | None:
        if not mailbox.uses_oauth:
            return None
        return self._source(mailbox, LoginTarget("mailbox", mailbox.name, "imap"))

    def states(self) -> dict[str, str | None]:
        """Every OAuth login: why it has no usable token now, or None when it has one."""
        return {name: source.failing for name, source in self.sources.items()}

    async def alert(self, failure: TokenFailure) -> None:
        """Tell the duty engineer, once per failure episode (across instances too)."""
        target = failure.target
        if failure.episode in self._alerted:
            return
        # The relay's own failure cannot be reported through the relay.
        maildir = (MaildirDelivery(self._settings.outgoing.maildir)
                   if target.kind == "outgoing" else None)
        try:
            sent = await self._db.run(functools.partial(
                send_duty_alert, self._db.engine, duty_address=self._duty_address(),
                sender=self._settings.outgoing.sender, target=target, failure=failure,
                now=self._clock.now(), maildir=maildir))
        except Exception as error:  # the database may be down too; the next failure retries
            log.error("oauth.alert_failed", error=str(error), login=target.name)
            return
        self._alerted.add(failure.episode)
        if sent:
            log.warning("oauth.duty_alerted", login=f"{target.kind}:{target.name}",
                        reason=failure.reason)
