"""Batches in the worker processes: the configuration packed once per reload, one engine each."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, replace
from functools import partial

from sqlalchemy import Engine

from gateway.clock import Clock
from gateway.daemon.gc_freeze import settle
from gateway.store.db import make_engine
from gateway.tickets.context import Context
from gateway.tickets.parse_budget import limit_memory, time_budget
from gateway.tickets.processing import BatchResult, process_pending

# One engine per database URL in each worker process, made for its first batch.
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
    intake = context.settings.intake
    limit_memory(intake.parse_memory_mb)
    return process_pending(engine, context, len(ids), ids,
                           guard=partial(time_budget, intake.parse_budget_s))


def call_deadline_s(parse_budget_s: float, inputs: int) -> float:
    """How long a batch of INPUTS may hold a worker before it is killed and replaced: each
    parse is stopped at its budget inside the worker, so only a worker stuck where the
    budget cannot reach (a long call in C) ever gets there."""
    return parse_budget_s * (inputs + 2) + 30

