"""The event loop the benchmarks' own clients and sinks run on."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's when installed (the daemon's dependency), else asyncio's: a load generator or
    sink on the daemon's two cores should take as little of them as it can."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
