"""Waiting for the customer: the resolution clock stands still from the event (or a rule)
until the customer's reply, and the SLA report counts the time waited."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from gateway.sla.report import ReportQuery, build_report
from gateway.tickets.lifecycle import EventRefused
from rules.loader import parse_rules
from tests.conftest import make_mail
from tests.gateway.outbox.test_outbox import submit
from tests.gateway.sla.test_sla_clock import ticket
from tests.gateway.tickets.test_ticket_events import event, open_ticket


def test_wait_stops_the_resolution_clock_until_the_reply(make_gateway, tmp_path: Path) -> None:
    """Registered 11:00 Moscow time (medium, 16 working hours: due Thursday 18:00); waiting
    from 12:00 to 15:00 moves the deadline by 3 working hours, to Friday 12:00; the report
    counts the 3 hours waited and takes them off the resolution time."""
    running = open_ticket(make_gateway, tmp_path)
    assert ticket(running)["resolution_due"] == "2026-11-26T15:00:00Z"
    running.clock.advance(timedelta(hours=1))
    waiting = event(running, "SUP-000001", type="waiting_for_customer",
                    reason="asked for the logs", actor="engineer-1").ticket
    assert waiting["status"] == "waiting_customer"
    with pytest.raises(EventRefused, match="it is waiting_customer"):
        event(running, "SUP-000001", type="waiting_for_customer")
    running.clock.advance(timedelta(hours=3))
    submit(running, make_mail("Re: [SUP-000001] Metrics dashboard",
                              body="Here are the logs you asked for, see below."))
    running.settle()
    shown = ticket(running)
    assert shown["status"] == "registered"
    assert shown["resolution_due"] == "2026-11-27T09:00:00Z"
    history = [(h["event"], h.get("waited_s")) for h in shown["history"]]  # type: ignore[union-attr,index]
    assert ("waiting_for_customer", None) in history and ("waiting_ended", 10800) in history
    with pytest.raises(EventRefused, match="not waiting"):
        event(running, "SUP-000001", type="waiting_ended")
    running.clock.advance(timedelta(hours=1))
    event(running, "SUP-000001", type="resolved")
    report = build_report(running.gateway.db.engine, running.gateway.context.policy,
                          ReportQuery(date(2026, 11, 25), date(2026, 11, 25)),
                          running.clock.now())
    assert report.paused_s == 10800
    # Registered 08:00Z, resolved 13:00Z, 3 hours waited: 2 hours of work.
    assert report.percentiles.resolution_p50_s == 7200
    assert (report.total.within, report.total.decided) == (1, 1)


def test_resolving_while_waiting_counts_the_wait(make_gateway, tmp_path: Path) -> None:
    """Resolved while still waiting: the wait ends first, so the time waited is counted and
    an open wait is never overdue in the report."""
    running = open_ticket(make_gateway, tmp_path)
    event(running, "SUP-000001", type="waiting_for_customer")
    # Past the original deadline (Thursday 18:00 Moscow) while waiting: not a breach.
    running.clock.advance(timedelta(days=2))
    report = build_report(running.gateway.db.engine, running.gateway.context.policy,
                          ReportQuery(date(2026, 11, 25), date(2026, 11, 25)),
                          running.clock.now())
    assert (report.total.breached, report.breaches) == (0, [])
    assert report.paused_s == 2 * 86400
    resolved = event(running, "SUP-000001", type="resolved").ticket
    assert resolved["status"] == "resolved"
    assert [h["event"] for h in resolved["history"]] == [
        "waiting_for_customer", "waiting_ended", "resolved"]


def test_a_rule_can_register_a_ticket_as_waiting() -> None:
    """`wait_for_customer = true` is a rule action the loader takes and explains."""
    rules = parse_rules('[[rule]]\nname = "need-logs"\nwhen = { subject_contains = "logs" }\n'
                        'then = { wait_for_customer = true }\n', "rules.toml")
    [rule] = [r for r in rules.rules if r.name == "need-logs"]
    assert rule.then.wait_for_customer
    assert "wait for the customer" in rule.then.effects()
