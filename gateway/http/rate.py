"""Requests per source address per minute: a token bucket per peer, in the daemon's memory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

# Buckets kept at most; past it, full (idle) buckets are dropped so memory stays bounded.
MAX_SOURCES = 10_000


class SourceRate:
    """Each source may burst PER_MINUTE requests, refilled evenly over a minute.

    A bucket, not a fixed window: no doubled burst at a window edge, and one float pair per
    source; the event loop is single-threaded, so no lock is needed.
    """

    def __init__(self, per_minute: Callable[[], int],
                 now: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._now = now
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, at)

    def retry_after(self, source: str) -> int | None:
        """Take one token for SOURCE: None if allowed, else whole seconds until one is back."""
        capacity = float(self._per_minute())
        rate = capacity / 60.0
        now = self._now()
        tokens, at = self._buckets.get(source, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[source] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))
        if source not in self._buckets and len(self._buckets) >= MAX_SOURCES:
            self._prune(now, rate, capacity)
        self._buckets[source] = (tokens - 1.0, now)
        return None

    def _prune(self, now: float, rate: float, capacity: float) -> None:
        full = [s for s, (t, at) in self._buckets.items() if t + (now - at) * rate >= capacity]
        for source in full:
            del self._buckets[source]
        if len(self._buckets) >= MAX_SOURCES:  # all busy: forget the oldest half
            for source in sorted(self._buckets, key=lambda s: self._buckets[s][1])[
                    :MAX_SOURCES // 2]:
                del self._buckets[source]
