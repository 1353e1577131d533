"""Every state change of an input, a ticket and an outbox message is one structured log event."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog

from tests.conftest import RunningGateway, Sink, make_mail
from tests.gateway.http.helpers import admin, call, hook_config, post_call
from tests.gateway.outbox.test_outbox import submit


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """The events logged meanwhile, with the context bound the way production merges it."""
    with structlog.testing.capture_logs() as captured:
        structlog.contextvars.clear_contextvars()
        structlog.configure(processors=[structlog.contextvars.merge_contextvars,
                                        *structlog.get_config()["processors"]])
        yield captured


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event["event"] == name]


def test_state_changes_are_logged_with_input_and_ticket(make_gateway, relay_sink: Sink,
                                                        tmp_path, events) -> None:
    """received (SMTP, HTTP) -> processed (registered) -> acknowledgement retried, sent ->
    resolved: one event each, naming the input and the ticket."""
    extra, http = hook_config(tmp_path)
    running: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    relay_sink.handler.replies = ["451 4.3.0 try later"]
    submit(running, make_mail(sender="ivan@acme.example"))
    assert post_call(running.http_url, call("c-logs"), running.clock.now()).status_code == 202
    running.settle()
    running.clock.advance(timedelta(minutes=1))
    running.settle()

    [smtp] = named(events, "smtp.accepted")
    [hook] = named(events, "http.accepted")
    registered = named(events, "ticket.registered")
    assert sorted(e["input_id"] for e in registered) == sorted([smtp["input_id"],
                                                                hook["input_id"]])
    assert all(e["ticket"].startswith("SUP-") for e in registered)
    [retry] = named(events, "outbox.temporary_failure")
    assert retry["error"].startswith("451") and retry["attempts"] == 1
    sent = named(events, "outbox.sent")
    assert len(sent) == 2 and all(e["ticket_id"] for e in sent)

    number = registered[0]["ticket"]
    response = httpx.post(f"{running.http_url}/api/v1/tickets/{number}/events",
                          json={"type": "resolved"}, headers=admin(), timeout=30)
    assert response.status_code == 200, response.text
    [resolved] = named(events, "ticket.event")
    assert (resolved["ticket"], resolved["type"], resolved["status"]) == (number, "resolved",
                                                                         "resolved")


def test_running_out_of_attempts_is_logged_as_failed(make_gateway, relay_sink: Sink,
                                                     events) -> None:
    """The last temporary failure fails the message for good, and says so."""
    relay_sink.handler.replies = ["451 4.3.0 try later"] * 2
    running: RunningGateway = make_gateway(relay_port=relay_sink.port)
    running.gateway.outbox._max_attempts = 2
    submit(running, make_mail())
    running.settle()
    running.clock.advance(timedelta(hours=1))
    running.settle()
    assert [e["event"] for e in events if e["event"].startswith("outbox.")] == [
        "outbox.temporary_failure", "outbox.failed"]
    [failed] = named(events, "outbox.failed")
    assert failed["attempts"] == 2 and failed["error"].startswith("451")
