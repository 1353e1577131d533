"""One e-mail after intake: thread it into its ticket or register it, and queue the answer."""

from __future__ import annotations

import json

import structlog
from sqlmodel import Session

from gateway.outbox.compose import safe_address
from gateway.store.feed import publish
from gateway.store.models import PENDING_REGISTRATION
from gateway.tickets.context import Context
from gateway.tickets.lifecycle import accept_by_reply
from gateway.tickets.mail_loops import (
    acknowledgement_suppressed,
    mark_deliverable,
    recipient_blocked,
)
from gateway.tickets.mail_threads import find_ticket, link_ids, thread_ids
from gateway.tickets.registration import (
    NO_ACKNOWLEDGEMENT_NOTE,
    add_messages,
    message_row,
    register,
)
from gateway.tickets.replies import add_to_ticket, is_closed
from gateway.tickets.staff_notices import tell_named_people
from gateway.tickets.step import Held, Pending, decide, enqueue_acknowledgement, finish
from gateway.tickets.trust import hold_reason, loaded, reply_refusal
from parsers.model import Request
from rules.engine import Decision

# The name processing logged under before the mail step had a module of its own.
log = structlog.get_logger("gateway.processing")


def process_mail(session: Session, item: Pending, request: Request, context: Context,
                 release_held: bool, isolate: bool = True, decided: Decision | None = None) -> int:
    """Register or thread the e-mail ITEM; return the number of outgoing messages enqueued.
    DECIDED is the rules' decision made before the transaction, if any (else it is made here)."""
    now = context.clock.now()
    settings = context.settings
    source = json.loads(item.source)
    envelope_sender = source.get("mail_from") if isinstance(source, dict) else None
    # Another input with other content came first with this Message-ID (the door keeps both).
    clash = source.get("message_id_clash") if isinstance(source, dict) else None
    clash_note = (f"its Message-ID was used before by input {clash}, a different message"
                  if clash else None)
    prefix = settings.intake.ticket_prefix

    # An address that writes to us, or that a report says was delivered to, works again.
    sender_address = request.sender.address if request.sender else None
    working = [sender_address] if request.kind == "normal" and sender_address else []
    for works in working + request.delivered_to:
        if mark_deliverable(session, works):
            log.info("contact.deliverable_again", address=works.lower())
    existing = find_ticket(session, request, prefix, settings.intake.thread_links, now)
    follows_up = None
    if existing is not None:
        if (is_closed(existing) and request.kind == "normal"
                and settings.intake.reply_to_closed == "new"):
            follows_up = existing.number
        else:
            decision = ((decided or decide(request, context, item.received_at))
                        if request.kind == "normal" else None)
            refusal = reply_refusal(
                loaded(item.authentication), request.sender.address if request.sender else None,
                existing.customer_id, context.directory, settings.trust,
            ) if request.kind == "normal" else None
            outcome = add_to_ticket(
                session, existing, request, input_id=item.id, received_at=item.received_at,
                now=now, decision=decision, context=context, refusal=refusal)
            finish(item, existing.id, f"{outcome}; {clash_note}" if clash_note else outcome, now)
            structlog.contextvars.bind_contextvars(ticket=existing.number)
            if request.kind != "normal" or existing.proposed_priority is None or refusal:
                return 0
            # The customer may agree to our proposal of a lower priority by replying.
            return accept_by_reply(session, existing, request.reply_text or request.text,
                                   request.sender.address if request.sender else None,
                                   context)

    if request.kind != "normal":
        finish(item, None, f"stored, not registered: {request.kind.replace('_', ' ')}", now)
        log.info("input.not_registered", kind=request.kind)
        return 0

    address = request.sender.address if request.sender else None
    customer = context.directory.match_email(address)
    if customer is None and settings.intake.hold_unknown_senders and not release_held:
        raise Held(f"held: sender {address or '(none)'} is not a known customer")
    authentication = loaded(item.authentication)
    held = hold_reason(authentication, customer, settings.trust)
    if held and not release_held:
        # No ticket, so no acknowledgement (backscatter to the real address) and none of
        # the customer's tier, deadlines or escalations until a human releases it.
        raise Held(held)

    decision = decided or decide(request, context, item.received_at, customer)
    if decision.hold and not release_held:
        raise Held(f"held for review by rules: {', '.join(decision.fired)}")
    reason = acknowledgement_suppressed(request, envelope_sender, context.own_addresses)
    if reason is None and isinstance(source, dict) and source.get("acknowledge") is False:
        reason = "imported by ingest without --acknowledge"
    if reason is None and decision.suppress_ack:
        reason = f"suppressed by rules: {', '.join(decision.fired)}"
    recipient = safe_address(request.sender.address if request.sender else None)
    if reason is None and recipient is None:
        reason = "sender address cannot be written in a header"
    if reason is None and recipient is not None:
        # Envelope addresses are compared case-insensitively by the rate limit and bounces.
        recipient = recipient.lower()
        reason = recipient_blocked(session, recipient, now, settings.loops)
    notes = [f"{NO_ACKNOWLEDGEMENT_NOTE}: {reason}"] if reason else []
    if held:
        notes.append(f"released after review; {held.removeprefix('held: ')}")
    elif authentication and authentication.get("verdict") not in ("pass", "none"):
        notes.append(f"sender authentication {authentication.get('verdict')}:"
                     f" {authentication.get('reason')}")
    if follows_up:
        notes.append(f"follows up closed ticket {follows_up}")
    if clash_note:
        notes.append(f"the request's {clash_note}")
    ticket = register(session, request=request, customer=customer, decision=decision,
                      prefix=prefix, received_at=item.received_at, now=now,
                      default_tier=settings.intake.unknown_customer_tier,
                      notes=notes, follows_up=follows_up, policy=context.policy)
    structlog.contextvars.bind_contextvars(ticket=ticket.number)
    messages = [message_row(ticket.id, direction="in", kind="request",
                            message_id=request.message_id, at=item.received_at,
                            body=request.text, input_id=item.id)]
    enqueued = 0
    ids = thread_ids(request)
    # Outside the intake window the acknowledgement waits for registration; the customer
    # gets the courtesy notice now (when the policy wants one).
    pending = ticket.status == PENDING_REGISTRATION
    if (reason is None and recipient is not None
            and (not pending or context.policy.courtesy_notice)):
        message_id = enqueue_acknowledgement(
            session, ticket, request, decision, recipient,
            customer.language if customer else "ru", context, now, int(item.id or 0),
            look_first=isolate)
        if message_id is not None:
            enqueued = 1
            ids.append(message_id)
            messages.append(message_row(
                ticket.id, direction="out", kind="notice" if pending else "acknowledgement",
                message_id=message_id, at=now))
    add_messages(session, messages)
    link_ids(session, ticket.id, ids)
    publish(session, "ticket.registered", now, ticket_id=ticket.id, input_id=item.id)
    if customer is not None and (decision.assign_engineer or decision.copy_manager):
        enqueued += tell_named_people(session, ticket.id, context)
    finish(item, ticket.id, f"registered {ticket.number}", now)
    log.info("ticket.pending_registration" if pending else "ticket.registered",
             priority=ticket.priority, customer=ticket.customer_id,
             registered_at=ticket.registered_at.isoformat(), acknowledgement=reason or "queued")
    return enqueued

