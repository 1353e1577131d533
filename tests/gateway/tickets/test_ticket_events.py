"""Lifecycle events, acknowledgements on time, escalation notices, and the report's CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session

from gateway.outbox.table import claim_due, enqueue
from gateway.sla.policy import DEFAULT_POLICY
from gateway.sla.report import ReportQuery, build_report
from gateway.store.db import make_engine, migrate, transaction
from gateway.store.models import Ticket
from gateway.tickets.lifecycle import Applied, EventInvalid, EventRefused, TicketNotFound
from tests.conftest import START, RunningGateway, Sink, make_mail
from tests.gateway.outbox.test_outbox import submit
from tests.gateway.sla.test_sla_clock import body, outbox, start, ticket

POLICY = DEFAULT_POLICY.read_text(encoding="utf-8").replace(
    'duty_address = ""', 'duty_address = "duty@support.example"').replace(
    "contacts = {}", 'contacts = { petrov = "petrov@support.example" }')

# The default rules judge this medium (metrics collection impaired), the base of these tests.
MEDIUM_BODY = ("The metrics collection dashboard has stopped updating, the rest of the service "
               "works fine for everyone.")


def event(running: RunningGateway, number: str, **payload: Any) -> Applied:
    return running.call(lambda: running.gateway.ticket_event(number, payload))


def open_ticket(make_gateway: Callable[..., RunningGateway], tmp_path: Path,
                sender: str = "ivan@acme.example", relay: Sink | None = None,
                at: datetime = START) -> RunningGateway:
    running = start(make_gateway, tmp_path, policy_text=POLICY, relay=relay)
    running.clock.set(at)
    submit(running, make_mail("Metrics dashboard", sender=sender, body=MEDIUM_BODY))
    running.settle()
    return running


def test_priority_raised_any_time_customer_told_why(make_gateway, tmp_path: Path) -> None:
    """Raising the priority recomputes the deadlines from the registration time, records the
    change in the history and tells the customer the reason."""
    running = open_ticket(make_gateway, tmp_path)
    running.clock.advance(timedelta(minutes=30))
    applied = event(running, "SUP-000001", type="priority_changed", priority="critical",
                    reason="Diagnosis: all users are affected", actor="engineer-1")
    shown = applied.ticket
    assert (shown["priority"], applied.enqueued) == ("critical", 1)
    # 8/5: 5 working hours from the registration at 11:00 Moscow time.
    assert shown["registered_at"] == "2026-11-25T08:00:00Z"
    assert shown["resolution_due"] == "2026-11-25T13:00:00Z"
    [change] = shown["history"]
    assert change == {"at": "2026-11-25T08:30:00Z", "event": "priority_changed",
                      "actor": "engineer-1", "reason": "Diagnosis: all users are affected",
                      "basis": "diagnosis", "customer_agreed": False, "from": "medium",
                      "to": "critical", "resolution_due_before": "2026-11-26T15:00:00Z",
                      "resolution_due": "2026-11-25T13:00:00Z"}
    running.settle()
    notice = outbox(running)[-1]
    assert (notice.kind, notice.status, notice.recipient) == ("notice", "sent",
                                                               "ivan@acme.example")
    text = body(notice)
    assert "from 3 (medium) to 1 (critical)" in text
    assert "Reason: Diagnosis: all users are affected" in text
    assert [m["kind"] for m in ticket(running)["messages"]] == [  # type: ignore[index]
        "request", "acknowledgement", "notice"]


def test_lowering_needs_the_customer_agreement(make_gateway, tmp_path: Path) -> None:
    """critical -> high and high -> medium are refused (409) unless the event carries the
    customer's agreement; a customer-declared priority found wrong may be lowered."""
    running = open_ticket(make_gateway, tmp_path)
    event(running, "SUP-000001", type="priority_changed", priority="critical", reason="down")
    with pytest.raises(EventRefused, match="needs the customer's agreement"):
        event(running, "SUP-000001", type="priority_changed", priority="high",
              reason="partly restored", basis="partial_restoration")
    applied = event(running, "SUP-000001", type="priority_changed", priority="high",
                    reason="partly restored", basis="partial_restoration",
                    customer_agreed=True)
    # 8 working hours from 11:00 Wednesday: 19:00 the same day.
    assert applied.ticket["resolution_due"] == "2026-11-25T16:00:00Z"
    with pytest.raises(EventRefused):
        event(running, "SUP-000001", type="priority_changed", priority="medium",
              reason="workaround")
    with pytest.raises(EventRefused, match="is high already"):
        event(running, "SUP-000001", type="priority_changed", priority="high", reason="x")
    # The customer declared "high"; diagnosis shows it is not: notified and changed.
    with transaction(running.gateway.db.engine) as session:
        session.exec(update(Ticket).values(declared_priority="high"))  # type: ignore[call-overload]
    lowered = event(running, "SUP-000001", type="priority_changed", priority="low",
                    reason="only one user affected", basis="declared_mismatch")
    assert lowered.ticket["priority"] == "low"


def test_resolve_close_reopen_and_the_answers_for_http(make_gateway, tmp_path: Path) -> None:
    """Events move the ticket through its states; a wrong state is a refusal (409), an
    unknown ticket TicketNotFound (404), a malformed event EventInvalid naming the field."""
    running = open_ticket(make_gateway, tmp_path)
    running.clock.advance(timedelta(hours=1))
    resolved = event(running, "SUP-000001", type="resolved", reason="restarted the node")
    assert (resolved.ticket["status"], resolved.ticket["resolved_at"]) == (
        "resolved", "2026-11-25T09:00:00Z")
    with pytest.raises(EventRefused, match="cannot resolve SUP-000001: it is resolved"):
        event(running, "SUP-000001", type="resolved")
    with pytest.raises(EventRefused):
        event(running, "SUP-000001", type="priority_changed", priority="high", reason="x")
    assert event(running, "sup-000001", type="reopened").ticket["status"] == "registered"
    closed = event(running, "SUP-000001", type="closed").ticket
    assert closed["status"] == "closed" and closed["resolved_at"] is None
    assert [h["event"] for h in closed["history"]] == ["resolved", "reopened", "closed"]
    with pytest.raises(TicketNotFound):
        event(running, "SUP-000404", type="resolved")
    with pytest.raises(EventInvalid) as invalid:
        event(running, "SUP-000001", type="priority_changed", reason="x")
    assert invalid.value.field == "priority"
    with pytest.raises(EventInvalid) as invalid:
        event(running, "SUP-000001", type="explode")
    assert invalid.value.field == "type"


def test_outbox_sends_earliest_reaction_due_first(database_url: str) -> None:
    """Among due items, the one serving the earliest deadline is claimed first."""
    engine = make_engine(database_url)
    migrate(engine)
    with transaction(engine) as session:
        for key, send_by in (("late", START + timedelta(hours=1)),
                             ("early", START + timedelta(minutes=15)), ("none", None)):
            enqueue(session, {"dedup_key": key, "kind": "acknowledgement", "sender": "s@x",
                              "recipient": "r@x", "message_id": key, "message": b"x",
                              "send_by": send_by, "next_attempt_at": START,
                              "created_at": START})
    claimed = claim_due(engine, START + timedelta(seconds=1), 10)
    engine.dispose()
    # "none" (no deadline: since it became due), then "early" (+15 min), then "late" (+1 h).
    assert [c.id for c in claimed] == [3, 2, 1]


def test_acknowledgement_at_risk_alert_and_late_reaction(make_gateway, tmp_path: Path,
                                                         relay_sink: Sink) -> None:
    """Delivery failing at half the reaction window alerts the duty address once; the
    acknowledgement that finally goes out late is a reaction miss in the report."""
    relay_sink.handler.replies = ["451 4.3.0 try later"] * 50
    running = open_ticket(make_gateway, tmp_path, relay=relay_sink)
    running.clock.advance(timedelta(minutes=29))
    running.settle()
    assert [o.kind for o in outbox(running)] == ["acknowledgement"]
    running.clock.advance(timedelta(minutes=2))
    running.settle()
    _, alert = outbox(running)
    assert (alert.kind, alert.recipient) == ("alert", "duty@support.example")
    assert "SUP-000001" in body(alert) and "451" in body(alert)
    assert [h["event"] for h in ticket(running)["history"]] == [  # type: ignore[index]
        "acknowledgement_at_risk"]
    running.settle()
    assert len(outbox(running)) == 2
    relay_sink.handler.replies.clear()  # the relay is back
    running.clock.advance(timedelta(hours=2))
    running.settle()
    assert [o.status for o in outbox(running)] == ["sent", "sent"]
    assert len(outbox(running)) == 2
    shown = ticket(running)
    assert shown["acknowledged_at"] == "2026-11-25T10:31:00Z"
    assert shown["reaction_due"] == "2026-11-25T09:00:00Z"
    report = build_report(running.gateway.db.engine, running.gateway.context.policy,
                          ReportQuery(date(2026, 11, 25), date(2026, 11, 25)),
                          running.clock.now())
    [row] = report.rows
    assert (row.reaction_met, row.reaction_missed, row.reaction_met_pct) == (0, 1, 0.0)


def escalations(running: RunningGateway) -> list[tuple[str, str]]:
    return [(o.recipient, o.message.split(b"Subject: ")[1].split(b"\r\n")[0].decode())
            for o in outbox(running) if o.kind == "escalation"]


def test_escalation_at_thresholds_to_engineer_manager_duty(make_gateway,
                                                           tmp_path: Path) -> None:
    """At 75 % and 100 % of the resolution time the engineer, the manager and the duty
    address are told, once per threshold."""
    running = open_ticket(make_gateway, tmp_path)
    event(running, "SUP-000001", type="priority_changed", priority="critical", reason="down")
    # 5 working hours from 11:00: due 16:00; 75 % is 14:45 Moscow time (11:45 UTC).
    running.clock.set(datetime(2026, 11, 25, 11, 44, tzinfo=UTC))
    running.settle()
    assert escalations(running) == []
    running.clock.set(datetime(2026, 11, 25, 11, 46, tzinfo=UTC))
    running.settle()
    subject = "[SUP-000001] ESCALATION 75%: Metrics dashboard"
    assert escalations(running) == [("petrov@support.example", subject),
                                    ("boss@support.example", subject),
                                    ("duty@support.example", subject)]
    running.settle()
    assert len(escalations(running)) == 3
    running.clock.set(datetime(2026, 11, 25, 13, 0, tzinfo=UTC))
    running.settle()
    assert [s for _, s in escalations(running)][3:] == [
        "[SUP-000001] ESCALATION 100%: Metrics dashboard"] * 3
    history = [h["event"] for h in ticket(running)["history"]]  # type: ignore[index]
    assert history == ["priority_changed", "escalation", "escalation"]


def test_escalation_waits_for_working_hours_of_an_8_5_ticket(make_gateway,
                                                             tmp_path: Path) -> None:
    """A threshold passed in the evening is not announced at night for an 8/5 ticket, but
    when the service opens; a 24/7 ticket escalates at night."""
    running = open_ticket(make_gateway, tmp_path,
                          at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC))  # 15:00 MSK
    event(running, "SUP-000001", type="priority_changed", priority="critical", reason="down")
    # The 24/7 ticket: 5 clock hours from 20:00 MSK; 75 % at 23:45 MSK.
    running.clock.set(datetime(2026, 11, 25, 17, 0, tzinfo=UTC))
    submit(running, make_mail("Metrics dashboard", sender="owl@owls.example", body=MEDIUM_BODY))
    running.settle()
    event(running, "SUP-000002", type="priority_changed", priority="critical", reason="down")
    running.clock.set(datetime(2026, 11, 25, 21, 0, tzinfo=UTC))  # midnight in Moscow
    running.settle()
    assert {(r, s.split(":")[0]) for r, s in escalations(running)} == {
        ("duty@support.example", "[SUP-000002] ESCALATION 75%")}
    # The 8/5 ticket's 75 % (18:45 MSK) waits for 10:00 on Thursday.
    with Session(running.gateway.db.engine) as session:
        waiting = session.get(Ticket, 1)
        assert waiting is not None and waiting.escalation_level == 0
        assert waiting.escalation_due == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    running.clock.set(datetime(2026, 11, 26, 7, 0, 30, tzinfo=UTC))
    running.settle()
    assert ("duty@support.example", "[SUP-000001] ESCALATION 75%: Metrics dashboard"
            ) in escalations(running)


def test_report_and_event_commands(tmp_path: Path) -> None:
    """`tickets event` and `report sla` as an operator runs them."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "intake.db"}"\n'
                      f'[intake]\nstate_dir = "{tmp_path / "state"}"\n'
                      'unknown_customer_tier = "24/7"\n', encoding="utf-8")
    mail = tmp_path / "one.eml"
    mail.write_bytes(make_mail("Metrics dashboard", body=MEDIUM_BODY))

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "gateway", "--config", str(config),
                                 *args], capture_output=True, text=True, timeout=120)
        assert not check or result.returncode == 0, result.stderr
        return result

    cli("ingest", str(mail))
    changed = json.loads(cli("tickets", "event", "SUP-000001", "priority_changed",
                             "--priority", "high", "--reason", "many users", "--json").stdout)
    assert changed["priority"] == "high"
    refused = cli("tickets", "event", "SUP-000001", "priority_changed", "--priority",
                  "medium", "--reason", "better", check=False)
    assert refused.returncode == 1 and "customer's agreement" in refused.stderr
    assert cli("tickets", "event", "SUP-000404", "resolved", check=False).returncode == 1
    assert cli("tickets", "event", "SUP-000001", "priority_changed",
               check=False).returncode == 2
    cli("tickets", "event", "SUP-000001", "resolved", "--by", "me")
    today = datetime.now(UTC).date()
    start_day, end_day = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)
                                                                  ).isoformat()
    report = json.loads(cli("report", "sla", "--from", start_day, "--to", end_day,
                            "--format", "json").stdout)
    [row] = report["rows"]
    assert (row["tier"], row["priority"], row["requests"], row["resolution_met_pct"]) == (
        None, "high", 1, 100.0)
    html = cli("report", "sla", "--from", start_day, "--to", end_day, "--format", "html")
    assert html.stdout.startswith("<!DOCTYPE html>")
    assert cli("report", "sla", "--from", end_day, "--to", start_day,
               check=False).returncode == 2


def test_customer_agrees_by_replying_to_the_proposal(make_gateway, tmp_path: Path) -> None:
    """A proposal to lower the priority goes to the customer; a reply that refuses changes
    nothing, a reply that agrees (ru/en words) lowers it with the customer's agreement."""
    running = open_ticket(make_gateway, tmp_path)
    event(running, "SUP-000001", type="priority_changed", priority="critical", reason="down")
    with pytest.raises(EventRefused, match="lowers the priority"):
        event(running, "SUP-000001", type="priority_proposed", priority="critical",
              reason="x")
    event(running, "SUP-000001", type="priority_proposed", priority="high",
          reason="Messages flow again for most users")
    running.settle()
    proposal = outbox(running)[-1]
    assert "from 1 (critical) to 2 (high)" in body(proposal)
    assert '"I agree"' in body(proposal)
    submit(running, make_mail("Re: [SUP-000001] Messages are not delivered",
                              sender="ivan@acme.example", body="Не согласен, всё ещё лежит."))
    running.settle()
    assert ticket(running)["priority"] == "critical"
    submit(running, make_mail("Re: [SUP-000001] Messages are not delivered",
                              sender="ivan@acme.example", body="Согласен.\n\n> quoted text"))
    running.settle()
    shown = ticket(running)
    assert shown["priority"] == "high"
    last = shown["history"][-1]  # type: ignore[index]
    assert (last["event"], last["customer_agreed"], last["actor"]) == (
        "priority_changed", True, "customer <ivan@acme.example>")
    assert "from 1 (critical) to 2 (high)" in body(outbox(running)[-1])
