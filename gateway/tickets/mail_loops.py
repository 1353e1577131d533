"""Loop protection: when must we never answer a message automatically, and why."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func
from sqlmodel import Session, col, select

from gateway.config.settings import LoopSettings
from gateway.store.models import OutboxItem, Undeliverable
from gateway.store.prepared import Prepared
from parsers.model import Request

_NO_REPLY = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]daemon|postmaster|bounces?)([-+_.@]|$)",
    re.IGNORECASE)
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_SUPPRESS_VALUES = {"all", "autoreply", "oof"}


def acknowledgement_suppressed(request: Request, envelope_sender: str | None,
                               own_addresses: frozenset[str] | set[str]) -> str | None:
    """A human reason not to acknowledge REQUEST, or None when an acknowledgement is fine.

    `envelope_sender` is the SMTP MAIL FROM (aiosmtpd gives "<>" for a null return path),
    None when the mail did not come by SMTP (IMAP, `ingest`).
    """
    if request.kind != "normal":
        return f"message is {request.kind.replace('_', ' ')}"
    auto_submitted = (request.header("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted}"
    precedence = (request.header("precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    suppress = (request.header("x-auto-response-suppress") or "").lower()
    if _SUPPRESS_VALUES & {part.strip() for part in suppress.split(",")}:
        return f"X-Auto-Response-Suppress: {suppress}"
    if request.header("list-id") or request.header("list-unsubscribe"):
        return "mailing-list message"
    if _null_return_path(request, envelope_sender):
        return "null return path"
    address = request.sender.address.lower() if request.sender else ""
    if not address or "@" not in address:
        return "no sender address"
    if is_no_reply(address):
        return f"no-reply sender {address}"
    if address in own_addresses:
        return f"sender {address} is our own address"
    return None


def _null_return_path(request: Request, envelope_sender: str | None) -> bool:
    """MAIL FROM:<>; without an SMTP envelope, the Return-Path the delivering server wrote."""
    path = envelope_sender if envelope_sender is not None else request.header("return-path")
    return path is not None and path.strip().strip("<>").strip() == ""


def is_no_reply(address: str) -> bool:
    """Whether ADDRESS is a mailbox nobody reads replies in (noreply@, mailer-daemon@ ...)."""
    return bool(_NO_REPLY.match(address.partition("@")[0]))


_UNDELIVERABLE = Undeliverable.__table__  # type: ignore[attr-defined]
_OUTBOX = OutboxItem.__table__  # type: ignore[attr-defined]
# One round trip per registration (Core, not the ORM: this runs for every acknowledgement).
_RECIPIENT_STATE = Prepared(select(
    select(_UNDELIVERABLE.c.reason).where(_UNDELIVERABLE.c.address == bindparam("address"),
                                          _UNDELIVERABLE.c.at >= bindparam("blocked_since"))
    .scalar_subquery(),
    select(func.count()).select_from(_OUTBOX).where(
        _OUTBOX.c.recipient == bindparam("address"), _OUTBOX.c.created_at >= bindparam("since"))
    .scalar_subquery()))


def recipient_blocked(session: Session, recipient: str, now: datetime,
                      limits: LoopSettings) -> str | None:
    """A reason not to send RECIPIENT another automatic message now, or None."""
    since = now - timedelta(minutes=limits.sender_window_min)
    blocked_since = now - timedelta(days=limits.undeliverable_days)
    bounced, sent = _RECIPIENT_STATE.execute(session.connection(), {
        "address": recipient.lower(), "since": since,
        "blocked_since": blocked_since}).fetchone()
    if bounced is not None:
        return f"{recipient} is undeliverable: {bounced}"
    if sent >= limits.sender_limit:
        return (f"rate limit: {sent} automatic messages to {recipient} "
                f"in the last {limits.sender_window_min} min")
    return None


# Outbox kinds written to our own staff, not to the customer: they cannot start a loop with
# the customer's mail system, and counting them would let our escalations silence the notices
# the customer is owed.
STAFF_KINDS = ("alert", "escalation", "assignment")


def ticket_limit_reached(session: Session, ticket_id: int, now: datetime,
                         limits: LoopSettings) -> str | None:
    """A reason not to send another automatic message about the ticket now, or None."""
    since = now - timedelta(minutes=limits.ticket_window_min)
    sent = session.exec(select(func.count()).select_from(OutboxItem).where(
        OutboxItem.ticket_id == ticket_id, col(OutboxItem.created_at) >= since,
        col(OutboxItem.kind).not_in(STAFF_KINDS))).one()
    if sent >= limits.ticket_limit:
        return (f"rate limit: {sent} automatic messages about this ticket "
                f"in the last {limits.ticket_window_min} min")
    return None


def customer_mail_blocked(session: Session, ticket_id: int, recipient: str, now: datetime,
                          limits: LoopSettings) -> str | None:
    """A reason not to write RECIPIENT about the ticket now (an address our mail bounced
    from, the per-recipient or the per-ticket rate limit), or None."""
    return (recipient_blocked(session, recipient.lower(), now, limits)
            or ticket_limit_reached(session, ticket_id, now, limits))


def mark_undeliverable(session: Session, addresses: list[str], reason: str,
                       ticket_id: int | None, now: datetime) -> list[str]:
    """Record ADDRESSES as bouncing permanently (again: the block starts anew); returns
    those newly recorded."""
    added = []
    for address in dict.fromkeys(a.lower() for a in addresses if a):
        known = session.get(Undeliverable, address)
        if known is None:
            session.add(Undeliverable(address=address, reason=reason[:500],
                                      ticket_id=ticket_id, at=now))
            added.append(address)
        else:
            known.reason, known.ticket_id, known.at = reason[:500], ticket_id, now
    session.flush()
    return added


_UNBLOCK = Prepared(delete(_UNDELIVERABLE).where(
    _UNDELIVERABLE.c.address == bindparam("address")))


def mark_deliverable(session: Session, address: str) -> bool:
    """ADDRESS works (the customer wrote from it, or a relay accepted our mail to it): lift
    its block. Whether there was one."""
    result = _UNBLOCK.execute(session.connection(), {"address": address.lower()})
    return bool(getattr(result, "rowcount", 0))
