"""An input's outcome as one of a few kinds: for /metrics labels and `ingest`'s summary."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case

from gateway.store.models import FAILED, HELD, PROCESSED, RECEIVED

# The outcome text names the ticket ("registered SUP-000042", "added to SUP-000042 as
# reply"); its kind never does, so a label made of it has a fixed set of values.
OUTCOME_KINDS = ("received", "registered", "added_to_ticket", "stored", "held", "failed",
                 "other")
_PREFIXES = (("registered ", "registered"), ("added to ", "added_to_ticket"),
             ("stored, not registered", "stored"))


def outcome_kind(status: str, outcome: str | None) -> str:
    """The kind of one input's outcome (one of OUTCOME_KINDS)."""
    if status in (RECEIVED, HELD, FAILED):
        return str(status)
    if status == PROCESSED:
        for prefix, kind in _PREFIXES:
            if (outcome or "").startswith(prefix):
                return kind
    return "other"


def outcome_kind_sql(status: Any, outcome: Any) -> Any:
    """outcome_kind as a SQL expression over the STATUS and OUTCOME columns, so a query can
    group by it (grouping by the outcome text would make one group per ticket)."""
    processed = [(outcome.startswith(prefix, autoescape=True), kind)
                 for prefix, kind in _PREFIXES]
    return case(*[(status == s, str(s)) for s in (RECEIVED, HELD, FAILED)],
                *[((status == PROCESSED) & condition, kind) for condition, kind in processed],
                else_="other")
