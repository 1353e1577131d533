"""Who may see what in the portal: sign-in links to a customer's registered addresses,
used once; a company's requests and no one else's."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import structlog
from sqlalchemy import Engine, func, update
from sqlmodel import col, select

from gateway.config.customers import Directory
from gateway.outbox.compose import safe_address, sender_parts
from gateway.outbox.table import enqueue
from gateway.portal.links import PortalKeys, Session
from gateway.store.db import read_transaction, transaction
from gateway.store.models import PortalSignIn, Ticket
from gateway.tickets.view import list_tickets, show_ticket

log = structlog.get_logger("gateway.portal")

# Sign-in mails to one address in an hour: more are not sent (nor said to be refused).
SIGN_INS_PER_HOUR = 5
_SIGN_IN_TEXT = {
    "en": ("Sign in to the support portal",
           "Open this link to see your company's requests and send a new one:\n\n{link}\n\n"
           "It works once, for {minutes} minutes. If you did not ask for it, ignore this "
           "message.\n"),
    "ru": ("Вход на портал поддержки",
           "Откройте ссылку, чтобы увидеть обращения вашей компании и отправить новое:\n\n"
           "{link}\n\nОна действует один раз, {minutes} минут. Если вы не запрашивали вход, "
           "просто удалите это письмо.\n"),
}


def request_sign_in(engine: Engine, directory: Directory, keys: PortalKeys, email: str,
                    sender: str, now: datetime) -> bool:
    """Queue a one-time sign-in link to EMAIL when it is a customer's registered address
    (listed, or in one of its domains); whether one was queued. The caller answers the same
    either way, so the form tells nobody which addresses are registered."""
    address = safe_address(email.strip().lower())
    customer = directory.match_email(address) if address else None
    if address is None or customer is None:
        log.info("portal.sign_in_unknown")
        return False
    nonce, link = keys.new_sign_in()
    subject, text = _SIGN_IN_TEXT[customer.language if customer.language in _SIGN_IN_TEXT
                                  else "en"]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = address
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender_parts(sender)[1].rpartition("@")[2]
                                       or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text.format(link=link, minutes=keys.settings.sign_in_ttl_min))
    with transaction(engine) as session:
        recent = session.exec(select(func.count()).select_from(PortalSignIn).where(
            PortalSignIn.email == address).where(
            col(PortalSignIn.created_at) > now - timedelta(hours=1))).one()
        if recent >= SIGN_INS_PER_HOUR:
            log.warning("portal.sign_in_limited", customer=customer.id)
            return False
        session.add(PortalSignIn(nonce=nonce, email=address, customer_id=customer.id,
                                 created_at=now))
        enqueue(session, {
            "dedup_key": f"sign-in:{nonce}", "ticket_id": None, "kind": "sign_in",
            "sender": safe_address(sender_parts(sender)[1]) or "", "recipient": address,
            "message_id": str(message["Message-ID"]).strip("<>"),
            "message": message.as_bytes(), "send_by": now, "next_attempt_at": now,
            "created_at": now}, look_first=False)
    log.info("portal.sign_in_sent", customer=customer.id)
    return True


def use_sign_in(engine: Engine, nonce: str, now: datetime) -> Session | None:
    """The session a sign-in link opens, once; None when it was used before or is unknown."""
    with transaction(engine) as session:
        used = session.connection().execute(
            update(PortalSignIn).where(col(PortalSignIn.nonce) == nonce)
            .where(col(PortalSignIn.used_at).is_(None)).values(used_at=now))
        if used.rowcount != 1:
            return None
        row = session.get(PortalSignIn, nonce)
        assert row is not None
        return Session(row.customer_id, row.email)


def company_tickets(engine: Engine, customer: str) -> list[dict[str, Any]]:
    """The customer's requests, newest first."""
    return list_tickets(engine, customer=customer, limit=500)


def ticket_of_customer(engine: Engine, number: str, customer: str | None
                       ) -> dict[str, Any] | None:
    """Request NUMBER as the customer may see it; None when it is not theirs (CUSTOMER
    None: a signed link, which names the request itself)."""
    with read_transaction(engine) as session:
        owner = session.exec(select(Ticket.customer_id).where(
            Ticket.number == number.upper())).first()
    if customer is not None and owner != customer:
        return None
    return show_ticket(engine, number)
