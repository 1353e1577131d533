"""Phone and web acknowledgements over real HTTP: e-mail's guards, intake hours, reaction time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, select

from gateway.sla.policy import DEFAULT_POLICY
from gateway.store.db import read_transaction, transaction
from gateway.store.models import Input, OutboxItem
from gateway.tickets.mail_loops import mark_undeliverable
from gateway.tickets.view import list_tickets
from tests.conftest import START, RunningGateway, Sink
from tests.gateway.http.helpers import CUSTOMERS, admin, call, hook_config, post_call

# An 8/5 customer (intake in Moscow working hours only) with a contact on file, and one
# whose address on file is a no-reply mailbox.
MORE_CUSTOMERS = CUSTOMERS + """
[[customer]]
id = "initech"
name = "Initech"
tier = "8/5"
language = "en"
emails = ["it@initech.example"]
phones = ["+7 383 200-00-00"]

[[customer]]
id = "hooli"
name = "Hooli"
tier = "24/7"
emails = ["No-Reply@hooli.example"]
phones = ["+7 343 300-00-00"]
"""
INITECH_PHONE, HOOLI_PHONE = "+7 383 200-00-00", "+7 343 300-00-00"
FRIDAY_EVENING = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 20:00 in Moscow, 8/5 intake shut
MONDAY_OPEN = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # 10:00 in Moscow, intake opens


def start(make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
          extra: str = "", files: str = "") -> RunningGateway:
    hooks, http = hook_config(tmp_path, customers=MORE_CUSTOMERS, files=files)
    return make_gateway(relay_port=relay_sink.port, extra=hooks + extra, http=http)


def web_request(running: RunningGateway, request_id: str, contact: str) -> httpx.Response:
    return httpx.post(f"{running.http_url}/api/v1/requests", headers=admin(), json={
        "request_id": request_id, "subject": "Cannot log in to the portal",
        "description": "Since the update none of our users can log in to the portal.",
        "contact_email": contact}, timeout=30)


def test_no_acknowledgement_to_an_undeliverable_address(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path) -> None:
    """A phone or web ticket whose contact (given or on file) bounced before gets no
    acknowledgement, and its notes say why."""
    running = start(make_gateway, relay_sink, tmp_path)
    # As a bounce of an earlier acknowledgement records it (written in another case: the
    # comparison must not depend on how the address is spelt).
    with transaction(running.gateway.db.engine) as session:
        mark_undeliverable(session, ["Ivan@ACME.example", "petr@acme.example"],
                           "550 5.1.1 mailbox unavailable", None, START)
    assert post_call(running.http_url, call("c-given", contact_email="IVAN@acme.example"),
                     START).status_code == 202
    # No contact given: the customer's address on file, which bounced too.
    assert post_call(running.http_url, call("c-on-file"), START).status_code == 202
    assert web_request(running, "form-1", "petr@acme.example").status_code == 202
    running.settle()

    tickets = list_tickets(running.gateway.db.engine)
    assert len(tickets) == 3
    for ticket in tickets:
        [note] = ticket["notes"]
        assert note.startswith("no acknowledgement: "), note
        assert "is undeliverable: 550 5.1.1 mailbox unavailable" in note
        assert [m["kind"] for m in ticket["messages"]] == ["request"]
    assert relay_sink.messages == []


def test_per_address_rate_limit_applies_to_calls_and_web_requests(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path) -> None:
    """Phone and web acknowledgements count towards the per-address limit e-mail has; past
    it, the ticket says so and nothing is sent until the window moves on."""
    running = start(make_gateway, relay_sink, tmp_path,
                    extra="[loops]\nsender_limit = 2\nsender_window_min = 60\n")
    # Spelt differently, still one mailbox.
    for call_id, contact in (("c-1", "Boss@Globex.example"), ("c-2", "boss@globex.example"),
                             ("c-3", "BOSS@globex.example")):
        body = call(call_id, contact_email=contact)
        assert post_call(running.http_url, body, START).status_code == 202
    assert web_request(running, "form-1", "boss@globex.example").status_code == 202
    running.settle()

    tickets = sorted(list_tickets(running.gateway.db.engine), key=lambda t: t["number"])
    assert [t["notes"] for t in tickets[:2]] == [[], []]
    for limited in tickets[2:]:
        assert limited["notes"] == ["no acknowledgement: rate limit: 2 automatic messages to "
                                    "boss@globex.example in the last 60 min"]
    assert [m["X-Envelope-To"] for m in relay_sink.messages] == ["boss@globex.example"] * 2

    running.clock.advance(timedelta(minutes=61))
    assert post_call(running.http_url, call("c-4", contact_email="boss@globex.example"),
                     running.clock.now()).status_code == 202
    running.settle()
    assert len(relay_sink.messages) == 3, "the window moved on"


def test_phone_acknowledgement_is_delivered_within_the_reaction_time(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path) -> None:
    """A phone ticket's acknowledgement goes out when it is processed, before its reaction
    deadline, and the ticket records when the relay took it."""
    running = start(make_gateway, relay_sink, tmp_path)
    # The call started when the hook was sent: its arrival (an earlier start would count).
    assert post_call(running.http_url, call("c-sla", contact_email="ivan@acme.example",
                                            started_at="2026-11-25T08:00:00Z"),
                     START).status_code == 202
    # Processing runs a little after intake, as when the workers are busy.
    running.clock.advance(timedelta(minutes=3))
    running.settle()

    [ticket] = list_tickets(running.gateway.db.engine)
    received = datetime.fromisoformat(ticket["received_at"])
    acknowledged = datetime.fromisoformat(ticket["acknowledged_at"])
    reaction_due = datetime.fromisoformat(ticket["reaction_due"])
    assert received == START
    assert acknowledged == START + timedelta(minutes=3)
    assert received < acknowledged <= reaction_due
    [ack] = relay_sink.messages
    assert ack["Subject"].startswith(f"[{ticket['number']}]")


def test_rules_can_suppress_phone_and_web_acknowledgements(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path) -> None:
    """A rule with suppress_ack stops a phone or web ticket's acknowledgement, as it does an
    e-mail's, and the ticket's notes say which rules decided."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "acme-wants-no-mail"\n[rule.when]\ncustomer = "acme"\n'
                     '[rule.then]\nsuppress_ack = true\n', encoding="utf-8")
    running = start(make_gateway, relay_sink, tmp_path, files=f'rules = "{rules}"\n')
    assert post_call(running.http_url, call("c-given", contact_email="ivan@acme.example"),
                     START).status_code == 202
    assert post_call(running.http_url, call("c-on-file"), START).status_code == 202
    assert web_request(running, "form-1", "ivan@acme.example").status_code == 202
    # Another customer, whom the rule does not name, is acknowledged as usual.
    assert post_call(running.http_url, call("c-other", caller=INITECH_PHONE),
                     START).status_code == 202
    running.settle()

    by_customer: dict[str, list[dict[str, Any]]] = {}
    for ticket in list_tickets(running.gateway.db.engine):
        by_customer.setdefault(ticket["customer"], []).append(ticket)
    assert len(by_customer["acme"]) == 3
    for suppressed in by_customer["acme"]:
        assert suppressed["notes"] == [
            "no acknowledgement: suppressed by rules: acme-wants-no-mail"]
        assert [m["kind"] for m in suppressed["messages"]] == ["request"]
    [other] = by_customer["initech"]
    assert [m["kind"] for m in other["messages"]] == ["request", "acknowledgement"]
    assert [m["X-Envelope-To"] for m in relay_sink.messages] == ["it@initech.example"]


def test_no_acknowledgement_to_a_no_reply_address(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path) -> None:
    """A phone or web ticket whose contact (given or on file) is a no-reply style mailbox
    gets no acknowledgement, as e-mail from one does not, and its notes say why."""
    running = start(make_gateway, relay_sink, tmp_path)
    assert post_call(running.http_url, call("c-given", contact_email="noreply@acme.example"),
                     START).status_code == 202
    assert post_call(running.http_url, call("c-on-file", caller=HOOLI_PHONE),
                     START).status_code == 202
    assert web_request(running, "form-1", "do-not-reply@globex.example").status_code == 202
    running.settle()

    notes = sorted(note for t in list_tickets(running.gateway.db.engine) for note in t["notes"])
    assert notes == ["no acknowledgement: no-reply address do-not-reply@globex.example",
                     "no acknowledgement: no-reply address no-reply@hooli.example",
                     "no acknowledgement: no-reply address noreply@acme.example"]
    assert relay_sink.messages == []


def pending_policy(tmp_path: Path, courtesy_notice: bool) -> str:
    """A `[files]` line for the seed policy with the courtesy notice on or off."""
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_POLICY.read_text(encoding="utf-8").replace(
        "enabled = true", f"enabled = {str(courtesy_notice).lower()}"), encoding="utf-8")
    return f'policy = "{path}"\n'


def outbox(running: RunningGateway) -> list[OutboxItem]:
    with read_transaction(running.gateway.db.engine) as session:
        return list(session.exec(select(OutboxItem).order_by(col(OutboxItem.id))))


def input_ids(running: RunningGateway) -> dict[int, int]:
    """The input each ticket was registered from, by ticket id."""
    with read_transaction(running.gateway.db.engine) as session:
        return {int(t or 0): int(i or 0) for i, t in session.exec(
            select(Input.id, Input.ticket_id).where(col(Input.ticket_id).is_not(None)))}


def post_outside_intake_hours(running: RunningGateway) -> None:
    """Friday evening: a call with a contact, one without (the contact on file), a web form."""
    running.clock.set(FRIDAY_EVENING)
    for body in (call("c-given", caller=INITECH_PHONE, contact_email="peter@initech.example"),
                 call("c-on-file", caller=INITECH_PHONE)):
        assert post_call(running.http_url, body, FRIDAY_EVENING).status_code == 202
    assert web_request(running, "form-1", "it@initech.example").status_code == 202
    running.settle()


def assert_acknowledged_when_intake_opens(running: RunningGateway, relay_sink: Sink,
                                          before: list[str]) -> None:
    """Monday 10:00: each ticket registered and acknowledged after the mail in BEFORE."""
    running.clock.set(MONDAY_OPEN + timedelta(seconds=20))
    running.settle()
    tickets = list_tickets(running.gateway.db.engine)
    assert len(tickets) == 3
    for ticket in tickets:
        assert ticket["status"] == "registered"
        assert ticket["registered_at"] == "2026-11-30T07:00:00Z"
        assert ticket["acknowledged_at"] == "2026-11-30T07:00:20Z"
        assert [m["kind"] for m in ticket["messages"]] == ["request", *before, "acknowledgement"]
    acknowledgements = relay_sink.messages[len(before) * 3:]
    assert sorted(m["X-Envelope-To"] for m in acknowledgements) == [
        "it@initech.example", "it@initech.example", "peter@initech.example"]
    # As at intake: a call id is no Message-ID a customer's mail had.
    assert [m["In-Reply-To"] for m in acknowledgements] == [None] * 3
    assert {item.dedup_key for item in outbox(running) if item.kind == "acknowledgement"} == {
        f"ack:ticket:{ticket_id}" for ticket_id in input_ids(running)}


def test_no_courtesy_notice_when_the_policy_turns_it_off(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path) -> None:
    """With `[intake_notice] enabled = false` a phone or web ticket received outside its
    tier's intake window gets no mail until the window opens; then it is registered and
    acknowledged, at the contact given or on file."""
    running = start(make_gateway, relay_sink, tmp_path,
                    files=pending_policy(tmp_path, courtesy_notice=False))
    post_outside_intake_hours(running)
    tickets = list_tickets(running.gateway.db.engine)
    assert [t["status"] for t in tickets] == ["pending_registration"] * 3
    assert [[m["kind"] for m in t["messages"]] for t in tickets] == [["request"]] * 3
    assert outbox(running) == []

    assert_acknowledged_when_intake_opens(running, relay_sink, before=[])


def test_courtesy_notice_then_acknowledgement_outside_intake_hours(
        make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path) -> None:
    """Outside its tier's intake window a phone or web ticket's contact gets the courtesy
    notice at once, kept and keyed as e-mail's notice is, and the acknowledgement when the
    window opens."""
    running = start(make_gateway, relay_sink, tmp_path,
                    files=pending_policy(tmp_path, courtesy_notice=True))
    post_outside_intake_hours(running)
    tickets = list_tickets(running.gateway.db.engine)
    assert [t["status"] for t in tickets] == ["pending_registration"] * 3
    assert [[m["kind"] for m in t["messages"]] for t in tickets] == [["request", "notice"]] * 3
    # Keyed by the input, as e-mail's notice is: a replayed input never sends a second one.
    assert sorted((item.kind, item.dedup_key) for item in outbox(running)) == sorted(
        ("notice", f"pending:input:{input_id}") for input_id in input_ids(running).values())
    assert len(relay_sink.messages) == 3
    for notice in relay_sink.messages:
        text = notice.get_body(("plain",))
        assert text is not None
        assert "will be registered at 2026-11-30 10:00 MSK" in text.get_content()

    assert_acknowledged_when_intake_opens(running, relay_sink, before=["notice"])
