"""Batches of stored inputs: parsed, decided, then registered a few per transaction by step."""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import Engine, bindparam, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from gateway.config.settings import LimitSettings
from gateway.intake.limits import check_attachments, check_structure
from gateway.store.db import read_transaction, transaction, write_turns
from gateway.store.feed import publish
from gateway.store.models import FAILED, HELD, RECEIVED, Input, InputBody
from gateway.tickets.chat_step import process_chat
from gateway.tickets.context import Context
from gateway.tickets.mail_step import process_mail
from gateway.tickets.parse_budget import NO_BUDGET, Guard, OverBudget
from gateway.tickets.phone_calls import process_call
from gateway.tickets.step import Held, Pending, decide
from gateway.tickets.trust import authenticate_input
from parsers.chat import ChatRequest, parse_stored_chat
from parsers.model import Request
from parsers.telephony import CallRequest, parse_stored
from rules.engine import Decision

log = structlog.get_logger("gateway.processing")


@dataclass
class BatchResult:
    processed: int = 0
    failed: int = 0
    enqueued: int = 0



@dataclass(frozen=True)
class Loaded:
    """An input as the parse step needs it."""

    id: int
    channel: str
    raw: bytes
    received_at: datetime
    source: str = "{}"
    authentication: str | None = None


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
    if channel == "chat":
        return parse_stored_chat(raw)
    raise ValueError(f"no parser for channel {channel!r}")


def parse_many(items: list[Loaded], limits: LimitSettings | None = None,
               guard: Guard = NO_BUDGET) -> Parsed:
    """Parse each input within GUARD's budget; pure. Errors become text, so one bad input
    stops nothing."""
    parsed: Parsed = {}
    for item in items:
        try:
            with guard():
                parsed[item.id] = parse_raw(item.channel, item.raw, limits)
        except OverBudget as over:
            parsed[item.id] = f"OverBudget: {over}"
        except MemoryError:
            parsed[item.id] = ("OverBudget: parsing needed more memory than its budget "
                               "(intake.parse_memory_mb)")
        except Exception as error:
            parsed[item.id] = f"{type(error).__name__}: {error}"
        error_text = parsed[item.id]
        if isinstance(error_text, str) and error_text.startswith("OverBudget"):
            log.warning("input.over_budget", input_id=item.id, error=error_text,
                        size=len(item.raw))
    return parsed


def decide_many(items: list[Loaded], parsed: Parsed, context: Context) -> dict[int, Decision]:
    """The rules' decision on each parsed e-mail, before the write transaction: the rules are
    pure CPU, and SQLite's one write lock should not be held while they run."""
    decisions: dict[int, Decision] = {}
    for item in items:
        request = parsed.get(item.id)
        if (isinstance(request, Request) and request.kind == "normal"
                and not isinstance(request, CallRequest | ChatRequest)):
            try:
                decisions[item.id] = decide(request, context, item.received_at)
            except Exception:  # decided again in the transaction, where it fails the input
                continue
    return decisions


def load_pending(engine: Engine, limit: int, only_ids: list[int] | None = None) -> list[Loaded]:
    """Up to LIMIT inputs to process, oldest first: received ones, or exactly ONLY_IDS."""
    with read_transaction(engine) as session:
        query = (sa_select(col(Input.id), col(Input.channel), col(InputBody.raw),
                           col(Input.received_at), col(Input.source), col(Input.authentication))
                 .join(InputBody, col(InputBody.input_id) == col(Input.id))
                 .order_by(col(Input.id)).limit(limit))
        if only_ids is None:
            query = query.where(col(Input.status) == RECEIVED)
        else:
            query = query.where(col(Input.id).in_(only_ids))
        return [Loaded(int(i or 0), c, r, at, s, a)
                for i, c, r, at, s, a in session.connection().execute(query).all()]


def pending_ids(engine: Engine, limit: int, after_id: int) -> list[int]:
    """Ids of up to LIMIT received inputs above AFTER_ID, oldest first."""
    with read_transaction(engine) as session:
        return [int(i or 0) for i in session.exec(
            select(Input.id).where(Input.status == RECEIVED).where(col(Input.id) > after_id)
            .order_by(col(Input.id)).limit(limit)).all()]



def process_pending(engine: Engine, context: Context, limit: int,
                    only_ids: list[int] | None = None, release_held: bool = False,
                    guard: Guard = NO_BUDGET) -> BatchResult:
    """Load, parse (each within GUARD's budget) and register up to LIMIT inputs in this
    thread (a worker process, the CLI and tests)."""
    loaded = load_pending(engine, limit, only_ids)
    if not loaded:
        return BatchResult()
    parsed = parse_many(loaded, context.settings.limits, guard)
    return apply_parsed(engine, context, parsed, release_held,
                        decide_many(loaded, parsed, context),
                        authenticate_many(loaded, parsed, context))


def authenticate_many(items: list[Loaded], parsed: Parsed, context: Context) -> dict[int, str]:
    """SPF, DKIM and DMARC of each parsed e-mail not checked before, outside the write
    transaction: DNS may take seconds, and no lock should wait on it."""
    found: dict[int, str] = {}
    for item in items:
        request = parsed.get(item.id)
        if (item.channel == "email" and item.authentication is None
                and isinstance(request, Request) and not isinstance(request, CallRequest)
                and (checked := authenticate_input(item.raw, item.source, context))):
            found[item.id] = checked
    return found


# Inputs registered per transaction at most. A transaction ends early when the intake door
# (which commits before every "250" and every 202) announces itself
# (`WriteTurns.urgent_waiting`), but not before COMMIT_AT_LEAST inputs: with many SMTP
# sessions the door asks every few ms, and half the transactions of the SMTP bench then
# registered one input each, while a transaction costs about what several registrations do.
COMMIT_EVERY = 16
COMMIT_AT_LEAST = 4


def apply_parsed(engine: Engine, context: Context, parsed: Parsed,
                 release_held: bool = False,
                 decisions: dict[int, Decision] | None = None,
                 authentication: dict[int, str] | None = None) -> BatchResult:
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
            done = _apply_chunk(engine, context, chunk, release_held, attempt, False, decisions,
                                authentication)
        except Exception:
            attempt = BatchResult()
            done = _apply_chunk(engine, context, chunk, release_held, attempt, True, decisions,
                                authentication)
        result.processed += attempt.processed
        result.failed += attempt.failed
        result.enqueued += attempt.enqueued
        start += done
    return result




_INPUTS = Input.__table__  # type: ignore[attr-defined]
_STORE_OUTCOME = (update(_INPUTS).where(_INPUTS.c.id == bindparam("input_id"))
                  .values(status=bindparam("status"), outcome=bindparam("outcome"),
                          last_error=bindparam("last_error"), attempts=bindparam("attempts"),
                          ticket_id=bindparam("ticket_id"),
                          processed_at=bindparam("processed_at"),
                          authentication=bindparam("authentication")))


def _load_open(session: Session, ids: list[int], statuses: list[str]) -> list[Pending]:
    """The inputs IDS still in one of STATUSES, locked (PostgreSQL skips those locked by
    another worker: they are that worker's)."""
    table = _INPUTS
    rows = session.connection().execute(
        sa_select(table.c.id, table.c.source, table.c.received_at, table.c.attempts,
                  table.c.status, table.c.outcome, table.c.last_error, table.c.ticket_id,
                  table.c.processed_at, table.c.authentication)
        .where(table.c.id.in_(ids)).where(table.c.status.in_(statuses))
        .order_by(table.c.id).with_for_update(skip_locked=True)).all()
    return [Pending(*tuple(row)) for row in rows]


def _store_outcomes(session: Session, items: list[Pending]) -> None:
    if items:
        session.connection().execute(_STORE_OUTCOME, [
            {"input_id": i.id, "status": i.status, "outcome": i.outcome,
             "last_error": i.last_error, "attempts": i.attempts, "ticket_id": i.ticket_id,
             "processed_at": i.processed_at, "authentication": i.authentication}
            for i in items])


def _apply_chunk(engine: Engine, context: Context, parsed: Parsed, release_held: bool,
                 result: BatchResult, isolate: bool,
                 decisions: dict[int, Decision] | None,
                 authentication: dict[int, str] | None = None) -> int:
    """Process the inputs of PARSED (ascending ids) in one transaction; return how many of
    them are done with: all, or those before the point where the intake door asked for the
    write turn (the rest are left as they were, for the next transaction)."""
    open_statuses: list[str] = [RECEIVED, FAILED, HELD] if release_held else [RECEIVED]
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
            if item.authentication is None and authentication:
                item.authentication = authentication.get(item.id)
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
                publish(session, "input.quarantined", context.clock.now(), input_id=item.id,
                        status=HELD, reason=str(held))
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
                publish(session, "input.quarantined", context.clock.now(), input_id=item.id,
                        status=FAILED, reason=item.last_error, attempts=item.attempts)
            finally:
                structlog.contextvars.unbind_contextvars("input_id", "ticket")
        _store_outcomes(session, items)
    return done


def fail_inputs(engine: Engine, ids: list[int], reason: str) -> int:
    """Quarantine the still-received inputs IDS with REASON (a worker died on them)."""
    with transaction(engine) as session:
        done = session.connection().execute(
            update(_INPUTS).where(_INPUTS.c.id.in_(ids)).where(_INPUTS.c.status == RECEIVED)
            .values(status=FAILED, last_error=reason, attempts=_INPUTS.c.attempts + 1))
        return int(done.rowcount or 0)


class ParseFailure(Exception):
    """The parse step's error, carried over from wherever it ran."""


def process_one(session: Session, item: Pending, request: Request, context: Context,
                release_held: bool, isolate: bool = True, decided: Decision | None = None) -> int:
    """Register or thread ITEM by its channel's step; the number of messages enqueued."""
    if isinstance(request, CallRequest):
        return process_call(session, item, request, context, release_held)
    if isinstance(request, ChatRequest):
        return process_chat(session, item, request, context, release_held)
    return process_mail(session, item, request, context, release_held, isolate, decided)
