"""Outbound webhooks: the event feed sent to each `[[subscriptions]]` URL, signed by the
Standard Webhooks scheme, at least once, in order per ticket, retried, then a dead letter.

A delivery is planned in the commit that wrote its event (`gateway.store.feed.publish`), so
none is missed; it is claimed with a lease before it is sent, so a process that dies
mid-send leaves it to be sent again (receivers deduplicate by `webhook-id`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine, and_, exists, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from standardwebhooks import Webhook

from gateway.clock import Clock, iso_utc
from gateway.config.subscriptions import SubscriptionSettings
from gateway.store.db import Database, read_transaction, transaction
from gateway.store.feed import event_json
from gateway.store.models import (
    DEAD,
    DELIVERED,
    PENDING,
    SENDING,
    Delivery,
    FeedEvent,
    Subscription,
)

if TYPE_CHECKING:
    import httpx

log = structlog.get_logger("gateway.webhooks")

BACKOFF_CAP_S = 3600.0
BATCH = 64
CONCURRENCY = 16
# Deliveries written by worker processes and other instances are noticed this often.
POLL_INTERVAL_S = 0.5
_TABLE = Delivery.__table__  # type: ignore[attr-defined]


def sync_subscriptions(engine: Engine, subscriptions: Sequence[SubscriptionSettings]) -> None:
    """Mirror the configured subscriptions (the feed's writers plan deliveries from it); one
    no longer configured stops getting new deliveries."""
    configured = {s.name: s for s in subscriptions}
    with transaction(engine) as session:
        for row in session.exec(select(Subscription)):
            # A name with ":" is a tracker's ("tracker:rt"), kept by the trackers.
            if row.name not in configured and ":" not in row.name:
                row.active = False
                session.add(row)
        for sub in subscriptions:
            events = f",{','.join(sub.events)}," if sub.events is not None else None
            session.merge(Subscription(name=sub.name, events=events, active=True))


def backoff(attempts: int, base_s: float) -> timedelta:
    """Exponential with jitter, capped at an hour: about base, 2 base, 4 base ..."""
    ceiling = min(BACKOFF_CAP_S, base_s * 2 ** max(0, attempts - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


@dataclass(frozen=True)
class Claimed:
    id: int
    subscription: str
    event_id: int
    attempts: int
    body: bytes


def lease_of(sub: SubscriptionSettings) -> timedelta:
    """Long enough for one send to finish or time out, so only a dead sender's lease ends."""
    return timedelta(seconds=2 * sub.timeout_s + 5)


def claim(engine: Engine, now: datetime, subscriptions: Sequence[SubscriptionSettings],
          limit: int = BATCH) -> list[Claimed]:
    """Lease the due deliveries whose ticket has no earlier one still owed (in order per
    ticket), and those whose sender's lease ran out; with their bodies."""
    by_name = {s.name: s for s in subscriptions}
    if not by_name:
        return []
    earlier = aliased(_TABLE)
    owed_before = exists().where(
        earlier.c.subscription == _TABLE.c.subscription,
        earlier.c.ticket_number == _TABLE.c.ticket_number,
        earlier.c.id < _TABLE.c.id, earlier.c.status.in_([PENDING, SENDING]))
    with transaction(engine, flush_to_disk=False) as session:
        connection = session.connection()
        rows = connection.execute(
            sa_select(_TABLE.c.id, _TABLE.c.subscription, _TABLE.c.event_id,
                      _TABLE.c.attempts)
            .where(_TABLE.c.subscription.in_(list(by_name)))
            .where(or_(and_(_TABLE.c.status == PENDING, _TABLE.c.next_attempt_at <= now),
                       and_(_TABLE.c.status == SENDING, _TABLE.c.lease_until < now)))
            .where(~owed_before).order_by(_TABLE.c.id).limit(limit)
            .with_for_update(skip_locked=True)).all()
        if not rows:
            return []
        for row in rows:
            connection.execute(update(_TABLE).where(_TABLE.c.id == row.id).values(
                status=SENDING, attempts=row.attempts + 1,
                lease_until=now + lease_of(by_name[row.subscription])))
        events = {e.id: e for e in session.exec(
            select(FeedEvent).where(col(FeedEvent.id).in_([r.event_id for r in rows])))}
    return [Claimed(r.id, r.subscription, r.event_id, r.attempts + 1,
                    payload(events[r.event_id])) for r in rows]


def payload(event: FeedEvent) -> bytes:
    """The body: Standard Webhooks' recommended envelope around the feed's event."""
    return json.dumps({"type": event.type, "timestamp": iso_utc(event.at),
                       "data": event_json(event)}, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Sent:
    item: Claimed
    error: str | None


def record(engine: Engine, results: Sequence[Sent], now: datetime,
           subscriptions: Sequence[SubscriptionSettings]) -> None:
    """Delivered, due again after a backoff, or dead after the last attempt; only rows still
    leased to this sender (same attempt) are changed."""
    by_name = {s.name: s for s in subscriptions}
    with transaction(engine, flush_to_disk=False) as session:
        connection = session.connection()
        for result in results:
            item, sub = result.item, by_name.get(result.item.subscription)
            values: dict[str, Any]
            if result.error is None:
                values = {"status": DELIVERED, "delivered_at": now, "last_error": None}
            elif sub is None or item.attempts >= sub.max_attempts:
                values = {"status": DEAD, "last_error": result.error}
                log.error("webhook.dead", subscription=item.subscription,
                          event_id=item.event_id, attempts=item.attempts, error=result.error)
            else:
                values = {"status": PENDING, "last_error": result.error,
                          "next_attempt_at": now + backoff(item.attempts, sub.retry_base_s)}
                log.warning("webhook.retry", subscription=item.subscription,
                            event_id=item.event_id, attempts=item.attempts, error=result.error)
            connection.execute(update(_TABLE).where(_TABLE.c.id == item.id)
                               .where(_TABLE.c.status == SENDING)
                               .where(_TABLE.c.attempts == item.attempts)
                               .values(lease_until=None, **values))


async def send(client: httpx.AsyncClient, sub: SubscriptionSettings, item: Claimed,
               at: datetime) -> Sent:
    """POST one delivery; the error in words, or None for a 2xx answer."""
    import httpx
    message_id = f"evt_{item.event_id}"
    signature = Webhook(sub.secret.get_secret_value()).sign(message_id, at, item.body)
    headers = {"content-type": "application/json", "webhook-id": message_id,
               "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature,
               "user-agent": "intake-gateway"}
    try:
        response = await client.post(sub.url, content=item.body, headers=headers,
                                     timeout=sub.timeout_s)
    except httpx.TimeoutException:
        return Sent(item, f"no answer within {sub.timeout_s:g} s")
    except httpx.HTTPError as error:
        return Sent(item, f"{type(error).__name__}: {error}"[:500])
    if 200 <= response.status_code < 300:
        return Sent(item, None)
    if 300 <= response.status_code < 400:
        # A redirect is not followed: the signed request was for this URL.
        where = response.headers.get("location", "?")
        return Sent(item, f"HTTP {response.status_code} redirect to {where} (not followed)"[:500])
    return Sent(item, f"HTTP {response.status_code}")


class WebhookDispatcher:
    """Sends due deliveries; `run_once` for tests and drains, `run` in the daemon."""

    def __init__(self, db: Database, subscriptions: Sequence[SubscriptionSettings],
                 clock: Clock, wall: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._subscriptions = list(subscriptions)
        self._clock = clock
        # The signature's timestamp is checked against the receiver's clock: the real time.
        self._wall = wall or (lambda: datetime.now(UTC))
        self._client: httpx.AsyncClient | None = None
        self._busy = asyncio.Lock()

    async def start(self) -> None:
        await self._db.run(sync_subscriptions, self._db.engine, self._subscriptions)

    async def run_once(self) -> int:
        """Send one batch of due deliveries; how many were attempted."""
        if not self._subscriptions:
            return 0
        async with self._busy:
            claimed = await self._db.run(claim, self._db.engine, self._clock.now(),
                                         self._subscriptions)
            if not claimed:
                return 0
            if self._client is None:
                # Imported at the first delivery: httpx loads its command line's console
                # libraries (rich, pygments) when they are installed, which a daemon without
                # subscriptions should not carry.
                import httpx

                self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
            by_name = {s.name: s for s in self._subscriptions}
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(item: Claimed) -> Sent:
                async with gate:
                    assert self._client is not None
                    return await send(self._client, by_name[item.subscription], item,
                                      self._wall())

            results = await asyncio.gather(*(one(item) for item in claimed))
            await self._db.run(record, self._db.engine, results, self._clock.now(),
                               self._subscriptions)
            return len(claimed)

    async def run(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except Exception as error:  # the database may be down; keep trying
                log.error("webhook.error", error=str(error))
                sent = 0
            if not sent:
                await asyncio.sleep(POLL_INTERVAL_S)

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()


def redeliver(engine: Engine, now: datetime, event_id: int | None = None,
              dead: bool = False) -> int:
    """Queue EVENT_ID's deliveries (any status), or every dead one, to be sent again now;
    how many."""
    condition = _TABLE.c.status == DEAD if dead else _TABLE.c.event_id == event_id
    with transaction(engine) as session:
        result = session.connection().execute(
            update(_TABLE).where(condition).where(_TABLE.c.status != SENDING)
            .values(status=PENDING, attempts=0, next_attempt_at=now, last_error=None,
                    lease_until=None, delivered_at=None))
        return int(result.rowcount or 0)


def list_deliveries(engine: Engine, status: str | None = None,
                    limit: int = 1000) -> list[dict[str, Any]]:
    """Deliveries, newest first (dead letters with `status="dead"`)."""
    with read_transaction(engine) as session:
        query = select(Delivery).order_by(col(Delivery.id).desc()).limit(limit)
        if status:
            query = query.where(Delivery.status == status)
        return [{"id": d.id, "subscription": d.subscription, "event_id": d.event_id,
                 "ticket_number": d.ticket_number, "status": d.status,
                 "attempts": d.attempts, "next_attempt_at": iso_utc(d.next_attempt_at),
                 "delivered_at": iso_utc(d.delivered_at), "last_error": d.last_error}
                for d in session.exec(query)]
