"""/metrics: Prometheus text built at scrape time from the database and the live daemon."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from gateway.intake.refusals import REFUSALS
from gateway.store.db import read_transaction
from gateway.store.models import FAILED, PENDING, SENDING, Input, OutboxItem, Ticket
from gateway.store.outcomes import outcome_kind_sql
from gateway.trackers.handover import backlog

# The classic text format every Prometheus and agent reads (what generate_latest writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Histograms cover the newest this many items: enough for a rate, bounded cost per scrape.
WINDOW = 5000
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)
RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0, 5.0)
_INPUTS = Input.__table__  # type: ignore[attr-defined]
_OUTBOX = OutboxItem.__table__  # type: ignore[attr-defined]
_TICKETS = Ticket.__table__  # type: ignore[attr-defined]
# A ticket is at risk when its reaction deadline is this close and nobody has answered.
AT_RISK = timedelta(minutes=30)


class GatewayCollector(Collector):
    """Counts come from the database, so they survive restarts and include every instance
    and worker process; the mailbox state comes from this process."""

    def __init__(self, engine: Engine, now: Callable[[], datetime],
                 mailboxes: Callable[[], Sequence[Any]],
                 http_outcomes: Callable[[], dict[str, int]],
                 logins: Callable[[], dict[str, str | None]] = dict,
                 trackers: Callable[[], Sequence[Any]] = tuple) -> None:
        self.engine = engine
        self.logins = logins
        self.trackers = trackers
        self.now = now
        self.mailboxes = mailboxes
        self.http_outcomes = http_outcomes

    def collect(self) -> Iterator[Metric]:
        inputs_t, outbox_t, tickets_t = _INPUTS.c, _OUTBOX.c, _TICKETS.c
        with read_transaction(self.engine) as session:
            conn = session.connection()
            # Label values come from a fixed set only: channels are a handful of names, and
            # the outcome's kind stands for its text (which names a ticket).
            kind = outcome_kind_sql(inputs_t.status, inputs_t.outcome).label("kind")
            inputs = conn.execute(select(inputs_t.channel, kind, func.count())
                                  .group_by(inputs_t.channel, kind)).all()
            processing = conn.execute(select(inputs_t.received_at, inputs_t.processed_at)
                                      .where(inputs_t.processed_at.is_not(None))
                                      .order_by(inputs_t.id.desc()).limit(WINDOW)).all()
            outbox = conn.execute(select(outbox_t.status, func.count(),
                                         func.coalesce(func.sum(outbox_t.attempts), 0))
                                  .group_by(outbox_t.status)).all()
            retrying = conn.execute(select(func.count()).where(
                outbox_t.status == PENDING, outbox_t.attempts > 0)).scalar_one()
            acks = conn.execute(select(tickets_t.received_at, tickets_t.acknowledged_at,
                                       tickets_t.reaction_due)
                                .where(tickets_t.acknowledged_at.is_not(None))
                                .order_by(tickets_t.id.desc()).limit(WINDOW)).all()
            at_risk = conn.execute(select(func.count()).where(
                tickets_t.acknowledged_at.is_(None), tickets_t.reaction_due.is_not(None),
                tickets_t.reaction_due < self.now() + AT_RISK)).scalar_one()

        counts = GaugeMetricFamily(
            "intake_inputs", "Inputs stored, by channel and kind of outcome (received = not "
            "yet processed, failed = quarantined, held = waiting for a human)",
            labels=["channel", "outcome"])
        quarantine = 0
        for channel, outcome, n in inputs:
            counts.add_metric([channel, outcome], n)
            quarantine += n if outcome == FAILED else 0
        yield counts
        yield GaugeMetricFamily("intake_quarantine_size", "Inputs parked as failed",
                                value=quarantine)
        yield _histogram("intake_processing_latency_seconds",
                         f"Received to processed, newest {WINDOW} inputs",
                         [(done - got).total_seconds() for got, done in processing],
                         LATENCY_BUCKETS)

        by_status = {status: (n, attempts) for status, n, attempts in outbox}
        yield GaugeMetricFamily(
            "intake_outbox_backlog", "Outbox messages waiting to be sent (pending or leased)",
            value=sum(by_status.get(s, (0, 0))[0] for s in (PENDING, SENDING)))
        failures = GaugeMetricFamily("intake_outbox_delivery_failures",
                                     "Outbox messages failed for good (5xx or out of "
                                     "attempts) or waiting for a retry", labels=["kind"])
        failures.add_metric(["permanent"], by_status.get(FAILED, (0, 0))[0])
        failures.add_metric(["retrying"], retrying)
        yield failures
        attempts = CounterMetricFamily("intake_outbox_attempts", "Delivery attempts made",
                                       labels=["status"])
        for status, (_, tries) in sorted(by_status.items()):
            attempts.add_metric([status], tries)
        yield attempts

        yield _histogram("intake_acknowledgement_latency_seconds",
                         f"Received to acknowledged, newest {WINDOW} tickets",
                         [(ack - got).total_seconds() for got, ack, _ in acks], LATENCY_BUCKETS)
        yield _histogram("intake_acknowledgement_reaction_ratio",
                         "Acknowledgement latency as a share of the reaction time (1 = on the "
                         "deadline)", [(ack - got) / (due - got) for got, ack, due in acks
                                       if due is not None and due > got], RATIO_BUCKETS)
        yield GaugeMetricFamily(
            "intake_tickets_at_risk", f"Unacknowledged tickets whose reaction deadline is past "
            f"or less than {int(AT_RISK.total_seconds() // 60)} minutes away", value=at_risk)

        connected = GaugeMetricFamily("intake_mailbox_connected",
                                      "1 while the IMAP mailbox is connected", labels=["mailbox"])
        failing = GaugeMetricFamily("intake_mailbox_consecutive_failures",
                                    "Failed rounds since the last good one", labels=["mailbox"])
        read_here = GaugeMetricFamily(
            "intake_mailbox_read_here",
            "1 while this instance reads the mailbox (instances sharing a database take turns)",
            labels=["mailbox"])
        for mailbox in self.mailboxes():
            connected.add_metric([mailbox.name], 1 if mailbox.connected else 0)
            failing.add_metric([mailbox.name], mailbox.failures)
            read_here.add_metric([mailbox.name], 1 if mailbox.owned else 0)
        yield connected
        yield failing
        yield read_here
        logins = GaugeMetricFamily("intake_oauth_login_failing",
                                   "1 while an OAuth 2.0 login (mailbox:NAME, outgoing) has no "
                                   "usable token", labels=["login"])
        for name, why in sorted(self.logins().items()):
            logins.add_metric([name], 1 if why else 0)
        yield logins

        yield from self._trackers()

        http = CounterMetricFamily("intake_http_requests", "HTTP intake requests by outcome",
                                   labels=["outcome"])
        for outcome, n in sorted(self.http_outcomes().items()):
            http.add_metric([outcome], n)
        yield http

        # In this process since it started (refusals.py): each limit that bit, by name.
        refused = CounterMetricFamily("intake_limit_refusals",
                                      "Inputs or connections refused or delayed by a limit",
                                      labels=["limit"])
        for limit, n in sorted(REFUSALS.items()):
            refused.add_metric([limit], n)
        yield refused


    def _trackers(self) -> Iterator[Metric]:
        connectors = self.trackers()
        if not connectors:
            return
        owed = backlog(self.engine)
        connected = GaugeMetricFamily("intake_tracker_connected",
                                      "1 while the last exchange with the tracker went through",
                                      labels=["tracker"])
        failing = GaugeMetricFamily("intake_tracker_consecutive_failures",
                                    "Failed exchanges since the last good one",
                                    labels=["tracker"])
        waiting = GaugeMetricFamily("intake_tracker_backlog",
                                    "Ticket events not yet handed over to the tracker "
                                    "(retrying: failed at least once)", labels=["tracker", "kind"])
        for tracker in connectors:
            connected.add_metric([tracker.name], 1 if tracker.connected else 0)
            failing.add_metric([tracker.name], tracker.failures)
            total, retrying = owed.get(tracker.name, (0, 0))
            waiting.add_metric([tracker.name, "all"], total)
            waiting.add_metric([tracker.name, "retrying"], retrying)
        yield connected
        yield failing
        yield waiting


def _histogram(name: str, documentation: str, values: Iterable[float],
               bounds: Sequence[float]) -> HistogramMetricFamily:
    values = sorted(values)
    buckets: list[tuple[str, float]] = []
    index = 0
    for bound in bounds:
        while index < len(values) and values[index] <= bound:
            index += 1
        buckets.append((str(float(bound)), index))
    buckets.append(("+Inf", len(values)))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=sum(values))


def render(collector: GatewayCollector) -> bytes:
    """One scrape (blocking: run it in a thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
