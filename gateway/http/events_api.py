"""GET /api/v1/events: the event feed by id, with a long poll for what has not happened yet."""

from __future__ import annotations

import asyncio

from fastapi import Query, Request
from starlette.responses import JSONResponse

from gateway.http.api import router, services_of
from gateway.store.feed import read_events

# How often a long poll looks again: events may be written by worker processes and by other
# instances on the same database, so no in-process signal sees them all.
POLL_INTERVAL_S = 0.25
MAX_WAIT_S = 60


@router.get("/events", summary="Events with an id above `after`, oldest first")
async def get_events(request: Request, after: int = Query(default=0, ge=0, le=2**63 - 1),
                     wait: float = Query(default=0, ge=0, le=MAX_WAIT_S),
                     limit: int = Query(default=100, ge=1, le=1000)) -> JSONResponse:
    """`wait=S` holds the answer up to S seconds until an event arrives; `next_after` is the
    `after` of the next call."""
    services = services_of(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        events = await asyncio.to_thread(read_events, services.db.engine, after, limit)
        if events or loop.time() >= deadline or services.closing:
            break
        await asyncio.sleep(min(POLL_INTERVAL_S, max(0.0, deadline - loop.time())))
    next_after = events[-1]["id"] if events else after
    return JSONResponse({"events": events, "next_after": next_after})
