"""Replayed Zadarma notifications and holds on phone and web intake (issue 17)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from gateway.tickets.view import list_tickets
from tests.conftest import START, RunningGateway, Sink
from tests.gateway.http.helpers import call, hook_config, post_call
from tests.gateway.http.test_providers import pbx_hooks, zadarma_sign

pytestmark = pytest.mark.adversarial

MISSED = {"event": "NOTIFY_END", "call_start": "2026-11-25 07:58:00", "pbx_call_id": "in_0001",
          "caller_id": "79031112233", "called_did": "74950000000", "duration": "0",
          "disposition": "no answer", "status_code": "19", "is_recorded": "0"}


@pytest.fixture
def running(make_gateway, relay_sink: Sink, tmp_path: Path) -> RunningGateway:
    extra, http = hook_config(tmp_path, pbx_hooks(tmp_path))
    gateway: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    return gateway


def statuses(running: RunningGateway) -> list[tuple[str, str | None]]:
    with running.gateway.db.engine.connect() as connection:
        return [(str(s), o) for s, o in connection.execute(
            text("SELECT status, outcome FROM inputs ORDER BY id"))]


def test_a_captured_zadarma_notification_replayed_with_new_call_ids_is_one_event(
        running: RunningGateway) -> None:
    """The signature covers caller, number called and call_start, not the call id: the
    replays are duplicates of the first (200 naming its ticket), one ticket in all."""
    url = f"{running.http_url}/hooks/zd"
    first = httpx.post(url, data=MISSED, headers={"Signature": zadarma_sign(MISSED)})
    assert first.status_code == 202, first.text
    running.settle()
    for n in range(2, 9):
        replay = {**MISSED, "pbx_call_id": f"in_{n:04d}"}
        answer = httpx.post(url, data=replay, headers={"Signature": zadarma_sign(replay)})
        assert answer.status_code == 200 and answer.json()["status"] == "duplicate", answer.text
    running.settle()
    assert len(list_tickets(running.gateway.db.engine)) == 1


def test_a_stale_zadarma_notification_is_401(running: RunningGateway) -> None:
    """Outside the freshness window (a day by default) even a valid signature is refused."""
    stale = {**MISSED, "call_start": "2026-11-20 07:58:00", "pbx_call_id": "in_0100"}
    answer = httpx.post(f"{running.http_url}/hooks/zd", data=stale,
                        headers={"Signature": zadarma_sign(stale)})
    assert answer.status_code == 401
    assert "freshness window" in answer.json()["error"]
    assert statuses(running) == []


def test_phone_intake_holds_unknown_callers_as_email_does(make_gateway, relay_sink: Sink,
                                                          tmp_path: Path) -> None:
    extra, http = hook_config(tmp_path)
    running: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http,
                                           intake="hold_unknown_senders = true\n")
    body = call("unknown-1", caller="+7 999 000-00-00", contact_email="stranger@nowhere.example")
    assert post_call(running.http_url, body, START).status_code == 202
    known = call("known-1", contact_email="ivan@acme.example")
    assert post_call(running.http_url, known, START).status_code == 202
    running.settle()
    [held, registered] = statuses(running)
    assert held[0] == "held" and "not a known customer" in str(held[1])
    assert registered[0] == "processed"
    assert len(list_tickets(running.gateway.db.engine)) == 1
    assert len(relay_sink.messages) == 1


def test_web_and_phone_intake_apply_the_rules_hold(make_gateway, relay_sink: Sink,
                                                   tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "review-lotteries"\n[rule.when]\n'
                     'subject_words = ["lottery"]\n[rule.then]\nhold = true\n',
                     encoding="utf-8")
    extra, http = hook_config(tmp_path, files=f'rules = "{rules}"\n')
    running: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    body = call("lottery-1", subject="You won the lottery", contact_email="ivan@acme.example")
    assert post_call(running.http_url, body, START).status_code == 202
    running.settle()
    [(status, outcome)] = statuses(running)
    assert status == "held" and "review-lotteries" in str(outcome)
    assert list_tickets(running.gateway.db.engine) == []
    assert relay_sink.messages == []
