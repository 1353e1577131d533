"""The SLA clock on real tickets: deadlines by tier, intake windows, `sla due`, reloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from gateway.cli.main import main
from gateway.store.models import OutboxItem
from gateway.tickets.view import show_ticket
from tests.conftest import RunningGateway, Sink, make_mail
from tests.gateway.outbox.test_outbox import submit

CUSTOMERS = """
[[customer]]
id = "acme"
name = "ACME"
tier = "8/5"
language = "en"
domains = ["acme.example"]
engineer = "petrov"
manager = "boss@support.example"

[[customer]]
id = "night"
name = "Night Owls"
tier = "24/7"
domains = ["owls.example"]
"""
FRIDAY_EVENING = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 20:00 in Moscow
MONDAY_OPEN = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # 10:00 in Moscow


def start(make_gateway: Callable[..., RunningGateway], tmp_path: Path, *,
          policy_text: str | None = None, relay: Sink | None = None) -> RunningGateway:
    (tmp_path / "customers.toml").write_text(CUSTOMERS, encoding="utf-8")
    files = f'[files]\ncustomers = "{tmp_path / "customers.toml"}"\n'
    if policy_text is not None:
        (tmp_path / "policy.toml").write_text(policy_text, encoding="utf-8")
        files += f'policy = "{tmp_path / "policy.toml"}"\n'
    return make_gateway(relay_port=relay.port if relay else None, extra=files)


def outbox(running: RunningGateway) -> list[OutboxItem]:
    with Session(running.gateway.db.engine) as session:
        return list(session.exec(select(OutboxItem).order_by(col(OutboxItem.id))))


def body(item: OutboxItem) -> str:
    parsed = message_from_bytes(item.message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def ticket(running: RunningGateway, number: str = "SUP-000001") -> dict[str, object]:
    shown = show_ticket(running.gateway.db.engine, number)
    assert shown is not None
    return shown


def test_deadlines_follow_the_customer_tier(make_gateway, tmp_path: Path) -> None:
    """An 8/5 customer's ticket counts in working hours, a 24/7 customer's on the clock."""
    running = start(make_gateway, tmp_path)
    running.clock.set(datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # Friday 18:00 in Moscow
    submit(running, make_mail("ours", sender="ivan@acme.example"))
    submit(running, make_mail("theirs", sender="owl@owls.example"))
    running.settle()
    eight_five, round_clock = ticket(running), ticket(running, "SUP-000002")
    assert (eight_five["tier"], eight_five["status"]) == ("8/5", "registered")
    # Messages not delivered to most users: high (the rules). 8 working hours from Friday
    # 18:00 Moscow time: 1 h on Friday, 7 on Monday; on the clock, Saturday 02:00.
    assert eight_five["priority"] == round_clock["priority"] == "high"
    assert eight_five["reaction_due"] == "2026-11-27T16:00:00Z"
    assert eight_five["resolution_due"] == "2026-11-30T14:00:00Z"
    assert round_clock["reaction_due"] == "2026-11-27T16:00:00Z"
    assert round_clock["resolution_due"] == "2026-11-27T23:00:00Z"


def test_outside_intake_hours_pending_then_registered(make_gateway, tmp_path: Path) -> None:
    """8/5 mail on Friday evening is stored at once as pending_registration, the sender is told
    when it will be registered; on Monday at 10:00 it is registered and acknowledged, and
    the reaction clock starts then. A 24/7 customer is registered at once."""
    running = start(make_gateway, tmp_path)
    running.clock.set(FRIDAY_EVENING)
    submit(running, make_mail("weekend trouble", sender="ivan@acme.example"))
    submit(running, make_mail("night trouble", sender="owl@owls.example"))
    running.settle()
    pending = ticket(running)
    assert pending["status"] == "pending_registration"
    assert pending["registered_at"] == "2026-11-30T07:00:00Z"
    assert pending["reaction_due"] == "2026-11-30T08:00:00Z"
    assert pending["acknowledged_at"] is None
    assert ticket(running, "SUP-000002")["status"] == "registered"
    notice, night_ack = outbox(running)
    assert (notice.kind, notice.status, night_ack.kind) == ("notice", "sent", "acknowledgement")
    text = body(notice)
    assert "will be registered at 2026-11-30 10:00 MSK" in text
    assert "24/7 and Premium" in text and "SUP-000001" in text
    assert [m["kind"] for m in pending["messages"]] == ["request", "notice"]  # type: ignore[index]

    running.clock.set(MONDAY_OPEN - timedelta(seconds=1))
    running.settle()
    assert ticket(running)["status"] == "pending_registration"
    running.clock.set(MONDAY_OPEN + timedelta(seconds=20))
    running.settle()
    registered = ticket(running)
    assert registered["status"] == "registered"
    assert registered["registered_at"] == "2026-11-30T07:00:00Z"
    assert registered["reaction_due"] == "2026-11-30T08:00:00Z"
    assert registered["acknowledged_at"] == "2026-11-30T07:00:20Z"
    assert [h["event"] for h in registered["history"]] == ["registered"]  # type: ignore[index, union-attr]
    ack = outbox(running)[-1]
    assert (ack.kind, ack.status, ack.recipient) == ("acknowledgement", "sent", "ivan@acme.example")
    parsed = message_from_bytes(ack.message, policy=policy.default)
    assert parsed["In-Reply-To"] == f"<{registered['messages'][0]['message_id'].strip('<>')}>"  # type: ignore[index]
    assert "Reaction due:   2026-11-30 11:00 MSK" in body(ack)
    # Nothing more to do: a second step registers nothing twice.
    assert running.call(running.gateway.sla_once) == 0


def test_courtesy_notice_can_be_turned_off(make_gateway, tmp_path: Path) -> None:
    """With intake_notice.enabled = false nothing goes out until registration."""
    from gateway.sla.policy import DEFAULT_POLICY

    text = DEFAULT_POLICY.read_text(encoding="utf-8").replace(
        "enabled = true", "enabled = false")
    running = start(make_gateway, tmp_path, policy_text=text)
    running.clock.set(FRIDAY_EVENING)
    submit(running, make_mail("weekend trouble", sender="ivan@acme.example"))
    running.settle()
    assert ticket(running)["status"] == "pending_registration"
    assert outbox(running) == []


def test_reload_keeps_the_previous_policy(make_gateway, tmp_path: Path) -> None:
    """SIGHUP's reload with a broken policy file keeps the policy in force; a good one applies."""
    from gateway.sla.policy import DEFAULT_POLICY

    seed = DEFAULT_POLICY.read_text(encoding="utf-8")
    running = start(make_gateway, tmp_path, policy_text=seed.replace('reaction = "15m"',
                                                                     'reaction = "10m"'))
    before = running.gateway.context.policy
    (tmp_path / "policy.toml").write_text(seed.replace('country = "RU"', 'country = "QQ"'),
                                          encoding="utf-8")
    assert running.gateway.reload() is False
    assert running.gateway.context.policy is before
    (tmp_path / "policy.toml").write_text(seed, encoding="utf-8")
    assert running.gateway.reload() is True
    targets = running.gateway.context.policy.targets_for("premium", "incident", "high")
    assert targets.reaction.duration == timedelta(minutes=15)


def test_sla_due_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`sla due` answers when a request would be registered and due, as CONTRACT.md says."""
    assert main(["sla", "due", "--tier", "8/5", "--priority", "critical", "--received",
                 "2026-12-30T20:00:00+03:00", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == {
        "tier": "8/5", "priority": "critical", "request_type": "incident",
        "received_at": "2026-12-30T17:00:00Z", "status": "pending_registration",
        "registered_at": "2027-01-11T07:00:00Z", "reaction_due": "2027-01-11T08:00:00Z",
        "resolution_due": "2027-01-11T12:00:00Z"}
    assert main(["sla", "due", "--tier", "premium", "--priority", "high", "--type",
                 "consultation", "--received", "2026-11-27T18:30:00+03:00"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "registered_at:   2026-11-27T15:30:00Z  (Fri 2026-11-27 18:30 MSK)",
        "reaction_due:    2026-11-27T15:45:00Z  (Fri 2026-11-27 18:45 MSK)",
        "resolution_due:  2026-11-30T12:30:00Z  (Mon 2026-11-30 15:30 MSK)"]
    assert main(["sla", "due", "--tier", "gold", "--priority", "high", "--received",
                 "2026-11-27T18:30:00Z"]) == 2
    assert main(["sla", "due", "--tier", "8/5", "--priority", "high", "--received",
                 "2026-11-27T18:30:00"]) == 2
