"""The SLA report: the share of requests within SLA per customer and overall against the
target, reaction and resolution per tier and priority, percentiles, breaches, every day.

`build_report` is what `intake-gateway report sla` and `GET /api/v1/reports/sla` call; the
database counts (gateway/sla/report_queries.py), this module adds up and compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from gateway.clock import iso_utc
from gateway.sla.policy import Policy
from gateway.sla.report_counts import Tally, reaches, share_text
from gateway.sla.report_queries import (
    Breach,
    Timings,
    customer_names,
    daily_counts,
    group_counts,
    overdue_counts,
    ticket_timings,
)

DEFAULT_TARGET_PCT = 90.0
DEFAULT_ZONE = "Europe/Moscow"
# How many periods before the reported one the trend shows.
TREND_PERIODS = 3


@dataclass(frozen=True)
class ReportQuery:
    """Tickets received from START to END: whole days in the policy's report zone (the zone
    their report_day was counted in), both included."""

    start: date
    end: date
    customer: str | None = None

    def previous(self) -> ReportQuery:
        """The period just before: the previous calendar month when this one is a whole
        month, else as many days just before START."""
        if self.start.day == 1 and (self.end + timedelta(days=1)).day == 1:
            end = self.start - timedelta(days=1)
            return ReportQuery(end.replace(day=1), end, self.customer)
        length = self.end - self.start
        end = self.start - timedelta(days=1)
        return ReportQuery(end - length, end, self.customer)


def period_of(start: str | None, end: str | None, month: str | None,
              today: date) -> tuple[date, date]:
    """The days a report covers: FROM..TO, or the MONTH (YYYY-MM), or without either the
    month before TODAY's. ValueError says which argument is wrong."""
    if month is not None:
        if start or end:
            raise ValueError("--month excludes --from and --to")
        try:
            first = date.fromisoformat(f"{month}-01")
        except ValueError:
            raise ValueError(f"--month: {month!r} is not YYYY-MM") from None
    elif start is None and end is None:
        first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    else:
        if start is None or end is None:
            raise ValueError("--from and --to go together")
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError as error:
            raise ValueError(f"--from/--to: {error} (expected YYYY-MM-DD)") from None
        if last < first:
            raise ValueError("--to is before --from")
        return first, last
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following - timedelta(days=1)


@dataclass
class ReportRow(Tally):
    """One customer, tier, priority and request type (or a customer's or the overall sum)."""

    customer: str | None = None
    tier: str | None = None
    priority: str = ""
    request_type: str = ""
    target_pct: float = DEFAULT_TARGET_PCT
    customer_name: str | None = None

    @property
    def reaction_met_pct(self) -> float | None:
        return self.pct(self.reaction_met, self.reaction_missed)

    @property
    def resolution_met_pct(self) -> float | None:
        return self.pct(self.resolution_met, self.resolution_missed)

    @property
    def meets_target(self) -> bool | None:
        """The share within SLA at or above the target, exactly; None while nothing is
        decided."""
        return reaches(self.within, self.decided, self.target_pct)

    def as_json(self) -> dict[str, Any]:
        return {"customer": self.customer, "customer_name": self.customer_name,
                "tier": self.tier, "priority": self.priority,
                "request_type": self.request_type, **self.counts(),
                "target_pct": self.target_pct, "meets_target": self.meets_target}


@dataclass
class DayShare:
    day: date
    within: int = 0
    breached: int = 0

    @property
    def share_pct(self) -> float | None:
        return Tally.pct(self.within, self.breached)


@dataclass
class Percentiles:
    """Nearest-rank p50 and p90 of reaction and resolution times in seconds (resolution less
    the time spent waiting for the customer); None without such requests."""

    reaction_p50_s: int | None = None
    reaction_p90_s: int | None = None
    resolution_p50_s: int | None = None
    resolution_p90_s: int | None = None

    @staticmethod
    def of(timings: Timings) -> Percentiles:
        def ranks(values: list[int]) -> tuple[int | None, int | None]:
            if not values:
                return None, None
            ordered = sorted(values)
            return tuple(ordered[max(0, -(-pct * len(ordered) // 100) - 1)]  # type: ignore[return-value]
                         for pct in (50, 90))

        return Percentiles(*ranks(timings.reaction_s), *ranks(timings.resolution_s))


@dataclass
class TrendPoint:
    start: date
    end: date
    within: int
    decided: int
    meets_target: bool | None

    def as_json(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(),
                "within": self.within, "decided": self.decided,
                "within_sla": share_text(self.within, self.decided),
                "meets_target": self.meets_target}


@dataclass
class SlaReport:
    query: ReportQuery
    generated_at: datetime
    rows: list[ReportRow]
    days: list[DayShare]
    total: ReportRow = field(default_factory=ReportRow)
    customers: list[ReportRow] = field(default_factory=list)
    percentiles: Percentiles = field(default_factory=Percentiles)
    breaches: list[Breach] = field(default_factory=list)
    paused_s: int = 0
    trend: list[TrendPoint] = field(default_factory=list)
    time_zone: str = DEFAULT_ZONE
    # More requests breached than the list shows (report_queries.BREACH_LIST_LIMIT).
    breaches_cut: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.query.start.isoformat(), "to": self.query.end.isoformat(),
            "customer": self.query.customer, "time_zone": self.time_zone,
            "generated_at": iso_utc(self.generated_at),
            "headline": {"total": self.total.as_json(),
                         "customers": [c.as_json() for c in self.customers]},
            "percentiles": vars(self.percentiles), "paused_s": self.paused_s,
            "breaches": [b.as_json() for b in self.breaches],
            "breaches_cut": self.breaches_cut,
            "trend": [t.as_json() for t in self.trend],
            "rows": [r.as_json() for r in self.rows],
            "total": self.total.as_json(),
            "daily": [{"day": d.day.isoformat(), "within": d.within, "breached": d.breached,
                       "share_pct": d.share_pct} for d in self.days],
        }


def build_report(engine: Engine, policy: Policy | None, query: ReportQuery,
                 now: datetime, trend_periods: int = TREND_PERIODS) -> SlaReport:
    """The SLA report for QUERY as of NOW (what is overdue by then counts as missed)."""
    names = customer_names(engine)
    overdue = overdue_counts(engine, query.start, query.end, query.customer, now)
    rows = _rows(engine, policy, query, now, names, overdue)
    total = _sum(rows, ReportRow(customer=query.customer,
                                 customer_name=names.get(query.customer or ""),
                                 target_pct=_overall_target(policy, rows)))
    customers = [_sum([r for r in rows if r.customer == who],
                      ReportRow(customer=who, customer_name=names.get(who or ""),
                                target_pct=_target(policy, _tier_of(rows, who))))
                 for who in dict.fromkeys(r.customer for r in rows)]
    counted = daily_counts(engine, query.start, query.end, query.customer, now, overdue)
    days, day = [], query.start
    # Every day of the period, those without requests too: the chart's axis is time.
    while day <= query.end:
        within, breached = counted.get(day, (0, 0))
        days.append(DayShare(day, within, breached))
        day += timedelta(days=1)
    timings = ticket_timings(engine, query.start, query.end, query.customer, now)
    trend = []
    previous = query
    for _ in range(trend_periods):
        previous = previous.previous()
        past_overdue = overdue_counts(engine, previous.start, previous.end, query.customer, now)
        past = _sum(_rows(engine, policy, previous, now, names, past_overdue), ReportRow(
            target_pct=total.target_pct))
        trend.append(TrendPoint(previous.start, previous.end, past.within, past.decided,
                                reaches(past.within, past.decided, total.target_pct)))
    return SlaReport(query, now, rows, days, total, customers, Percentiles.of(timings),
                     timings.breaches, timings.paused_s, trend[::-1],
                     policy.report_zone if policy is not None else DEFAULT_ZONE,
                     timings.more_breaches)


def _rows(engine: Engine, policy: Policy | None, query: ReportQuery, now: datetime,
          names: dict[str, str], overdue: Sequence[Any]) -> list[ReportRow]:
    rows = []
    for (customer, tier, priority, kind), tally in group_counts(
            engine, query.start, query.end, query.customer, now, overdue).items():
        row = ReportRow(customer=customer, tier=tier, priority=priority, request_type=kind,
                        target_pct=_target(policy, tier), customer_name=names.get(customer or ""))
        row.add(tally)
        rows.append(row)
    return sorted(rows, key=lambda r: (r.customer or "~", r.tier or "~", _order(r.priority),
                                       r.request_type))


def _sum(rows: list[ReportRow], into: ReportRow) -> ReportRow:
    for row in rows:
        into.add(row)
    return into


def _tier_of(rows: list[ReportRow], customer: str | None) -> str | None:
    return next((r.tier for r in rows if r.customer == customer), None)


def _target(policy: Policy | None, tier: str | None) -> float:
    if policy is not None and tier is not None and tier in policy.tiers:
        return policy.tiers[tier].target_pct
    return DEFAULT_TARGET_PCT


def _overall_target(policy: Policy | None, rows: list[ReportRow]) -> float:
    """The overall figure is held to the strictest target among the tiers it covers."""
    return max((r.target_pct for r in rows), default=_target(policy, None))


def _order(priority: str) -> int:
    order = ("critical", "high", "medium", "low")
    return order.index(priority) if priority in order else len(order)
