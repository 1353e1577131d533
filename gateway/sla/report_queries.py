"""What the SLA report asks the database: counts per group and per day from the tickets'
sla_outcome bits, overdue open tickets, and each ticket's times for percentiles and breaches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select, text
from sqlmodel.sql.sqltypes import UTCDateTime

from gateway.clock import iso_utc
from gateway.sla.report_counts import Tally
from gateway.store.db import read_transaction
from gateway.store.models import (
    NO_ACKNOWLEDGEMENT,
    OPEN_STATUSES,
    REACTION_LATE,
    REACTION_MET,
    RESOLUTION_LATE,
    RESOLUTION_MET,
    WAITING_CUSTOMER,
    Ticket,
)

# Conditions on one ticket's sla_outcome bits.
_WITHHELD_MASK = NO_ACKNOWLEDGEMENT | REACTION_MET | REACTION_LATE
# The acknowledgement was withheld (per-sender limit, rules, no address) and no reaction
# was recorded otherwise: the customer had none, a missed reaction.
WITHHELD = f"(sla_outcome & {_WITHHELD_MASK}) = {NO_ACKNOWLEDGEMENT}"
WITHIN = f"(sla_outcome & {REACTION_MET | RESOLUTION_MET}) = {REACTION_MET | RESOLUTION_MET}"
BREACHED = f"((sla_outcome & {REACTION_LATE | RESOLUTION_LATE}) > 0 OR {WITHHELD})"
_CONDITIONS = (f"(sla_outcome & {REACTION_MET}) > 0", f"(sla_outcome & {REACTION_LATE}) > 0",
               WITHHELD, f"(sla_outcome & {RESOLUTION_MET}) > 0",
               f"(sla_outcome & {RESOLUTION_LATE}) > 0", WITHIN, BREACHED)
# A comparison cast to an integer is 0 or 1 on both databases, and cheaper than CASE.
_SUMS = ", ".join(f"sum(CAST({c} AS INTEGER))" for c in _CONDITIONS)
_GROUP_KEYS = "customer_id, tier, priority, request_type"
# SQLite's planner, without statistics, would walk the received_at index and read every
# row; the covering index answers the grouped queries by itself.
_TICKETS = "tickets {hint}"
_PERIOD = "report_day BETWEEN :first AND :last {customer}"
_GROUPS = (f"SELECT {_GROUP_KEYS}, count(*), {_SUMS} FROM {_TICKETS} "
           f"WHERE {_PERIOD} GROUP BY {_GROUP_KEYS}")
_DAYS = (f"SELECT report_day, sum(CASE WHEN {WITHIN} THEN 1 ELSE 0 END), "
         f"sum(CASE WHEN {BREACHED} THEN 1 ELSE 0 END) FROM {_TICKETS} "
         f"WHERE {_PERIOD} GROUP BY report_day")
# Open tickets past a deadline nothing has decided yet. A ticket waiting for the customer
# has its resolution clock stopped: overdue only if it was before it stopped.
_OPEN = ", ".join(f"'{s}'" for s in (*OPEN_STATUSES, WAITING_CUSTOMER))
_REACTION_OVERDUE = (f"(sla_outcome & {REACTION_MET | REACTION_LATE | NO_ACKNOWLEDGEMENT}) = 0 "
                     "AND reaction_due < :now")
_RESOLUTION_OVERDUE = "resolution_due < coalesce(paused_since, :now)"
_OVERDUE = (f"SELECT {_GROUP_KEYS}, report_day, "
            f"sum(CASE WHEN {_REACTION_OVERDUE} THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN {_RESOLUTION_OVERDUE} THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN {BREACHED} THEN 0 ELSE 1 END) "
            f"FROM tickets WHERE status IN ({_OPEN}) AND {_PERIOD} "
            f"AND ({_RESOLUTION_OVERDUE} OR ({_REACTION_OVERDUE})) "
            f"GROUP BY {_GROUP_KEYS}, report_day")


def day_number(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def day_of(number: int) -> date:
    return date(number // 10000, number // 100 % 100, number % 100)


def _run(engine: Engine, sql: str, first: date, last: date, customer: str | None,
         now: datetime) -> Sequence[Any]:
    hint = "INDEXED BY ix_tickets_sla_report" if engine.dialect.name == "sqlite" else ""
    statement = text(sql.format(customer="AND customer_id = :customer" if customer else "",
                                hint=hint))
    if ":now" in sql:
        statement = statement.bindparams(bindparam("now", type_=UTCDateTime()))
    params = {"first": day_number(first), "last": day_number(last), "customer": customer,
              "now": now}
    with read_transaction(engine) as session:
        return session.connection().execute(statement, params).all()


def overdue_counts(engine: Engine, first: date, last: date, customer: str | None,
                   now: datetime) -> Sequence[Any]:
    """Open tickets past a deadline by NOW, counted per group and day of receipt."""
    return _run(engine, _OVERDUE, first, last, customer, now)


def group_counts(engine: Engine, first: date, last: date, customer: str | None,
                 now: datetime, overdue: Sequence[Any]) -> dict[tuple[Any, ...], Tally]:
    """Per (customer, tier, priority, type): the counts of tickets received FIRST..LAST, with
    deadlines passed by NOW on open tickets (OVERDUE) counted as missed."""
    found: dict[tuple[Any, ...], Tally] = {}
    for customer_id, tier, priority, kind, requests, *sums in _run(
            engine, _GROUPS, first, last, customer, now):
        met, late, withheld, resolved, resolved_late, within, breached = (
            int(v or 0) for v in sums)
        found[(customer_id, tier, priority, kind)] = Tally(
            int(requests), met, late + withheld, withheld, resolved, resolved_late, 0, within,
            breached)
    for customer_id, tier, priority, kind, _, reactions, resolutions, breaches in overdue:
        tally = found[(customer_id, tier, priority, kind)]
        tally.reaction_missed += int(reactions or 0)
        tally.resolution_missed += int(resolutions or 0)
        tally.open_breached += int(resolutions or 0)
        tally.breached += int(breaches or 0)
    return found


def daily_counts(engine: Engine, first: date, last: date, customer: str | None,
                 now: datetime, overdue: Sequence[Any]) -> dict[date, tuple[int, int]]:
    """Per day of receipt that has tickets: (within SLA, breached)."""
    days = {day_of(int(d)): (int(w or 0), int(b or 0))
            for d, w, b in _run(engine, _DAYS, first, last, customer, now)}
    for *_, day, _reactions, _resolutions, breaches in overdue:
        within, breached = days[day_of(int(day))]
        days[day_of(int(day))] = (within, breached + int(breaches or 0))
    return days


@dataclass(frozen=True)
class Breach:
    """One deadline a request missed: which, when it was due, and by how much (None: the
    acknowledgement was withheld, so no reaction came at all)."""

    number: str
    customer: str | None
    priority: str
    deadline: str
    due: datetime
    late_by_s: int | None
    open: bool

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "customer": self.customer, "priority": self.priority,
                "deadline": self.deadline, "due": iso_utc(self.due),
                "late_by_s": self.late_by_s, "open": self.open}


@dataclass
class Timings:
    reaction_s: list[int] = field(default_factory=list)
    resolution_s: list[int] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)
    paused_s: int = 0
    # More breached requests than BREACH_LIST_LIMIT: the list is cut.
    more_breaches: bool = False


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _seconds(engine: Engine, later: str, earlier: str) -> str:
    """SQL for the whole seconds from EARLIER to LATER (two timestamp columns)."""
    if engine.dialect.name == "sqlite":
        return f"CAST(round((julianday({later}) - julianday({earlier})) * 86400) AS INTEGER)"
    return f"CAST(round(extract(epoch from ({later} - {earlier}))) AS BIGINT)"


# At most this many breached requests are listed (their count is in the headline): a
# customer's month fits, a year of every customer would be a book.
BREACH_LIST_LIMIT = 1000
_CANDIDATES = (f"{BREACHED} OR paused_since IS NOT NULL OR (status IN ({_OPEN}) AND "
               f"({_RESOLUTION_OVERDUE} OR ({_REACTION_OVERDUE})))")


def ticket_timings(engine: Engine, first: date, last: date, customer: str | None,
                   now: datetime) -> Timings:
    """Reaction times (registration to acknowledgement), resolution times (registration to
    resolution, less the time waiting for the customer), and the missed deadlines.

    The times are computed by the database and only integers come back; only tickets that
    missed a deadline, or wait now, are read whole.
    """
    timings = Timings()
    ended = "coalesce(resolved_at, closed_at)"
    times = (f"SELECT CASE WHEN acknowledged_at IS NOT NULL THEN "
             f"{_seconds(engine, 'acknowledged_at', 'registered_at')} END, "
             f"CASE WHEN status NOT IN ({_OPEN}) AND {ended} IS NOT NULL THEN "
             f"{_seconds(engine, ended, 'registered_at')} - paused_s END, paused_s + "
             f"CASE WHEN paused_since IS NOT NULL THEN {_seconds(engine, ':now', 'paused_since')}"
             f" ELSE 0 END FROM tickets WHERE {_PERIOD}")
    found = _run(engine, times, first, last, customer, now)
    timings.reaction_s = [max(0, int(r)) for r, _, _ in found if r is not None]
    timings.resolution_s = [max(0, int(r)) for _, r, _ in found if r is not None]
    timings.paused_s = sum(int(p or 0) for _, _, p in found)
    columns = Ticket.__table__.c  # type: ignore[attr-defined]
    candidates = select(*(columns[name] for name in (
        "number", "customer_id", "priority", "status", "acknowledged_at", "resolved_at",
        "closed_at", "reaction_due", "resolution_due", "paused_since", "sla_outcome"))).where(
        columns.report_day.between(day_number(first), day_number(last))).where(
        text(_CANDIDATES).bindparams(bindparam("now", now, type_=UTCDateTime()))).order_by(
        columns.number).limit(BREACH_LIST_LIMIT * 2)
    if customer:
        candidates = candidates.where(columns.customer_id == customer)
    with read_transaction(engine) as session:
        found = session.connection().execute(candidates).all()
    for (number, who, priority, status, acknowledged, resolved, closed, reaction_due,
         resolution_due, paused_since, bits) in found:
        acknowledged, resolved = _utc(acknowledged), _utc(resolved) or _utc(closed)
        reaction_due, resolution_due = _utc(reaction_due), _utc(resolution_due)
        paused_since = _utc(paused_since)
        is_open = status in OPEN_STATUSES or status == WAITING_CUSTOMER
        if len({b.number for b in timings.breaches}) >= BREACH_LIST_LIMIT:
            timings.more_breaches = True
            continue
        if reaction_due is not None:
            missed, late = _reaction_late_by(bits, acknowledged, resolved, reaction_due,
                                             is_open, now)
            if missed:
                timings.breaches.append(Breach(number, who, priority, "reaction",
                                               reaction_due, late, is_open))
        if resolution_due is not None:
            end = resolved if not is_open else (paused_since or now)
            if end is not None and end > resolution_due:
                timings.breaches.append(Breach(
                    number, who, priority, "resolution", resolution_due,
                    int((end - resolution_due).total_seconds()), is_open))
    return timings


def _reaction_late_by(bits: int, acknowledged: datetime | None, resolved: datetime | None,
                      due: datetime, is_open: bool, now: datetime) -> tuple[bool, int | None]:
    """Whether the reaction was missed, and by how many seconds (None: it was withheld)."""
    if bits & _WITHHELD_MASK == NO_ACKNOWLEDGEMENT:
        return True, None
    if bits & REACTION_MET:
        return False, None
    reacted = acknowledged or resolved
    if bits & REACTION_LATE:
        return True, int(((reacted or now) - due).total_seconds())
    if is_open and due < now:
        return True, int((now - due).total_seconds())
    return False, None


def customer_names(engine: Engine) -> dict[str, str]:
    """Customer id -> name, from the mirror of the customers file."""
    with read_transaction(engine) as session:
        return {str(i): str(n) for i, n in session.connection().execute(
            text("SELECT id, name FROM customers")).all()}
