"""What the HTTP handlers use of the daemon: the door, the database, the clock, settings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.clock import Clock
from gateway.config.settings import Settings
from gateway.config.webhook_settings import WebhookSettings
from gateway.intake.door import IntakeDoor
from gateway.store.db import Database

if TYPE_CHECKING:
    from gateway.sla.report import ReportQuery
    from gateway.tickets.context import Context
    from gateway.tickets.lifecycle import Applied


@dataclass
class Services:
    door: IntakeDoor
    db: Database
    clock: Clock
    settings: Settings
    # Set when the daemon stops: every request but /healthz is answered 503 from then on.
    closing: bool = False
    started: bool = False
    # Requests by outcome, for /metrics.
    outcomes: Counter[str] = field(default_factory=Counter)
    # The processing context in force (rules, customers); replaced on reload, so asked anew.
    context: Callable[[], Context] | None = None
    # The gateway's lifecycle events and SLA report (they wake the outbox, use the policy).
    ticket_event: Callable[[str, object], Awaitable[Applied]] | None = None
    # The report for a query, rendered in a format of report_format.MEDIA_TYPES.
    sla_report: Callable[[ReportQuery, str], Awaitable[bytes]] | None = None
    # Wakes the outbox worker after something was queued outside processing (portal mail).
    wake_outbox: Callable[[], None] | None = None
    # The IMAP mailbox workers (name, connected, failures), for /readyz and /metrics.
    mailboxes: Sequence[Any] = ()
    # OAuth 2.0 logins ("mailbox:NAME" or "outgoing") -> why they have no usable token,
    # or None while they have one.
    login_states: Callable[[], dict[str, str | None]] = dict
    # The tracker connectors (name, connected, failures, last_error), for /readyz and /metrics.
    trackers: Sequence[Any] = ()

    def hook(self, name: str) -> WebhookSettings | None:
        return next((h for h in self.settings.webhooks if h.name == name), None)

    def secret_of(self, hook: WebhookSettings) -> str:
        return hook.secret.get_secret_value() if hook.secret else ""

    @property
    def admin_token(self) -> str | None:
        token = self.settings.http.admin_token
        return token.get_secret_value() if token else None
