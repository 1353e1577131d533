"""The one door: store every input durably, idempotently, before any channel says yes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, insert
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError

from gateway.clock import Clock
from gateway.intake.mail_identity import content_fingerprint, message_id_of
from gateway.store.db import Database, transaction
from gateway.store.models import RECEIVED, Input, InputBody
from gateway.store.prepared import Prepared, PreparedIn

log = structlog.get_logger("gateway.intake")

_MAX_KEY = 500
_INPUTS = Input.__table__  # type: ignore[attr-defined]
_BODIES = InputBody.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class IncomingInput:
    """What a channel hands to the door: the raw bytes and where they came from."""

    channel: str
    raw: bytes
    source: dict[str, Any] = field(default_factory=dict)
    # A channel-specific identity (a provider's call id); else Message-ID or a hash.
    key: str | None = None
    # When the request reached us by the channel's own account (IMAP INTERNALDATE, a call
    # event's time, an imported message's Date), already within the channel's bounds; the
    # door never lets it be later than its own commit. None: the commit is the arrival.
    arrived_at: datetime | None = None
    # ARRIVED_AT older than this before the commit is not believed (the commit counts).
    arrival_max_age: timedelta | None = None


@dataclass(frozen=True)
class Accepted:
    input_id: int
    duplicate: bool


def idempotency_key(item: IncomingInput) -> str:
    """Same input -> same key: the explicit key, else the Message-ID, else a content hash."""
    if item.key:
        key = f"{item.channel}:{item.key}"
    elif item.channel == "email" and (message_id := message_id_of(item.raw)):
        key = f"msgid:{message_id}"
    else:
        key = f"sha256:{hashlib.sha256(item.raw).hexdigest()}"
    return _bounded(key)


def _bounded(key: str) -> str:
    if len(key) > _MAX_KEY:
        key = f"sha256key:{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def arrival(claimed: datetime | None, now: datetime,
            max_age: timedelta | None = None) -> datetime | None:
    """CLAIMED as an arrival time: never after NOW, and None when older than MAX_AGE.

    A naive CLAIMED is UTC. None means "use the commit time".
    """
    if claimed is None:
        return None
    if claimed.tzinfo is None:
        claimed = claimed.replace(tzinfo=UTC)
    if max_age is not None and claimed < now - max_age:
        return None
    return min(claimed, now)


def _stored_fingerprints(connection: Connection, ids: list[int]) -> dict[int, str]:
    """The content fingerprint of each stored input IDS: noted in its source when it was
    stored, else (inputs stored before fingerprints were) computed from its raw bytes."""
    found: dict[int, str] = {}
    for input_id, source in connection.execute(
            sa_select(_INPUTS.c.id, _INPUTS.c.source).where(_INPUTS.c.id.in_(ids))):
        with contextlib.suppress(ValueError, TypeError):
            if fingerprint := json.loads(source).get("fingerprint"):
                found[int(input_id)] = str(fingerprint)
    missing = [i for i in ids if i not in found]
    if missing:
        for input_id, raw in connection.execute(
                sa_select(_BODIES.c.input_id, _BODIES.c.raw)
                .where(_BODIES.c.input_id.in_(missing))):
            found[int(input_id)] = content_fingerprint(raw)
    return found


def _reused_message_ids(connection: Connection, keys: list[str], prints: list[str | None],
                        known: dict[str, int]) -> dict[int, int]:
    """Turn the key of each item whose Message-ID is stored already with other content into
    a key of its own (the id and its fingerprint), in KEYS and KNOWN; item index -> the
    input that holds the Message-ID first. A true re-delivery keeps its key (a duplicate)."""
    seen = [i for i, key in enumerate(keys) if prints[i] is not None and key in known]
    if not seen:
        return {}
    stored = _stored_fingerprints(connection, sorted({known[keys[i]] for i in seen}))
    clashes: dict[int, int] = {}
    for index in seen:
        first = known[keys[index]]
        if stored.get(first) not in (None, prints[index]):
            keys[index] = _bounded(f"{keys[index]}#{prints[index]}")
            clashes[index] = first
    if clashes:
        known.update(_KNOWN_KEYS.execute(
            connection, list(dict.fromkeys(keys[i] for i in clashes))).fetchall())
    return clashes


def store_inputs(engine: Engine, items: list[IncomingInput], clock: Clock) -> list[Accepted]:
    """Store ITEMS in one transaction; an input seen before returns its first id."""
    try:
        return _store(engine, items, clock)
    except IntegrityError:
        # Another process stored one of these keys between our look-up and insert:
        # store one by one so each finds the other's row.
        if len(items) == 1:
            return _store(engine, items, clock)
        return [accepted for item in items for accepted in _store(engine, [item], clock)]


# Which of the idempotency keys are stored already.
_KNOWN_KEYS = PreparedIn(lambda keys: sa_select(_INPUTS.c.idempotency_key, _INPUTS.c.id)
                         .where(_INPUTS.c.idempotency_key.in_(keys)))


# On the driver's cursor: the door runs these before every "250" and every 202.
_INSERT_INPUT = Prepared(insert(_INPUTS).returning(_INPUTS.c.id))
_INSERT_BODY = Prepared(insert(_BODIES))


def _store(engine: Engine, items: list[IncomingInput], clock: Clock) -> list[Accepted]:
    keys = [idempotency_key(item) for item in items]
    # Mail keyed by its Message-ID is told apart by content too: a different message that
    # reuses an id was answered "250 stored" and absorbed into the first.
    prints = [content_fingerprint(item.raw) if key.startswith("msgid:") else None
              for item, key in zip(items, keys, strict=True)]
    now = clock.now()
    with transaction(engine, urgent=True) as session:
        connection = session.connection()
        known: dict[str, int] = dict(_KNOWN_KEYS.execute(
            connection, list(dict.fromkeys(keys))).fetchall())
        clashes = _reused_message_ids(connection, keys, prints, known)
        known_new: dict[str, int] = {}
        new_prints: dict[str, str | None] = {}
        bodies = []
        for index, item in enumerate(items):
            key = keys[index]
            if key in known_new and new_prints[key] != prints[index]:
                # Two messages with one Message-ID in the same batch.
                clashes[index] = known_new[key]
                key = keys[index] = _bounded(f"{key}#{prints[index]}")
            if key in known or key in known_new:
                continue
            source = dict(item.source)
            if prints[index] is not None:
                source["fingerprint"] = prints[index]
            if index in clashes:
                source["message_id_clash"] = clashes[index]
                log.warning("intake.message_id_clash", first_input_id=clashes[index],
                            key=keys[index])
            new_prints[key] = prints[index]
            known_new[key] = _INSERT_INPUT.execute(connection, {
                "channel": item.channel, "idempotency_key": key,
                "source": json.dumps(source, ensure_ascii=False),
                "size": len(item.raw), "status": RECEIVED, "attempts": 0,
                "received_at": arrival(item.arrived_at, now, item.arrival_max_age) or now,
            }).fetchone()[0]
            bodies.append({"input_id": known_new[key], "raw": item.raw})
        _INSERT_BODY.executemany(connection, bodies)
        results = []
        first_of_key: set[str] = set()
        for key in keys:
            if key in known:
                results.append(Accepted(known[key], duplicate=True))
            else:
                results.append(Accepted(known_new[key], duplicate=key in first_of_key))
                first_of_key.add(key)
    return results


class IntakeDoor:
    """Group commit for the event loop: concurrent accepts share one durable transaction."""

    def __init__(self, db: Database, clock: Clock, on_stored: Callable[[], None],
                 max_batch: int = 256) -> None:
        self._db = db
        self._clock = clock
        self._on_stored = on_stored
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[IncomingInput, asyncio.Future[Accepted]]] = (
            asyncio.Queue())
        # The error of the last commit, until one succeeds (/readyz: a database that answers
        # but cannot commit, a full disk, is not ready: every sender got 451 while it said 200).
        self.commit_failure: str | None = None

    async def accept(self, item: IncomingInput) -> Accepted:
        """Return once ITEM is committed; raise if the database could not store it."""
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def run(self) -> None:
        """Commit whatever is waiting, as one batch, until cancelled."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            items = [item for item, _ in batch]
            try:
                results = await self._db.run_urgent(store_inputs, self._db.engine, items,
                                                    self._clock)
            except Exception as error:
                self.commit_failure = (str(error).splitlines() or [""])[0][:300]
                log.error("intake.store_failed", error=str(error), count=len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.commit_failure = None
            for (_, future), accepted in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(accepted)
            log.debug("intake.stored", count=len(batch),
                      input_ids=[a.input_id for a in results if not a.duplicate])
            self._on_stored()
