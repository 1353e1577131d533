"""The SLA report: per customer, tier, priority and request type, and the daily share within SLA.

`build_report` is what `intake-gateway report sla` and `GET /api/v1/reports/sla` call; the
counting is done by the database (two grouped scans of the period's tickets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Engine, and_, case, func, literal, or_, select

from gateway.clock import iso_utc
from gateway.db import read_transaction
from gateway.models import Ticket
from gateway.policy import Policy
from gateway.registration import OPEN_STATUSES

_T = Ticket.__table__  # type: ignore[attr-defined]
DEFAULT_TARGET_PCT = 90.0


@dataclass(frozen=True)
class ReportQuery:
    """Tickets received from START to END (whole days in ZONE, both included)."""

    start: date
    end: date
    customer: str | None = None
    zone: str = "Europe/Moscow"

    def bounds(self) -> tuple[datetime, datetime]:
        zone = ZoneInfo(self.zone)
        return (datetime.combine(self.start, time(0), zone).astimezone(UTC),
                datetime.combine(self.end + timedelta(days=1), time(0), zone).astimezone(UTC))


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
            "customer": self.query.customer, "zone": self.query.zone,
            "generated_at": iso_utc(self.generated_at),
            "rows": [r.as_json() for r in self.rows],
            "total": self.total.as_json(),
            "daily": [{"day": d.day.isoformat(), "within": d.within, "breached": d.breached,
                       "share_pct": d.share_pct} for d in self.days],
        }


def _flags(now: datetime) -> dict[str, ColumnElement[Any]]:
    """Per ticket, 1 or 0: reaction/resolution met or missed (as of NOW), open and breached.

    A late acknowledgement is a reaction miss, and so is none at all once reaction_due has
    passed; a ticket closed without being resolved counts its closing as the resolution.
    """
    acknowledged, reaction_due = _T.c.acknowledged_at, _T.c.reaction_due
    finished = func.coalesce(_T.c.resolved_at, _T.c.closed_at)
    resolution_due = _T.c.resolution_due
    reaction_met = and_(acknowledged.is_not(None), acknowledged <= reaction_due)
    reaction_missed = or_(and_(acknowledged.is_not(None), acknowledged > reaction_due),
                          and_(acknowledged.is_(None), reaction_due < now))
    resolution_met = and_(finished.is_not(None), finished <= resolution_due)
    resolution_missed = or_(and_(finished.is_not(None), finished > resolution_due),
                            and_(finished.is_(None), resolution_due < now))
    open_breached = and_(_T.c.status.in_(OPEN_STATUSES), resolution_due < now)
    within = and_(reaction_met, resolution_met)
    breached = or_(reaction_missed, resolution_missed)
    return {name: case((condition, 1), else_=0) for name, condition in (
        ("reaction_met", reaction_met), ("reaction_missed", reaction_missed),
        ("resolution_met", resolution_met), ("resolution_missed", resolution_missed),
        ("open_breached", open_breached), ("within", within), ("breached", breached))}


def build_report(engine: Engine, policy: Policy | None, query: ReportQuery,
                 now: datetime) -> SlaReport:
    """The SLA report for QUERY as of NOW (what is overdue by then counts as missed)."""
    start, end = query.bounds()
    flags = _flags(now)
    where = [_T.c.received_at >= start, _T.c.received_at < end]
    if query.customer:
        where.append(_T.c.customer_id == query.customer)
    keys = (_T.c.customer_id, _T.c.tier, _T.c.priority, _T.c.request_type)
    counted = ("reaction_met", "reaction_missed", "resolution_met", "resolution_missed",
               "open_breached")
    by_group = (select(*keys, func.count(), *(func.sum(flags[n]) for n in counted))
                .where(*where).group_by(*keys))
    zone = ZoneInfo(query.zone)
    postgres = engine.dialect.name == "postgresql"
    # SQLite has no time zones: count per UTC hour and place each hour on its local day.
    bucket = (func.to_char(func.timezone(literal(query.zone), _T.c.received_at), "YYYY-MM-DD")
              if postgres else func.strftime("%Y-%m-%d %H", _T.c.received_at))
    by_day = (select(bucket, func.sum(flags["within"]), func.sum(flags["breached"]))
              .where(*where).group_by(bucket))
    with read_transaction(engine) as session:
        connection = session.connection()
        groups = connection.execute(by_group).all()
        buckets = connection.execute(by_day).all()
    rows: list[ReportRow] = []
    total = ReportRow(query.customer, None, "", "", DEFAULT_TARGET_PCT)
    for customer, tier, priority, kind, requests, *counts in groups:
        target = (policy.tiers[tier].target_pct if policy is not None and tier in policy.tiers
                  else DEFAULT_TARGET_PCT)
        row = ReportRow(customer, tier, priority, kind, target, int(requests),
                        *(int(c or 0) for c in counts))
        rows.append(row)
        total.add(row)
    rows.sort(key=lambda r: (r.customer or "~", r.tier or "~", _order(r.priority),
                             r.request_type))
    days: dict[date, DayShare] = {}
    for label, within, breached in buckets:
        if postgres:
            day = date.fromisoformat(label)
        else:
            hour = datetime.strptime(label, "%Y-%m-%d %H").replace(tzinfo=UTC)
            day = hour.astimezone(zone).date()
        share = days.setdefault(day, DayShare(day))
        share.within += int(within or 0)
        share.breached += int(breached or 0)
    return SlaReport(query, now, rows, [days[d] for d in sorted(days)], total)


def _order(priority: str) -> int:
    order = ("critical", "high", "medium", "low")
    return order.index(priority) if priority in order else len(order)
