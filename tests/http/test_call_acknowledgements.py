"""Phone and web acknowledgements over real HTTP: e-mail's loop guards, the reaction time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from gateway.db import transaction
from gateway.loops import mark_undeliverable
from gateway.ticket_view import list_tickets
from tests.conftest import START, RunningGateway, Sink
from tests.http.helpers import admin, call, hook_config, post_call


def start(make_gateway: Callable[..., RunningGateway], relay_sink: Sink, tmp_path: Path,
          extra: str = "") -> RunningGateway:
    hooks, http = hook_config(tmp_path)
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
    assert post_call(running.http_url, call("c-sla", contact_email="ivan@acme.example"),
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
