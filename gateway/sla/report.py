"""The SLA report: per customer, tier, priority and request type, and the daily share within SLA.

`build_report` is what `intake-gateway report sla` and `GET /api/v1/reports/sla` call; the
database does the counting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from gateway.clock import iso_utc
from gateway.sla.policy import Policy
from gateway.store.db import read_transaction
from gateway.store.models import (
    OPEN_STATUSES,
    REACTION_DECIDED,
    REACTION_LATE,
    REACTION_MET,
    RESOLUTION_LATE,
    RESOLUTION_MET,
)

DEFAULT_TARGET_PCT = 90.0


@dataclass(frozen=True)
class ReportQuery:
    """Tickets received from START to END: whole days in the policy's report zone (the zone
    their report_day was counted in), both included."""

    start: date
    end: date
    customer: str | None = None


@dataclass
class ReportRow:
    customer: str | None
    tier: str | None
    priority: str
    request_type: str
    target_pct: float
    requests: int = 0
    reaction_met: int = 0
    reaction_missed: int = 0
    resolution_met: int = 0
    resolution_missed: int = 0
    open_breached: int = 0

    @staticmethod
    def pct(met: int, missed: int) -> float | None:
        """Share met among the decided ones (met or missed), in percent; None if none is."""
        return round(100.0 * met / (met + missed), 1) if met + missed else None

    @property
    def reaction_met_pct(self) -> float | None:
        return self.pct(self.reaction_met, self.reaction_missed)

    @property
    def resolution_met_pct(self) -> float | None:
        return self.pct(self.resolution_met, self.resolution_missed)

    @property
    def meets_target(self) -> bool | None:
        """Both shares at or above the target; None while nothing is decided."""
        shares = [s for s in (self.reaction_met_pct, self.resolution_met_pct) if s is not None]
        return all(s >= self.target_pct for s in shares) if shares else None

    def add(self, other: ReportRow) -> None:
        for name in ("requests", "reaction_met", "reaction_missed", "resolution_met",
                     "resolution_missed", "open_breached"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_json(self) -> dict[str, Any]:
        return {"customer": self.customer, "tier": self.tier, "priority": self.priority,
                "request_type": self.request_type, "requests": self.requests,
                "reaction_met": self.reaction_met, "reaction_missed": self.reaction_missed,
                "reaction_met_pct": self.reaction_met_pct,
                "resolution_met": self.resolution_met,
                "resolution_missed": self.resolution_missed,
                "resolution_met_pct": self.resolution_met_pct,
                "open_breached": self.open_breached, "target_pct": self.target_pct,
                "meets_target": self.meets_target}


@dataclass
class DayShare:
    day: date
    within: int = 0
    breached: int = 0

    @property
    def share_pct(self) -> float | None:
        return ReportRow.pct(self.within, self.breached)


@dataclass
class SlaReport:
    query: ReportQuery
    generated_at: datetime
    rows: list[ReportRow]
    days: list[DayShare]
    total: ReportRow = field(default_factory=lambda: ReportRow(None, None, "", "",
                                                               DEFAULT_TARGET_PCT))

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.query.start.isoformat(), "to": self.query.end.isoformat(),
            "customer": self.query.customer,
            "generated_at": iso_utc(self.generated_at),
            "rows": [r.as_json() for r in self.rows],
            "total": self.total.as_json(),
            "daily": [{"day": d.day.isoformat(), "within": d.within, "breached": d.breached,
                       "share_pct": d.share_pct} for d in self.days],
        }


# Bits of Ticket.sla_outcome summed per group: sum(x & bit) / bit is the count with the bit.
_SUMS = ", ".join(f"sum(sla_outcome & {bit})" for bit in (
    REACTION_MET, REACTION_LATE, RESOLUTION_MET, RESOLUTION_LATE))
_GROUP_KEYS = "customer_id, tier, priority, request_type"
_GROUPS = (f"SELECT {_GROUP_KEYS}, count(*), {_SUMS} FROM tickets {{hint}} "
           "WHERE report_day BETWEEN :first AND :last {customer} "
           f"GROUP BY {_GROUP_KEYS}")
_DAYS = ("SELECT report_day, "
         f"sum(CASE WHEN (sla_outcome & {REACTION_MET | RESOLUTION_MET}) = "
         f"{REACTION_MET | RESOLUTION_MET} THEN 1 ELSE 0 END), "
         f"sum(CASE WHEN (sla_outcome & {REACTION_LATE | RESOLUTION_LATE}) > 0 THEN 1 ELSE 0 END) "
         "FROM tickets {hint} WHERE report_day BETWEEN :first AND :last {customer} "
         "GROUP BY report_day")
# Open tickets past a deadline nothing has decided yet, found through the status index:
# reactions missed, resolutions missed (open and breached), and breaches the daily series
# has not counted yet (no late bit).
_REACTION_OVERDUE = f"(sla_outcome & {REACTION_DECIDED}) = 0 AND reaction_due < :now"
_OVERDUE = (f"SELECT {_GROUP_KEYS}, report_day, "
            f"sum(CASE WHEN {_REACTION_OVERDUE} THEN 1 ELSE 0 END), "
            "sum(CASE WHEN resolution_due < :now THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN (sla_outcome & {REACTION_LATE}) = 0 THEN 1 ELSE 0 END) "
            "FROM tickets WHERE status IN ({statuses}) "
            "AND report_day BETWEEN :first AND :last {customer} "
            f"AND (resolution_due < :now OR ({_REACTION_OVERDUE})) "
            f"GROUP BY {_GROUP_KEYS}, report_day")


def _day_number(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def _day_of(number: int) -> date:
    return date(number // 10000, number // 100 % 100, number % 100)


def build_report(engine: Engine, policy: Policy | None, query: ReportQuery,
                 now: datetime) -> SlaReport:
    """The SLA report for QUERY as of NOW (what is overdue by then counts as missed).

    Decided outcomes come from the tickets' sla_outcome bits (one covering index, no table
    rows on SQLite); deadlines passed while nothing was decided come from the open tickets.
    """
    customer = "AND customer_id = :customer" if query.customer else ""
    # SQLite's planner, without statistics, would walk the received_at index and read every
    # row; the covering index answers both grouped queries by itself.
    hint = "INDEXED BY ix_tickets_sla_report" if engine.dialect.name == "sqlite" else ""
    statuses = ", ".join(f"'{s}'" for s in OPEN_STATUSES)
    params: dict[str, Any] = {"first": _day_number(query.start), "last": _day_number(query.end),
                              "customer": query.customer, "now": now}
    with read_transaction(engine) as session:
        connection = session.connection()
        groups = connection.execute(text(_GROUPS.format(hint=hint, customer=customer)),
                                    params).all()
        buckets = connection.execute(text(_DAYS.format(hint=hint, customer=customer)),
                                     params).all()
        overdue = connection.execute(
            text(_OVERDUE.format(statuses=statuses, customer=customer))
            .bindparams(bindparam("now", type_=UTCDateTime())), params).all()
    rows: dict[tuple[str | None, ...], ReportRow] = {}
    for customer_id, tier, priority, kind, requests, *sums in groups:
        met, late, resolved, resolved_late = (int(v or 0) // bit for v, bit in zip(
            sums, (REACTION_MET, REACTION_LATE, RESOLUTION_MET, RESOLUTION_LATE), strict=True))
        rows[(customer_id, tier, priority, kind)] = ReportRow(
            customer_id, tier, priority, kind, _target(policy, tier), int(requests),
            met, late, resolved, resolved_late)
    days = {_day_of(int(d)): DayShare(_day_of(int(d)), int(w or 0), int(b or 0))
            for d, w, b in buckets}
    for customer_id, tier, priority, kind, day, reactions, resolutions, breaches in overdue:
        row = rows[(customer_id, tier, priority, kind)]
        row.reaction_missed += int(reactions or 0)
        row.resolution_missed += int(resolutions or 0)
        row.open_breached += int(resolutions or 0)
        days[_day_of(int(day))].breached += int(breaches or 0)
    ordered = sorted(rows.values(), key=lambda r: (r.customer or "~", r.tier or "~",
                                                   _order(r.priority), r.request_type))
    total = ReportRow(query.customer, None, "", "", DEFAULT_TARGET_PCT)
    for row in ordered:
        total.add(row)
    return SlaReport(query, now, ordered, [days[d] for d in sorted(days)], total)


def _target(policy: Policy | None, tier: str | None) -> float:
    if policy is not None and tier is not None and tier in policy.tiers:
        return policy.tiers[tier].target_pct
    return DEFAULT_TARGET_PCT


def _order(priority: str) -> int:
    order = ("critical", "high", "medium", "low")
    return order.index(priority) if priority in order else len(order)
