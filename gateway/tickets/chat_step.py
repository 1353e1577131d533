"""Chat messages after intake: the first of a conversation registers, later ones join it."""

from __future__ import annotations

import dataclasses

import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from gateway.outbox.chat_replies import chat_address
from gateway.store.feed import publish
from gateway.store.models import PENDING_REGISTRATION, Ticket
from gateway.tickets.context import Context
from gateway.tickets.mail_loops import recipient_blocked
from gateway.tickets.phone_calls import match_phone
from gateway.tickets.registration import (
    NO_ACKNOWLEDGEMENT_NOTE,
    add_messages,
    message_row,
    register,
)
from gateway.tickets.replies import add_to_ticket, is_closed
from gateway.tickets.staff_notices import tell_named_people
from gateway.tickets.step import Held, Pending, decide, enqueue_acknowledgement, finish
from gateway.tickets.thread_merge import surviving
from parsers.chat import ChatRequest

log = structlog.get_logger("gateway.chats")

_TICKETS = Ticket.__table__  # type: ignore[attr-defined]


def conversation_ticket(session: Session, address: str) -> Ticket | None:
    """The newest ticket of the conversation answered at ADDRESS (merged: the survivor)."""
    ticket = session.exec(select(Ticket).where(Ticket.reply_to == address)
                          .order_by(col(Ticket.id).desc()).limit(1)).first()
    return surviving(session, ticket) if ticket is not None else None


def process_chat(session: Session, item: Pending, request: ChatRequest, context: Context,
                 release_held: bool = False) -> int:
    """Register a conversation's first message, or add a later one to its ticket; the number
    of messages enqueued. The rules are e-mail's: customer by e-mail or phone, triage,
    intake hours and deadlines; our answers go to the conversation, not by e-mail."""
    now = context.clock.now()
    settings = context.settings
    address = chat_address(request.platform, request.conversation)
    existing = conversation_ticket(session, address)
    follows_up = None
    if existing is not None:
        if is_closed(existing) and settings.intake.reply_to_closed == "new":
            follows_up = existing.number
        else:
            outcome = add_to_ticket(
                session, existing, request, input_id=item.id, received_at=item.received_at,
                now=now, decision=decide(request, context, item.received_at), context=context)
            finish(item, existing.id, outcome, now)
            structlog.contextvars.bind_contextvars(ticket=existing.number)
            return 0

    customer = match_phone(context.directory, request.phone) or context.directory.match_email(
        request.sender.address if request.sender else None)
    if customer is None and settings.intake.hold_unknown_senders and not release_held:
        who = (request.sender.address if request.sender else None) or request.phone
        raise Held(f"held: chat author {who or request.user_id or '(unnamed)'} is not a "
                   f"known customer")
    decision = decide(request, context, item.received_at, customer)
    if decision.hold and not release_held:
        raise Held(f"held for review by rules: {', '.join(decision.fired)}")
    reason = (f"suppressed by rules: {', '.join(decision.fired)}" if decision.suppress_ack
              else recipient_blocked(session, address, now, settings.loops))
    notes = [f"{NO_ACKNOWLEDGEMENT_NOTE}: {reason}"] if reason else []
    if follows_up:
        notes.append(f"follows up closed ticket {follows_up}")
    ticket = register(session, request=request, customer=customer, decision=decision,
                      prefix=settings.intake.ticket_prefix, received_at=item.received_at,
                      now=now, default_tier=settings.intake.unknown_customer_tier,
                      notes=notes, follows_up=follows_up, policy=context.policy)
    author = request.sender.name if request.sender else None
    # The conversation's address, and the author's name even without an e-mail address.
    session.connection().execute(update(_TICKETS).where(_TICKETS.c.id == ticket.id).values(
        reply_to=address, requester_name=author or request.author_name))
    structlog.contextvars.bind_contextvars(ticket=ticket.number)
    messages = [message_row(ticket.id, direction="in", kind="request",
                            message_id=request.message_id, at=item.received_at,
                            body=request.text, input_id=item.id)]
    enqueued = 0
    pending = ticket.status == PENDING_REGISTRATION
    if reason is None and (not pending or context.policy.courtesy_notice):
        # The acknowledgement answers the platform's message (its id, not ours).
        answered = dataclasses.replace(request, message_id=request.chat_message_id,
                                       references=[])
        message_id = enqueue_acknowledgement(
            session, ticket, answered, decision, address,
            customer.language if customer else "ru", context, now, int(item.id or 0),
            look_first=True)
        if message_id is not None:
            enqueued = 1
            messages.append(message_row(
                ticket.id, direction="out", kind="notice" if pending else "acknowledgement",
                message_id=message_id, at=now))
    add_messages(session, messages)
    publish(session, "ticket.registered", now, ticket_id=ticket.id, input_id=item.id)
    if customer is not None and (decision.assign_engineer or decision.copy_manager):
        enqueued += tell_named_people(session, ticket.id, context)
    finish(item, ticket.id, f"registered {ticket.number}", now)
    log.info("ticket.pending_registration" if pending else "ticket.registered",
             channel="chat", platform=request.platform, priority=ticket.priority,
             customer=ticket.customer_id, acknowledgement=reason or "queued")
    return enqueued
