"""Mail about a stored ticket (registration acknowledgements, notices, alerts) into the outbox."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlmodel import Session, col, select

from gateway.clock import iso_utc
from gateway.config.customers import CustomerEntry
from gateway.config.settings import LoopSettings
from gateway.outbox.compose import TicketFacts, render_mail, safe_address, sender_parts
from gateway.outbox.table import enqueue
from gateway.store.models import NO_ACKNOWLEDGEMENT, Ticket, TicketEvent, TicketMessage
from gateway.tickets.mail_loops import customer_mail_blocked
from gateway.tickets.registration import NO_ACKNOWLEDGEMENT_NOTE, add_messages, message_row

if TYPE_CHECKING:
    from gateway.tickets.context import Context

log = structlog.get_logger("gateway.notices")


def ticket_tier(ticket: Ticket, context: Context) -> str:
    """The tier whose clock applies to TICKET (unknown senders: the configured default)."""
    return ticket.tier or context.settings.intake.unknown_customer_tier


def ticket_language(ticket: Ticket, context: Context) -> str:
    """The language the customer of TICKET is written to in (unknown senders: Russian)."""
    customer = context.directory.get(ticket.customer_id)
    return customer.language if customer else "ru"


def contact_address(given: str | None, customer: CustomerEntry | None,
                    own: frozenset[str]) -> tuple[str | None, list[str]]:
    """Where a phone or web ticket's mail goes: the contact GIVEN, else the customer's
    contact on file; and what the ticket's notes say about it."""
    given = safe_address(given)
    if given and given.lower() not in own:
        return given, []
    on_file = next((a for a in (customer.emails if customer else []) if safe_address(a)), None)
    if on_file and on_file.lower() not in own:
        return on_file, [f"acknowledgement sent to the customer's contact on file {on_file}"]
    return None, [f"{NO_ACKNOWLEDGEMENT_NOTE}: no contact e-mail address given or on file"]


def customer_address(ticket: Ticket, context: Context) -> str | None:
    """Where mail to the customer goes: the requester, unless we must not write to them.

    A phone or web ticket's requester may have given no address (or ours): then its mail
    goes to the customer's contact on file, as its acknowledgement does."""
    notes = json.loads(ticket.notes)
    if any(str(n).startswith(NO_ACKNOWLEDGEMENT_NOTE) for n in notes):
        return None
    if ticket.channel == "email":
        return safe_address(ticket.requester_email)
    return contact_address(ticket.requester_email, context.directory.get(ticket.customer_id),
                           context.own_addresses)[0]


def first_message_id(session: Session, ticket: Ticket) -> str | None:
    """The Message-ID of the customer's request that opened the ticket (a phone or web
    request has none: its call id is stored in that column, and no mail of theirs had it)."""
    if ticket.channel != "email":
        return None
    return session.exec(select(TicketMessage.message_id)
                        .where(TicketMessage.ticket_id == ticket.id)
                        .where(TicketMessage.kind == "request")
                        .order_by(col(TicketMessage.id)).limit(1)).first()


def add_note(ticket: Ticket, text: str) -> None:
    """Append TEXT to the ticket's notes, where `tickets show` says why something happened."""
    notes = json.loads(ticket.notes or "[]")
    notes.append(text)
    ticket.notes = json.dumps(notes, ensure_ascii=False)


def enqueue_ticket_mail(session: Session, ticket: Ticket, *, template: str, recipient: str,
                        language: str, sender: str, now: datetime, dedup_key: str, kind: str,
                        limits: LoopSettings, in_reply_to: str | None = None,
                        send_by: datetime | None = None, to_customer: bool = True,
                        subject_note: str = "", **extra: Any) -> str | None:
    """Render TEMPLATE about TICKET to RECIPIENT and queue it (once per DEDUP_KEY).

    Mail to the customer is held to the loop protection's LIMITS: over them nothing is
    queued and the ticket's notes say why. Mail to the customer is recorded among the
    ticket's messages; its Message-ID is returned, or None when nothing was queued (withheld,
    or the key was queued before).
    """
    assert ticket.id is not None and ticket.reaction_due and ticket.resolution_due
    if to_customer:
        reason = customer_mail_blocked(session, ticket.id, recipient, now, limits)
        if reason is not None:
            _withhold(ticket, template, kind, reason, now)
            return None
    facts = TicketFacts(
        number=ticket.number, subject=ticket.subject, priority=ticket.priority,
        reaction_due=ticket.reaction_due, resolution_due=ticket.resolution_due,
        language=language, requester_name=ticket.requester_name if to_customer else None,
        requester_email=recipient, in_reply_to=in_reply_to, references=[])
    mail = render_mail(template, facts, sender, now,
                       auto_submitted="auto-replied" if to_customer else "auto-generated",
                       subject_note=subject_note, **extra)
    added = enqueue(session, {
        "dedup_key": dedup_key, "ticket_id": ticket.id, "kind": kind,
        "sender": safe_address(sender_parts(sender)[1]) or "", "recipient": recipient,
        "message_id": mail.message_id, "message": mail.data, "send_by": send_by or now,
        "next_attempt_at": now, "created_at": now})
    if not added:
        return None
    if to_customer:
        add_messages(session, [message_row(ticket.id, direction="out", kind=kind,
                                           message_id=mail.message_id, at=now)])
    return mail.message_id


def _withhold(ticket: Ticket, template: str, kind: str, reason: str, now: datetime) -> None:
    """Record on TICKET that its mail from TEMPLATE was not sent, and why."""
    what = kind if template == kind else f"{template.replace('_', ' ')} {kind}"
    # Not a NO_ACKNOWLEDGEMENT_NOTE: that would stop all later mail, not only this message.
    add_note(ticket, f"{now.isoformat()}: {what} not sent: {reason}")
    if kind == "acknowledgement":
        # As at registration: a ticket nobody is acknowledged for has no reaction to count.
        ticket.sla_outcome |= NO_ACKNOWLEDGEMENT
    log.info("mail.withheld", ticket=ticket.number, template=template, reason=reason)


def record_event(session: Session, ticket_id: int, kind: str, at: datetime,
                 actor: str | None = None, **details: Any) -> int:
    """Add one entry to the ticket's history; its id."""
    event = TicketEvent(ticket_id=ticket_id, at=at, kind=kind, actor=actor,
                        details=json.dumps(details, ensure_ascii=False, default=_json))
    session.add(event)
    session.flush()
    return int(event.id or 0)


def _json(value: object) -> object:
    return iso_utc(value) if isinstance(value, datetime) else str(value)
