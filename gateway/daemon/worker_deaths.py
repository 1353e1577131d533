"""A worker that dies on a batch: replaced, the batch retried by input, the culprit quarantined."""

from __future__ import annotations

import asyncio
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

import structlog

from gateway.clock import Clock
from gateway.config.settings import Settings
from gateway.daemon.worker_batches import PackedContext, call_deadline_s, process_ids
from gateway.daemon.worker_pool import WorkerPool
from gateway.intake.refusals import limit_bit
from gateway.store.db import Database
from gateway.tickets.processing import BatchResult, fail_inputs

log = structlog.get_logger("gateway.workers")


class Pools(Protocol):
    """What the daemon's service offers here."""

    settings: Settings
    db: Database
    clock: Clock

    def packed(self) -> PackedContext: ...

    def worker_pool(self) -> WorkerPool: ...

    def replace_pool(self, broken: WorkerPool) -> WorkerPool: ...


async def process_in_worker(owner: Pools, ids: list[int]) -> BatchResult:
    """IDS processed in a worker of the owner's pool within a deadline. Each parse has its
    own budget in the worker; the deadline is for a worker stuck where that cannot reach (a
    long call in C). A worker that dies on the batch (killed, out of memory) is replaced and
    the inputs, still received, are tried again one by one; one that kills a worker alone
    is quarantined with the reason."""
    pool = owner.worker_pool()
    deadline_s = call_deadline_s(owner.settings.intake.parse_budget_s, len(ids))
    try:
        return await asyncio.wrap_future(pool.submit_within(
            deadline_s, process_ids, owner.settings.database_url(), owner.packed(),
            owner.clock, ids))
    except BrokenProcessPool as error:
        log.error("worker_pool.broken", error=str(error), cause=str(error.__cause__),
                  inputs=len(ids))
        owner.replace_pool(pool)
        if error.__cause__ is None:
            raise  # another call broke the pool; these were waiting and stay received
        if len(ids) > 1:
            total = BatchResult()
            for one in ids:
                part = await process_in_worker(owner, [one])
                total.processed += part.processed
                total.failed += part.failed
                total.enqueued += part.enqueued
            return total
        reason = f"WorkerDied: {error.__cause__}"
        failed = await owner.db.run(fail_inputs, owner.db.engine, ids, reason)
        limit_bit("parse_deadline", "processing", input_id=ids[0], reason=reason)
        return BatchResult(failed=failed)
