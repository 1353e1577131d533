"""Inputs claimed before they are parsed: instances sharing a database never parse one twice."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, bindparam, update
from sqlalchemy import select as sa_select

from gateway.store.db import is_sqlite, transaction
from gateway.store.models import RECEIVED, Input
from gateway.tickets.processing import pending_ids

_INPUTS = Input.__table__  # type: ignore[attr-defined]
# How long a claim keeps other instances off an input: a crashed instance's inputs are taken
# by the others after this; a claim is given back as soon as its batch ends.
CLAIM_LEASE = timedelta(minutes=2)


def instance_name(state_dir: Path) -> str:
    """This instance as its claims name it: the host and the state directory, the same
    across restarts (a restarted instance takes back at once what it had claimed)."""
    return f"{socket.gethostname()}:{state_dir.resolve()}"[-200:]


def claim_pending(engine: Engine, limit: int, after_id: int, now: datetime,
                  claimant: str = "") -> list[int]:
    """Ids of up to LIMIT received inputs above AFTER_ID, oldest first, claimed for CLAIMANT
    (see instance_name) until NOW + CLAIM_LEASE; its own earlier claims are free to it.

    On PostgreSQL one statement takes them (`FOR UPDATE SKIP LOCKED`: instances asking at the
    same moment get different inputs); each instance used to read the same oldest inputs,
    parse them and run the rules, and only then learn from the row lock that another had
    registered them (3,851 parses for 2,000 inputs with two instances). SQLite has one
    instance, whose processor hands out each id once: there the ids are only read, which
    takes no write lock from the intake door.
    """
    if is_sqlite(engine):
        return pending_ids(engine, limit, after_id)
    free = (sa_select(_INPUTS.c.id).where(_INPUTS.c.status == RECEIVED)
            .where(_INPUTS.c.id > after_id)
            .where(_INPUTS.c.claimed_until.is_(None) | (_INPUTS.c.claimed_until < now)
                   | (_INPUTS.c.claimed_by == claimant))
            .order_by(_INPUTS.c.id).limit(limit).with_for_update(skip_locked=True))
    with transaction(engine) as session:
        claimed = session.connection().execute(
            update(_INPUTS).where(_INPUTS.c.id.in_(free.scalar_subquery()))
            .values(claimed_until=now + CLAIM_LEASE, claimed_by=claimant)
            .returning(_INPUTS.c.id)).scalars().all()
    return sorted(int(i) for i in claimed)


def release_claims(engine: Engine, ids: list[int]) -> None:
    """Give back the claims on IDS that are still waiting (a batch that failed or left some
    for later), so that no instance has to wait for the lease to end."""
    if is_sqlite(engine) or not ids:
        return
    with transaction(engine) as session:
        session.connection().execute(
            update(_INPUTS).where(_INPUTS.c.id.in_(bindparam("ids", expanding=True)))
            .where(_INPUTS.c.status == RECEIVED).values(claimed_until=None), {"ids": ids})
