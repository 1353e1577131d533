"""The event feed: every change of a ticket or input, in its commit, by API, long poll and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.store.feed import read_events
from gateway.tickets.lifecycle import EventRefused
from tests.conftest import RunningGateway, make_mail
from tests.gateway.http.helpers import admin, hook_config
from tests.gateway.http.test_providers import pbx_hooks, zammad
from tests.gateway.outbox.test_outbox import submit


def started(make_gateway: Callable[..., RunningGateway], tmp_path: Path,
            intake: str = "", hooks: str = "") -> RunningGateway:
    extra, http = hook_config(tmp_path, hooks)
    return make_gateway(extra=extra, http=http, intake=intake)


def feed(running: RunningGateway, after: int = 0) -> list[dict[str, Any]]:
    return read_events(running.gateway.db.engine, after, 1000)


def types(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["ticket_number"]) for e in events]


def test_lifecycle_of_a_ticket_is_in_the_feed_with_its_json(make_gateway,
                                                            tmp_path: Path) -> None:
    """Registration, acknowledgement, a reply, priority and status changes and the SLA
    thresholds each add one event carrying the ticket's JSON as it was then."""
    running = started(make_gateway, tmp_path)
    submit(running, make_mail("Dashboard slow", message_id="<first@acme.example>",
                              body="The metrics dashboard is slow to update for us."))
    running.settle()
    events = feed(running)
    assert types(events) == [("ticket.registered", "SUP-000001"),
                             ("sla.acknowledged", "SUP-000001")]
    registered = events[0]
    assert registered["ticket"]["number"] == "SUP-000001"
    assert registered["ticket"]["acknowledged_at"] is None
    assert registered["at"] and registered["id"] < events[1]["id"]
    assert events[1]["ticket"]["acknowledged_at"] is not None

    submit(running, make_mail("Re: [SUP-000001] Dashboard slow",
                              body="Also the export page does not open."))
    running.settle()
    running.call(lambda: running.gateway.ticket_event("SUP-000001", {
        "type": "priority_changed", "priority": "critical", "reason": "everyone is affected",
        "actor": "engineer-1"}))
    # Refused changes leave nothing in the feed: the event is part of the change's commit.
    last = feed(running)[-1]["id"]
    with pytest.raises(EventRefused):
        running.call(lambda: running.gateway.ticket_event("SUP-000001", {
            "type": "reopened"}))
    assert feed(running, last) == []
    # Past the resolution deadline: the thresholds (75 %, 100 %) are reached.
    running.clock.advance(timedelta(days=3))
    running.settle()
    running.call(lambda: running.gateway.ticket_event("SUP-000001", {"type": "resolved"}))
    later = feed(running, events[-1]["id"])
    assert [t for t, _ in types(later)] == [
        "ticket.message_added", "ticket.priority_changed", "sla.breached",
        "ticket.status_changed"]
    assert later[1]["details"]["to"] == "critical"
    assert later[1]["ticket"]["priority"] == "critical"
    assert later[2]["details"]["deadline"] == "resolution"
    assert later[3]["details"] == {"actor": None, "reason": None,
                                   "status_before": "registered"}
    assert later[3]["ticket"]["status"] == "resolved"


def test_quarantine_and_missed_calls_are_events(make_gateway, tmp_path: Path) -> None:
    """A held input and a missed call are events; the missed call's ticket comes with it."""
    running = started(make_gateway, tmp_path, intake="hold_unknown_senders = true\n",
                      hooks=pbx_hooks(tmp_path))
    submit(running, make_mail("Hello", sender="Stranger <who@nowhere.example>"))
    running.settle()
    # A customer's number calls, hangs up unanswered: a call-back ticket.
    fields = {"from": "84951234567", "to": "74950000000", "direction": "in", "callId": "z-1"}
    assert zammad(running, event="newCall", **fields).status_code == 202
    assert zammad(running, event="hangup", cause="cancel", **fields).status_code == 202
    running.settle()
    events = feed(running)
    quarantined = [e for e in events if e["type"] == "input.quarantined"]
    assert len(quarantined) == 1 and quarantined[0]["details"]["status"] == "held"
    assert quarantined[0]["ticket"] is None and quarantined[0]["input_id"]
    missed = [e for e in events if e["type"] == "call.missed"]
    assert len(missed) == 1 and missed[0]["ticket"]["channel"] == "phone"


def test_api_pages_by_id_and_long_polls(make_gateway, tmp_path: Path) -> None:
    """GET /events?after=ID gives what follows ID; with wait= it answers as soon as an event
    is written, and after the wait with none."""
    running = started(make_gateway, tmp_path)
    base = running.http_url
    empty = httpx.get(f"{base}/api/v1/events?after=0&wait=0.5", headers=admin(), timeout=30)
    assert empty.json() == {"events": [], "next_after": 0}

    answers: list[httpx.Response] = []
    poller = threading.Thread(target=lambda: answers.append(httpx.get(
        f"{base}/api/v1/events?after=0&wait=30", headers=admin(), timeout=60)))
    began = time.monotonic()
    poller.start()
    submit(running, make_mail())
    running.settle()
    poller.join(60)
    assert answers and answers[0].status_code == 200
    assert time.monotonic() - began < 25
    first = answers[0].json()
    assert first["events"][0]["type"] == "ticket.registered"
    rest = httpx.get(f"{base}/api/v1/events?after={first['next_after']}", headers=admin(),
                     timeout=30).json()
    assert all(e["id"] > first["next_after"] for e in rest["events"])
    assert httpx.get(f"{base}/api/v1/events?after=-1", headers=admin(),
                     timeout=30).status_code == 422
    assert httpx.get(f"{base}/api/v1/events", timeout=30).status_code == 401


def test_cli_prints_and_follows_the_feed(make_gateway, tmp_path: Path) -> None:
    """`events` prints one line per event in local time; `--json` one object per line;
    `--follow` prints events written after it started."""
    running = started(make_gateway, tmp_path)
    submit(running, make_mail())
    running.settle()
    config = running.state.parent / "config0.toml"
    command = [sys.executable, "-m", "gateway", "--config", str(config), "events"]
    text = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "2026-11-25 11:00 MSK  ticket.registered" in text.stdout
    lines = subprocess.run([*command, "--json"], capture_output=True, text=True,
                           timeout=120).stdout.splitlines()
    last = json.loads(lines[-1])["id"]

    with subprocess.Popen([*command, "--json", "--follow", "--after", str(last)],
                          stdout=subprocess.PIPE, text=True) as follower:
        # Should it never print, the read below ends (empty) instead of hanging the suite.
        watchdog = threading.Timer(90, follower.kill)
        watchdog.start()
        submit(running, make_mail("Second request"))
        running.settle()
        assert follower.stdout is not None
        line = follower.stdout.readline()  # blocks until the follower prints
        event = json.loads(line)
        assert event["id"] > last and event["type"] == "ticket.registered"
        assert event["ticket"]["subject"] == "Second request"
        watchdog.cancel()
        follower.terminate()
