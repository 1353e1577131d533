"""SLA report over 1,000,000 tickets on SQLite: how long `build_report` takes (target <= 5 s).

    .venv/bin/python -m bench.sla_report [--tickets N] [--database PATH] [--keep]

Fills a fresh SQLite database (the real schema, by migration) with N tickets spread over a
year, 200 customers, every tier, priority and request type, and a realistic mix of met,
missed and open deadlines; then times the report for the whole year and for one customer.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from gateway.sla.policy import seed_policy
from gateway.sla.report import ReportQuery, build_report
from gateway.store.db import make_engine, migrate
from gateway.store.models import (
    REACTION_LATE,
    REACTION_MET,
    RESOLUTION_LATE,
    RESOLUTION_MET,
)
from gateway.tickets.registration import report_day

START = datetime(2026, 1, 1, tzinfo=UTC)
TIERS = ("8/5", "24/7", "premium")
PRIORITIES = ("critical", "high", "medium", "low")
TYPES = ("incident", "consultation", "administration", "feature_request")
HOURS = {"critical": 5, "high": 8, "medium": 16, "low": 40}


def stamp(instant: datetime) -> str:
    """The text SQLAlchemy stores for a UTC datetime on SQLite."""
    return instant.strftime("%Y-%m-%d %H:%M:%S.%f")


def rows(count: int, seed: int = 7):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    policy = seed_policy()
    customers = [(f"c{i:03d}", TIERS[i % 3]) for i in range(200)]
    year_s = 365 * 86400
    for number in range(1, count + 1):
        customer, tier = customers[rng.randrange(200)]
        priority = rng.choice(PRIORITIES)
        received = START + timedelta(seconds=rng.randrange(year_s))
        reaction_due = received + timedelta(hours=1)
        resolution_due = received + timedelta(hours=HOURS[priority])
        roll = rng.random()
        acknowledged = received + timedelta(seconds=rng.randrange(60 if roll < 0.95 else 7200))
        resolved = (received + timedelta(hours=HOURS[priority] * rng.uniform(0.1, 1.2))
                    if roll < 0.9 else None)
        status = "resolved" if resolved else "registered"
        # The bits the outbox and the lifecycle events set (gateway/store/models.py).
        outcome = (REACTION_MET if acknowledged <= reaction_due else REACTION_LATE) | (
            0 if resolved is None else RESOLUTION_MET if resolved <= resolution_due
            else RESOLUTION_LATE)
        yield (f"SUP-{number:07d}", "email", status, customer, tier, rng.choice(TYPES),
               priority, "subject", stamp(received), stamp(received), stamp(reaction_due),
               stamp(resolution_due), stamp(acknowledged),
               stamp(resolved) if resolved else None, 0, report_day(received, policy),
               outcome, "[]", "[]")


def fill(path: Path, count: int) -> None:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA synchronous=OFF")
    batch: list[tuple[object, ...]] = []
    sql = ("INSERT INTO tickets (number, channel, status, customer_id, tier, request_type, "
           "priority, subject, received_at, registered_at, reaction_due, resolution_due, "
           "acknowledged_at, resolved_at, escalation_level, report_day, sla_outcome, reasons, "
           "notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    for row in rows(count):
        batch.append(row)
        if len(batch) == 50_000:
            connection.executemany(sql, batch)
            batch.clear()
    connection.executemany(sql, batch)
    connection.commit()
    connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--database", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="sla-bench-")
    path = args.database or Path(directory) / "tickets.db"
    if not path.exists():
        started = time.perf_counter()
        fill(path, args.tickets)
        print(f"filled {args.tickets:,} tickets in {time.perf_counter() - started:.1f} s")
    engine = make_engine(f"sqlite:///{path}")
    now = datetime(2027, 1, 1, tzinfo=UTC)
    policy = seed_policy()
    year = ReportQuery(date(2026, 1, 1), date(2026, 12, 31))
    results = []
    for label, query in (("whole year, all customers", year),
                         ("whole year, one customer", ReportQuery(year.start, year.end, "c042")),
                         ("one month, all customers",
                          ReportQuery(date(2026, 6, 1), date(2026, 6, 30)))):
        timings = []
        for _ in range(3):
            started, cpu = time.perf_counter(), time.process_time()
            report = build_report(engine, policy, query, now)
            timings.append((time.perf_counter() - started, time.process_time() - cpu))
        wall, cpu_s = min(timings)
        results.append((label, wall, cpu_s, report.total.requests, len(report.rows)))
    engine.dispose()
    for label, seconds, cpu_s, requests, groups in results:
        print(f"{label:<28} {seconds:6.2f} s (CPU {cpu_s:.2f} s)  "
              f"({requests:,} tickets, {groups} rows)")
    if not args.keep and args.database is None:
        path.unlink()
    worst = max(r[1] for r in results)
    print(f"slowest: {worst:.2f} s (target <= 5 s): {'OK' if worst <= 5 else 'TOO SLOW'}")
    return 0 if worst <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
