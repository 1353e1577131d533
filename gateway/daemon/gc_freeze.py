"""Keeps the garbage collector's full collections short in long-running processes."""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect once, then exempt every object alive now from later collections.

    A process that has imported SQLAlchemy, FastAPI, pydantic and the rules holds about a
    million objects that live as long as it does. Each full collection walked them all: 75-85
    ms with the event loop stopped, which was the whole p99 of the HTTP intake. Frozen, they
    are left out, and a full collection walks only what was made since. Called again after a
    configuration reload, it first unfreezes, so the replaced configuration can be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
