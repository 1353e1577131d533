"""The people the rules name are told: the dedicated engineer and the manager copied."""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

from gateway.sla.policy import DEFAULT_POLICY
from tests.conftest import RunningGateway, Sink, make_mail
from tests.gateway.outbox.test_outbox import submit
from tests.gateway.sla.test_sla_clock import body, outbox, ticket

POLICY = DEFAULT_POLICY.read_text(encoding="utf-8").replace(
    "contacts = {}", 'contacts = { petrov = "petrov@support.example" }')
CUSTOMERS = """
[[customer]]
id = "vip"
name = "VIP"
tier = "premium"
language = "en"
domains = ["vip.example"]
engineer = "petrov"
manager = "boss@support.example"

[[customer]]
id = "lost"
name = "Lost"
tier = "premium"
domains = ["lost.example"]
engineer = "sidorov"
"""
URGENT = "Since this morning no user of ours can log in, the whole service is down."


def start(make_gateway: Callable[..., RunningGateway], tmp_path: Path,
          relay: Sink) -> RunningGateway:
    (tmp_path / "customers.toml").write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "policy.toml").write_text(POLICY, encoding="utf-8")
    files = (f'[files]\ncustomers = "{tmp_path / "customers.toml"}"\n'
             f'policy = "{tmp_path / "policy.toml"}"\n\n'
             # Two automatic messages per ticket: the staff notices must not use them up.
             "[loops]\nticket_limit = 2\n")
    return make_gateway(relay_port=relay.port, extra=files)


def test_engineer_and_manager_told_once_not_counted(make_gateway, tmp_path: Path,
                                                    relay_sink: Sink) -> None:
    """A premium customer's urgent request: the engineer (address from escalation.contacts)
    and the manager get one notice each with the customer's words; a reply tells nobody
    again; the customer's own notices are not held back by them."""
    running = start(make_gateway, tmp_path, relay_sink)
    submit(running, make_mail("Login is down", sender="Anna <anna@vip.example>",
                              body=URGENT, message_id="<down@vip.example>"))
    running.settle()
    shown = ticket(running)
    assert (shown["assignee"], shown["manager_cc"]) == ("petrov", "boss@support.example")
    assert shown["priority"] in ("critical", "high")
    staff = [i for i in outbox(running) if i.kind == "assignment"]
    assert sorted(i.recipient for i in staff) == ["boss@support.example",
                                                  "petrov@support.example"]
    engineer = next(i for i in staff if i.recipient == "petrov@support.example")
    # In the staff language of the policy (escalation.language, Russian by default).
    assert "назначено вам" in body(engineer) and "no user of ours can log in" in body(engineer)
    subject = message_from_bytes(engineer.message, policy=policy.default)["Subject"]
    assert str(subject) == "[SUP-000001] ASSIGNED: Login is down"
    delivered = sorted(m["X-Envelope-To"] for m in relay_sink.messages)
    assert delivered == ["anna@vip.example", "boss@support.example", "petrov@support.example"]

    submit(running, make_mail("Re: [SUP-000001] Login is down", sender="anna@vip.example",
                              body="Still down."))
    running.settle()
    assert len([i for i in outbox(running) if i.kind == "assignment"]) == 2
    # The second automatic message to the customer still fits in ticket_limit = 2.
    running.call(lambda: running.gateway.ticket_event("SUP-000001", {
        "type": "priority_proposed", "priority": "medium", "reason": "a workaround exists"}))
    customer = [i for i in outbox(running) if i.recipient == "anna@vip.example"]
    assert [i.kind for i in customer] == ["acknowledgement", "notice"]


def test_person_without_address_is_noted(make_gateway, tmp_path: Path,
                                         relay_sink: Sink) -> None:
    """An engineer with no address in escalation.contacts: nobody is mailed, the ticket's
    notes say who was not told and why."""
    running = start(make_gateway, tmp_path, relay_sink)
    submit(running, make_mail("Question", sender="bob@lost.example",
                              body="How do I export the report to CSV?"))
    running.settle()
    shown = ticket(running)
    assert shown["assignee"] == "sidorov"
    assert [i for i in outbox(running) if i.kind == "assignment"] == []
    notes = shown["notes"]
    assert isinstance(notes, list)
    assert any("sidorov not told: no address" in n for n in notes), notes
