"""Phone and web requests after intake: who called, register, thread a call's events, log calls."""

from __future__ import annotations

import dataclasses

import structlog
from sqlmodel import Session, col, select

from gateway.config.customers import CustomerEntry, Directory
from gateway.store.feed import publish
from gateway.store.models import PENDING_REGISTRATION, REGISTERED, Input, Ticket
from gateway.tickets.call_backs import CALL_BACK_NOTE, reaction_by_call
from gateway.tickets.context import Context
from gateway.tickets.mail_loops import is_no_reply, recipient_blocked
from gateway.tickets.mail_threads import extend_thread, find_ticket, link_ids, thread_ids
from gateway.tickets.missed_calls import UNKNOWN_MISSED
from gateway.tickets.notices import contact_address
from gateway.tickets.registration import (
    NO_ACKNOWLEDGEMENT_NOTE,
    add_messages,
    message_row,
    register,
)
from gateway.tickets.staff_notices import tell_named_people
from gateway.tickets.step import Held, Pending, decide, enqueue_acknowledgement, finish
from parsers.phones import to_e164
from parsers.telephony import CallRequest

log = structlog.get_logger("gateway.calls")

# Tickets a logged call may be attached to.
OPEN_STATUSES = (REGISTERED, "pending_registration", "in_progress", "waiting")

_phone_index: tuple[Directory, dict[str, CustomerEntry]] | None = None


def match_phone(directory: Directory, number: str | None) -> CustomerEntry | None:
    """The customer one of whose numbers is NUMBER, however either is written."""
    global _phone_index
    e164 = to_e164(number)
    if e164 is None:
        return None
    # The directory is replaced as a whole on reload, so its identity is the cache key.
    if _phone_index is None or _phone_index[0] is not directory:
        index = {n: c for c in directory.customers for p in c.phones if (n := to_e164(p))}
        _phone_index = (directory, index)
    return _phone_index[1].get(e164)


def identify(directory: Directory, request: CallRequest) -> CustomerEntry | None:
    """The customer named by the operator, else the caller's number, else the contact address."""
    if request.customer_hint and (named := directory.get(request.customer_hint)):
        return named
    if found := match_phone(directory, request.phone):
        return found
    return directory.match_email(request.sender.address if request.sender else None)


def open_ticket_of(session: Session, customer_id: str) -> Ticket | None:
    """The customer's newest open ticket."""
    return session.exec(
        select(Ticket).where(Ticket.customer_id == customer_id)
        .where(col(Ticket.status).in_(OPEN_STATUSES))
        .order_by(col(Ticket.id).desc()).limit(1)).first()


def process_call(session: Session, item: Pending, request: CallRequest,
                 context: Context, release_held: bool = False) -> int:
    """Register, thread or log one phone or web input; the number of messages enqueued.
    Held (as e-mail is) for an unknown caller with `hold_unknown_senders`, or by the rules."""
    now = context.clock.now()
    settings = context.settings
    prefix = settings.intake.ticket_prefix
    customer = identify(context.directory, request)

    existing = find_ticket(session, request, prefix)
    if existing is None and request.event == "answered" and customer is not None:
        existing = open_ticket_of(session, customer.id)
    if existing is not None:
        kind = "call" if request.event in ("answered", "ringing", "missed") else "reply"
        add_messages(session, [message_row(
            int(existing.id or 0), direction="in", kind=kind, message_id=request.message_id,
            at=item.received_at, body=request.text, input_id=item.id)])
        extend_thread(session, int(existing.id or 0), request)
        publish(session, "ticket.message_added", now, ticket_id=existing.id, input_id=item.id,
                kind=kind)
        if request.event == "missed":
            publish(session, "call.missed", now, ticket_id=existing.id, input_id=item.id,
                    caller=request.phone)
        if request.event == "answered":
            reaction_by_call(session, existing, item.received_at)
        finish(item, existing.id, f"added to {existing.number} as {kind} ({request.event})", now)
        structlog.contextvars.bind_contextvars(ticket=existing.number)
        log.info("call.logged", call_event=request.event)
        return 0
    if request.event in ("answered", "ringing"):
        finish(item, None, f"stored, not registered: {request.event} call, no open ticket", now)
        return 0
    if (request.event == "missed" and customer is None
            and settings.intake.missed_calls_from_unknown == "store"):
        finish(item, None, UNKNOWN_MISSED, now)
        publish(session, "call.missed", now, input_id=item.id, caller=request.phone)
        log.info("call.missed_unknown")
        return 0

    if customer is None and settings.intake.hold_unknown_senders and not release_held:
        who = request.phone or (request.sender.address if request.sender else None)
        raise Held(f"held: caller {who or '(none)'} is not a known customer")
    decision = decide(request, context, item.received_at, customer)
    if decision.hold and not release_held:
        raise Held(f"held for review by rules: {', '.join(decision.fired)}")
    recipient, notes = contact_address(request.sender.address if request.sender else None,
                                       customer, context.own_addresses)
    if request.event == "missed" and recipient is None:
        notes = [CALL_BACK_NOTE]
    # E-mail's guards, but on the address we would write to (given or on file): the rules,
    # a mailbox nobody reads, one that bounced, one written to too often lately (a loop, or
    # a caller giving someone else's address).
    reason: str | None = None
    if decision.suppress_ack:
        reason = f"suppressed by rules: {', '.join(decision.fired)}"
    elif recipient is not None and is_no_reply(recipient):
        reason = f"no-reply address {recipient}"
    elif recipient is not None:
        reason = recipient_blocked(session, recipient, now, settings.loops)
    if reason is not None:
        recipient, notes = None, [f"{NO_ACKNOWLEDGEMENT_NOTE}: {reason}"]
    ticket = register(session, request=request, customer=customer, decision=decision,
                      prefix=prefix, received_at=item.received_at, now=now,
                      default_tier=settings.intake.unknown_customer_tier, notes=notes,
                      policy=context.policy)
    structlog.contextvars.bind_contextvars(ticket=ticket.number)
    messages = [message_row(ticket.id, direction="in", kind="request",
                            message_id=request.message_id, at=item.received_at,
                            body=request.text, input_id=item.id)]
    enqueued = 0
    # Outside the intake window the acknowledgement waits for registration (the SLA step
    # sends it); the customer gets the courtesy notice now, when the policy wants one.
    pending = ticket.status == PENDING_REGISTRATION
    if recipient is not None and (not pending or context.policy.courtesy_notice):
        # The call's own id is no e-mail Message-ID: the acknowledgement refers to nothing.
        plain = dataclasses.replace(request, message_id=None, references=[])
        message_id = enqueue_acknowledgement(
            session, ticket, plain, decision, recipient, customer.language if customer else "ru",
            context, now, int(item.id or 0), look_first=True)
        if message_id is not None:
            enqueued = 1
            messages.append(message_row(
                ticket.id, direction="out", kind="notice" if pending else "acknowledgement",
                message_id=message_id, at=now))
    add_messages(session, messages)
    # The call id (as a Message-ID) joins the call's later events to this ticket.
    link_ids(session, ticket.id, thread_ids(request))
    publish(session, "ticket.registered", now, ticket_id=ticket.id, input_id=item.id)
    if customer is not None and (decision.assign_engineer or decision.copy_manager):
        enqueued += tell_named_people(session, ticket.id, context)
    if request.event == "missed":
        publish(session, "call.missed", now, ticket_id=ticket.id, input_id=item.id,
                caller=request.phone)
    finish(item, ticket.id, f"registered {ticket.number}", now)
    log.info("ticket.pending_registration" if pending else "ticket.registered",
             channel=request.channel, call_event=request.event, priority=ticket.priority,
             customer=ticket.customer_id, registered_at=ticket.registered_at.isoformat(),
             acknowledgement="queued" if enqueued else (notes or ["none"])[0])
    return enqueued


def ticket_of_input(session: Session, input_id: int) -> str | None:
    """The number of the ticket input INPUT_ID was registered as or added to, if any yet."""
    return session.exec(select(Ticket.number).join(Input, col(Input.ticket_id) == col(Ticket.id))
                       .where(Input.id == input_id)).first()
