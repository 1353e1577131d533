"""Inputs that failed or wait for a human: listing them and processing them again."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.clock import SystemClock, iso_utc
from gateway.config.settings import LoadedSettings
from gateway.store.db import read_transaction
from gateway.store.existing import open_existing
from gateway.store.models import FAILED, HELD, Input
from gateway.tickets.processing import process_pending


def list_quarantine(engine: Engine) -> list[dict[str, Any]]:
    with read_transaction(engine) as session:
        rows = session.exec(select(Input).where(col(Input.status).in_([FAILED, HELD]))
                            .order_by(col(Input.id))).all()
        return [{"id": r.id, "status": r.status, "channel": r.channel,
                 "received_at": iso_utc(r.received_at), "size": r.size,
                 "key": r.idempotency_key, "attempts": r.attempts,
                 "error": r.last_error or r.outcome,
                 "authentication": json.loads(r.authentication) if r.authentication else None}
                for r in rows]


def retry(loaded: LoadedSettings, ids: list[int] | None) -> str:
    """Process failed or held inputs again (all of them when IDS is None).

    A held input retried by an operator is released: it registers even from an unknown sender.
    """
    from gateway.daemon.context_files import build_context
    from gateway.daemon.one_round import deliver_now

    engine = open_existing(loaded.settings.database_url())
    with read_transaction(engine) as session:
        query = select(Input.id).where(col(Input.status).in_([FAILED, HELD]))
        if ids is not None:
            query = query.where(col(Input.id).in_(ids))
        chosen = [int(i) for i in session.exec(query).all() if i is not None]
    if not chosen:
        return "nothing to retry"
    context = build_context(loaded, SystemClock())
    processed = failed = 0
    for start in range(0, len(chosen), 100):
        batch = chosen[start:start + 100]
        result = process_pending(engine, context, len(batch), only_ids=batch, release_held=True)
        processed += result.processed
        failed += result.failed
    sent = deliver_now(loaded)
    return f"retried {len(chosen)}: {processed} processed, {failed} failed again, {sent} sent"


def release(loaded: LoadedSettings, input_id: int) -> tuple[int, str]:
    """Register the held input INPUT_ID after a human looked (as its customer, with the
    acknowledgement); exit code and what to print. Only a held input can be released."""
    engine = open_existing(loaded.settings.database_url())
    with read_transaction(engine) as session:
        row = session.get(Input, input_id)
        status = None if row is None else row.status
    if status is None:
        return 1, f"intake-gateway: no input {input_id}"
    if status != HELD:
        return 1, f"intake-gateway: input {input_id} is {status}, not held; nothing released"
    summary = retry(loaded, [input_id])
    with read_transaction(engine) as session:
        row = session.get(Input, input_id)
        outcome = "" if row is None else (row.outcome or row.last_error or row.status)
    return (0 if row is not None and row.status != FAILED else 1), f"{summary}: {outcome}"


def parse_authentication(config: str | None, raw: bytes) -> dict[str, Any] | None:
    """What `parse` shows: a file has no envelope to verify, so only the Authentication-Results
    (or ARC) of whom [trust] trusts; the defaults when the configuration cannot be read."""
    from gateway.config.settings import load_settings
    from gateway.config.trust_settings import TrustSettings
    from gateway.intake.sender_auth import authenticate
    from rules.config_errors import ConfigError

    try:
        trust = load_settings(config).settings.trust
    except ConfigError:
        trust = TrustSettings()
    return None if trust.mode == "off" else authenticate(raw, {"via": "file"}, trust)
