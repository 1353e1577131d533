"""From a stored input to a registered ticket and its acknowledgement, in one transaction."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import traceback
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog
from sqlalchemy import Engine, bindparam, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from gateway.clock import Clock
from gateway.config.customers import CustomerEntry, Directory
from gateway.config.settings import LimitSettings, Settings
from gateway.daemon.gc_freeze import settle
from gateway.limits import check_attachments, check_structure
from gateway.outbox.compose import (
    TicketFacts,
    render_acknowledgement,
    render_mail,
    safe_address,
    sender_parts,
)
from gateway.outbox.worker import enqueue
from gateway.sla.deadlines import DEFAULT_CALENDAR
from gateway.sla.policy import Policy, seed_policy
from gateway.sla.working_calendar import is_working_time
from gateway.store.db import make_engine, read_transaction, transaction, write_turns
from gateway.store.models import FAILED, HELD, PROCESSED, RECEIVED, Input, InputBody
from gateway.tickets.lifecycle import accept_by_reply
from gateway.tickets.mail_loops import acknowledgement_suppressed, recipient_blocked
from gateway.tickets.mail_threads import find_ticket, link_ids, thread_ids
from gateway.tickets.registration import (
    NO_ACKNOWLEDGEMENT_NOTE,
    PENDING_REGISTRATION,
    NewTicket,
    add_messages,
    message_row,
    register,
)
from gateway.tickets.replies import add_to_ticket, is_closed
from parsers.model import Request
from parsers.telephony import CallRequest, parse_stored
from rules.engine import Decision, RuleSet, evaluate
from rules.facts import Sender
from rules.loader import builtin_rules

log = structlog.get_logger("gateway.processing")


@dataclass(frozen=True)
class Context:
    """What processing reads; replaced as a whole when configuration is reloaded."""

    settings: Settings
    directory: Directory
    clock: Clock
    own_addresses: frozenset[str] = field(default_factory=frozenset)
    policy: Policy = field(default_factory=seed_policy)
    ruleset: RuleSet = field(default_factory=builtin_rules)


@dataclass
class BatchResult:
    processed: int = 0
    failed: int = 0
    enqueued: int = 0


class Held(Exception):
    """An outcome, not an error: the input waits for a human decision."""


@dataclass(frozen=True)
class Loaded:
    """An input as the parse step needs it."""

    id: int
    channel: str
    raw: bytes
    received_at: datetime


# What the parse step returns per input: the request, or the error that stopped it.
Parsed = dict[int, Request | str]


def parse_raw(channel: str, raw: bytes, limits: LimitSettings | None = None) -> Request:
    if channel == "email":
        # IMAP and `ingest` inputs had no edge to refuse them at: over a limit they fail here
        # (quarantined, kept), before the full parse could spend time on them.
        if limits is not None:
            check_structure(raw, limits)
        # Imported on first use: with worker processes the daemon never parses, and the
        # parser with flanker is 8 MB.
        from parsers.email import parse_email

        request = parse_email(raw)
        if limits is not None:
            check_attachments(len(request.attachments), limits)
        return request
    if channel in ("phone", "web"):
        return parse_stored(raw)
    raise ValueError(f"no parser for channel {channel!r}")


def parse_many(items: list[Loaded], limits: LimitSettings | None = None) -> Parsed:
    """Parse each input; pure. Errors become text, so one bad input stops nothing."""
    parsed: Parsed = {}
    for item in items:
        try:
            parsed[item.id] = parse_raw(item.channel, item.raw, limits)
        except Exception as error:
            parsed[item.id] = f"{type(error).__name__}: {error}"
    return parsed


def decide_many(items: list[Loaded], parsed: Parsed, context: Context) -> dict[int, Decision]:
    """The rules' decision on each parsed e-mail, before the write transaction: the rules are
    pure CPU, and SQLite's one write lock should not be held while they run."""
    decisions: dict[int, Decision] = {}
    for item in items:
        request = parsed.get(item.id)
        if isinstance(request, Request) and not isinstance(request, CallRequest) and (
                request.kind == "normal"):
            try:
                decisions[item.id] = _decide(request, context, item.received_at)
            except Exception:  # decided again in the transaction, where it fails the input
                continue
    return decisions


def load_pending(engine: Engine, limit: int, only_ids: list[int] | None = None) -> list[Loaded]:
    """Up to LIMIT inputs to process, oldest first: received ones, or exactly ONLY_IDS."""
    with read_transaction(engine) as session:
        query = (select(Input.id, Input.channel, InputBody.raw, Input.received_at)
                 .join(InputBody, col(InputBody.input_id) == col(Input.id))
                 .order_by(col(Input.id)).limit(limit))
        if only_ids is None:
            query = query.where(Input.status == RECEIVED)
        else:
            query = query.where(col(Input.id).in_(only_ids))
        return [Loaded(int(i or 0), c, r, at) for i, c, r, at in session.exec(query).all()]


def pending_ids(engine: Engine, limit: int, after_id: int) -> list[int]:
    """Ids of up to LIMIT received inputs above AFTER_ID, oldest first."""
    with read_transaction(engine) as session:
        return [int(i or 0) for i in session.exec(
            select(Input.id).where(Input.status == RECEIVED).where(col(Input.id) > after_id)
            .order_by(col(Input.id)).limit(limit)).all()]


_worker_engines: dict[str, Engine] = {}


@dataclass(frozen=True)
class PackedContext:
    """A Context pickled once per configuration, named by a digest of its bytes.

    Unpickling a whole Context (customers, policy, rules) costs a worker far more than a
    batch of one message does, so each worker unpickles a configuration only once and then
    keeps it (see `unpacked`); every batch still carries the bytes, so a worker never needs
    to be told about a reload and can never run with a stale configuration.
    """

    digest: str
    data: bytes

    @classmethod
    def of(cls, context: Context) -> PackedContext:
        data = pickle.dumps(context, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(hashlib.sha256(data).hexdigest(), data)


# The configuration this worker process unpickled last, by digest.
_worker_context: dict[str, Context] = {}


def unpacked(packed: PackedContext) -> Context:
    context = _worker_context.get(packed.digest)
    if context is None:
        _worker_context.clear()
        context = _worker_context[packed.digest] = pickle.loads(packed.data)
        settle()  # the configuration lives until the next reload
    return context


def worker_ready() -> bool:
    """Run once in each new worker process: the imports are the warm-up."""
    import parsers.email  # noqa: F401  (what the first e-mail would import, 8 MB)

    settle()
    return True


def process_ids(database_url: str, packed: PackedContext, clock: Clock,
                ids: list[int]) -> BatchResult:
    """Process the received inputs IDS in a worker process, on its own connection.

    CLOCK comes with every batch: the packed context's clock is a copy from when it was
    packed, which a test's manual clock has moved on from since."""
    engine = _worker_engines.get(database_url)
    if engine is None:
        engine = _worker_engines[database_url] = make_engine(database_url)
    context = replace(unpacked(packed), clock=clock)
    return process_pending(engine, context, len(ids), ids)


def process_pending(engine: Engine, context: Context, limit: int,
                    only_ids: list[int] | None = None, release_held: bool = False) -> BatchResult:
    """Load, parse and register up to LIMIT inputs in this thread (CLI and tests)."""
    loaded = load_pending(engine, limit, only_ids)
    if not loaded:
        return BatchResult()
    parsed = parse_many(loaded, context.settings.limits)
    return apply_parsed(engine, context, parsed, release_held,
                        decide_many(loaded, parsed, context))


# Inputs registered per transaction at most. A transaction ends early when the intake door
# (which commits before every "250" and every 202) announces itself
# (`WriteTurns.urgent_waiting`), but not before COMMIT_AT_LEAST inputs: with many SMTP
# sessions the door asks every few ms, and half the transactions of the SMTP bench then
# registered one input each, while a transaction costs about what several registrations do.
COMMIT_EVERY = 16
COMMIT_AT_LEAST = 4


def apply_parsed(engine: Engine, context: Context, parsed: Parsed,
                 release_held: bool = False,
                 decisions: dict[int, Decision] | None = None) -> BatchResult:
    """Register or thread each parsed input, a few per transaction, each in its own savepoint.

    Inputs processed meanwhile by someone else are skipped; one bad input is marked failed
    with its error and never stops the others.
    """
    result = BatchResult()
    ids = sorted(parsed)
    start = 0
    while start < len(ids):
        chunk = {i: parsed[i] for i in ids[start:start + COMMIT_EVERY]}
        # Optimistic first: no savepoints. Should any input fail half-way, the chunk rolls
        # back and is redone with a savepoint per input, so only that input fails.
        attempt = BatchResult()
        try:
            done = _apply_chunk(engine, context, chunk, release_held, attempt, False, decisions)
        except Exception:
            attempt = BatchResult()
            done = _apply_chunk(engine, context, chunk, release_held, attempt, True, decisions)
        result.processed += attempt.processed
        result.failed += attempt.failed
        result.enqueued += attempt.enqueued
        start += done
    return result


@dataclass
class Pending:
    """An input row as processing reads it, and the status it ends the transaction with.

    A plain object instead of the ORM's: the ORM's identity map and unit of work cost more
    per input than the statements do; `_store_outcomes` writes every outcome of a chunk at once.
    """

    id: int
    source: str
    received_at: datetime
    attempts: int
    status: str = RECEIVED
    outcome: str | None = None
    last_error: str | None = None
    ticket_id: int | None = None
    processed_at: datetime | None = None


_INPUTS = Input.__table__  # type: ignore[attr-defined]
_STORE_OUTCOME = (update(_INPUTS).where(_INPUTS.c.id == bindparam("input_id"))
                  .values(status=bindparam("status"), outcome=bindparam("outcome"),
                          last_error=bindparam("last_error"), attempts=bindparam("attempts"),
                          ticket_id=bindparam("ticket_id"),
                          processed_at=bindparam("processed_at")))


def _load_open(session: Session, ids: list[int], statuses: list[str]) -> list[Pending]:
    """The inputs IDS still in one of STATUSES, locked (PostgreSQL skips those locked by
    another worker: they are that worker's)."""
    table = _INPUTS
    rows = session.connection().execute(
        sa_select(table.c.id, table.c.source, table.c.received_at, table.c.attempts,
                  table.c.status, table.c.outcome, table.c.last_error, table.c.ticket_id,
                  table.c.processed_at)
        .where(table.c.id.in_(ids)).where(table.c.status.in_(statuses))
        .order_by(table.c.id).with_for_update(skip_locked=True)).all()
    return [Pending(*row) for row in rows]


def _store_outcomes(session: Session, items: list[Pending]) -> None:
    if items:
        session.connection().execute(_STORE_OUTCOME, [
            {"input_id": i.id, "status": i.status, "outcome": i.outcome,
             "last_error": i.last_error, "attempts": i.attempts, "ticket_id": i.ticket_id,
             "processed_at": i.processed_at} for i in items])


def _apply_chunk(engine: Engine, context: Context, parsed: Parsed, release_held: bool,
                 result: BatchResult, isolate: bool,
                 decisions: dict[int, Decision] | None) -> int:
    """Process the inputs of PARSED (ascending ids) in one transaction; return how many of
    them are done with: all, or those before the point where the intake door asked for the
    write turn (the rest are left as they were, for the next transaction)."""
    open_statuses = [RECEIVED, FAILED, HELD] if release_held else [RECEIVED]
    ids = list(parsed)
    turns = write_turns(engine)
    with transaction(engine, flush_to_disk=False) as session:
        items = _load_open(session, ids, open_statuses)
        done = len(ids)
        for position, item in enumerate(items):
            if (position >= COMMIT_AT_LEAST and turns is not None
                    and turns.urgent_waiting()):
                done = ids.index(item.id)
                items = items[:position]
                break
            structlog.contextvars.bind_contextvars(input_id=item.id)
            request = parsed[item.id]
            decided = decisions.get(item.id) if decisions else None
            # What the row holds now: a failure inside a savepoint leaves it as it was.
            before = dataclasses.replace(item)
            try:
                if isinstance(request, str):
                    raise ParseFailure(request)
                if isolate:
                    with session.begin_nested():
                        result.enqueued += process_one(session, item, request, context,
                                                       release_held, decided=decided)
                else:
                    result.enqueued += process_one(session, item, request, context, release_held,
                                                   isolate=False, decided=decided)
                result.processed += 1
            except Held as held:
                item.status, item.outcome, item.last_error = HELD, str(held), None
                log.info("input.held", reason=str(held))
            except Exception as error:
                if not isolate and not isinstance(error, ParseFailure):
                    raise
                result.failed += 1
                item.outcome, item.ticket_id = before.outcome, before.ticket_id
                item.processed_at = before.processed_at
                item.status = FAILED
                item.attempts += 1
                item.last_error = str(error) if isinstance(error, ParseFailure) else (
                    f"{type(error).__name__}: {error}")
                log.error("input.failed", error=item.last_error,
                          where=traceback.format_exc(limit=-3))
            finally:
                structlog.contextvars.unbind_contextvars("input_id", "ticket")
        _store_outcomes(session, items)
    return done


class ParseFailure(Exception):
    """The parse step's error, carried over from wherever it ran."""


def process_one(session: Session, item: Pending, request: Request, context: Context,
                release_held: bool, isolate: bool = True, decided: Decision | None = None) -> int:
    """Register or thread ITEM; return the number of outgoing messages enqueued. DECIDED is
    the rules' decision made before the transaction, if any (else it is made here)."""
    if isinstance(request, CallRequest):
        from gateway.tickets.phone_calls import process_call  # calls.py uses this module's helpers

        return process_call(session, item, request, context)
    now = context.clock.now()
    settings = context.settings
    source = json.loads(item.source)
    envelope_sender = source.get("mail_from") if isinstance(source, dict) else None
    prefix = settings.intake.ticket_prefix

    existing = find_ticket(session, request, prefix)
    follows_up = None
    if existing is not None:
        if (is_closed(existing) and request.kind == "normal"
                and settings.intake.reply_to_closed == "new"):
            follows_up = existing.number
        else:
            decision = ((decided or _decide(request, context, item.received_at))
                        if request.kind == "normal" else None)
            outcome = add_to_ticket(
                session, existing, request, input_id=item.id, received_at=item.received_at,
                now=now, decision=decision, context=context)
            _finish(item, existing.id, outcome, now)
            structlog.contextvars.bind_contextvars(ticket=existing.number)
            if request.kind != "normal" or existing.proposed_priority is None:
                return 0
            # The customer may agree to our proposal of a lower priority by replying.
            return accept_by_reply(session, existing, request.reply_text or request.text,
                                   request.sender.address if request.sender else None,
                                   context)

    if request.kind != "normal":
        _finish(item, None, f"stored, not registered: {request.kind.replace('_', ' ')}", now)
        log.info("input.not_registered", kind=request.kind)
        return 0

    address = request.sender.address if request.sender else None
    customer = context.directory.match_email(address)
    if customer is None and settings.intake.hold_unknown_senders and not release_held:
        raise Held(f"held: sender {address or '(none)'} is not a known customer")

    decision = decided or _decide(request, context, item.received_at, customer)
    if decision.hold and not release_held:
        raise Held(f"held for review by rules: {', '.join(decision.fired)}")
    reason = acknowledgement_suppressed(request, envelope_sender, context.own_addresses)
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
    if follows_up:
        notes.append(f"follows up closed ticket {follows_up}")
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
        message_id = _enqueue_acknowledgement(
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
    _finish(item, ticket.id, f"registered {ticket.number}", now)
    log.info("ticket.pending_registration" if pending else "ticket.registered",
             priority=ticket.priority, customer=ticket.customer_id,
             registered_at=ticket.registered_at.isoformat(), acknowledgement=reason or "queued")
    return enqueued


def _decide(request: Request, context: Context, received_at: datetime,
            customer: CustomerEntry | None = None) -> Decision:
    """The rules' decision on REQUEST (a reply is judged on what it adds, like a request)."""
    if customer is None and request.sender is not None:
        customer = context.directory.match_email(request.sender.address)
    return evaluate(request, context.ruleset,
                    Sender(customer.id, customer.tier) if customer else None,
                    is_working_time(received_at, DEFAULT_CALENDAR))


def _enqueue_acknowledgement(session: Session, ticket: NewTicket, request: Request,
                             decision: Decision, recipient: str, language: str,
                             context: Context, now: datetime, input_id: int,
                             look_first: bool) -> str | None:
    """Queue the acknowledgement (or, for a ticket pending registration, the courtesy notice);
    its Message-ID, or None when one was queued before."""
    facts = TicketFacts(
        number=ticket.number, subject=ticket.subject, priority=ticket.priority,
        reaction_due=ticket.reaction_due, resolution_due=ticket.resolution_due,
        language=language, requester_name=ticket.requester_name, requester_email=recipient,
        in_reply_to=request.message_id, references=request.references,
        priority_change=(request.declared_priority, decision.change_reason)
        if request.declared_priority and decision.change_reason else None,
    )
    sender = context.settings.outgoing.sender
    pending = ticket.status == PENDING_REGISTRATION
    if pending:
        ack = render_mail("pending_registration", facts, sender, now,
                          registered_at=ticket.registered_at)
    else:
        ack = render_acknowledgement(facts, sender, now)
    # Keyed by the input, so a replayed input can never produce a second acknowledgement.
    added = enqueue(session, {
        "dedup_key": f"{'pending' if pending else 'ack'}:input:{input_id}",
        "ticket_id": ticket.id, "kind": "notice" if pending else "acknowledgement",
        "sender": safe_address(sender_parts(sender)[1]) or "", "recipient": recipient,
        "message_id": ack.message_id, "message": ack.data,
        # The courtesy notice is due now; an acknowledgement by the reaction deadline.
        "send_by": now if pending else ticket.reaction_due,
        "next_attempt_at": now, "created_at": now}, look_first=look_first)
    return ack.message_id if added else None


def _finish(item: Pending, ticket_id: int | None, outcome: str, now: datetime) -> None:
    item.status = PROCESSED
    item.outcome = outcome
    item.last_error = None
    item.ticket_id = ticket_id
    item.processed_at = now
