"""Limits that bit: each refusal logged once with its reason and counted for /metrics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import structlog

log = structlog.get_logger("gateway.limits")

# Refusals in this process since it started, by limit name (read by /metrics).
REFUSALS: Counter[str] = Counter()


def limit_bit(limit: str, channel: str, **facts: object) -> None:
    """Count and log that LIMIT refused or delayed something on CHANNEL."""
    REFUSALS[limit] += 1
    log.warning(f"{channel}.refused", limit=limit, **facts)


class LargeSessions:
    """At most MOST sessions at a time may hold more than LARGE_BYTES of DATA in memory.

    Every SMTP session buffers its message; without this, two dozen 23 MB messages at once
    took a gigabyte. Past LARGE_BYTES a message goes on arriving in a spool file, so memory
    for DATA is bounded by sessions x LARGE_BYTES + MOST x max_message_bytes at the end of
    data, when a message is read back to be checked and stored (docs/hostile-input.md)."""

    def __init__(self, large_bytes: int, most: int, spool_dir: Path | None = None) -> None:
        self.large_bytes, self.most = large_bytes, most
        self.holding = 0
        # Where the rest of a large message waits while it arrives (None: the system's
        # temporary directory): a slow sender holds disk, not memory.
        self.spool_dir = spool_dir

    def take(self) -> bool:
        """A slot for one large message, or False when all are taken (never waits)."""
        if self.holding >= self.most:
            return False
        self.holding += 1
        return True

    def give_back(self) -> None:
        self.holding -= 1


class PeerConnections:
    """At most MOST open connections from one address: a thousand idle connections from one
    host took every descriptor and locked out every other client."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.open: Counter[str] = Counter()

    def enter(self, peer: str) -> bool:
        """Count a new connection from PEER, or False (not counted) when it is over the limit."""
        if self.open[peer] >= self.most:
            return False
        self.open[peer] += 1
        return True

    def leave(self, peer: str) -> None:
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]
