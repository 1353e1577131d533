"""Missed calls from unknown numbers, stored for a call back: the list an operator works from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.clock import iso_utc
from gateway.store.db import read_transaction
from gateway.store.models import Input, InputBody
from parsers.phones import to_e164
from parsers.telephony import stored_event

# The outcome process_call records for them (the list selects on it).
UNKNOWN_MISSED = "stored, not registered: missed call from an unknown number"


def list_missed_calls(engine: Engine, since: datetime | None = None,
                      limit: int = 500) -> list[dict[str, Any]]:
    """Missed calls nobody registered (an unknown number), newest first."""
    with read_transaction(engine) as session:
        query = (select(Input, InputBody.raw)
                 .join(InputBody, col(InputBody.input_id) == col(Input.id))
                 .where(Input.outcome == UNKNOWN_MISSED))
        if since is not None:
            query = query.where(col(Input.received_at) >= since)
        rows = session.exec(query.order_by(col(Input.id).desc()).limit(limit)).all()
    calls: list[dict[str, Any]] = []
    for row, raw in rows:
        try:
            event = stored_event(raw)
        except (ValueError, KeyError):
            continue  # it was read when stored; a later reader that cannot is no reason to fail
        calls.append({"input_id": row.id, "received_at": iso_utc(row.received_at),
                      "hook": event.hook, "provider": event.provider, "call_id": event.call_id,
                      "caller": to_e164(event.caller) or event.caller, "called": event.called,
                      "started_at": iso_utc(event.started_at)})
    return calls
