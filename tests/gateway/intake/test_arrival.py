"""Deadlines start at arrival: per channel, stored on the input, whenever it is processed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from gateway.daemon.context_files import build_context
from gateway.intake.door import IncomingInput, arrival, store_inputs
from gateway.sla.deadlines import deadlines
from gateway.tickets.processing import process_pending
from gateway.tickets.view import list_tickets
from tests.conftest import START, RunningGateway, Sink, config_text, free_port, make_mail
from tests.dovecot import Dovecot, dovecot_fixture  # noqa: F401 (fixture)
from tests.gateway.cli.test_cli import cli
from tests.gateway.http.helpers import call, hook_config, post_call
from tests.gateway.tickets.test_processing import _dispose_engines, setup  # noqa: F401

Z = "%Y-%m-%dT%H:%M:%SZ"


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime(Z)


def due_from(at: datetime, priority: str, request_type: str, tier: str = "8/5") -> dict[str, str]:
    expected = deadlines(at, tier, priority, request_type)
    return {"reaction_due": iso(expected.reaction_due),
            "resolution_due": iso(expected.resolution_due)}


def clocks(ticket: dict[str, object]) -> dict[str, object]:
    return {k: ticket[k] for k in ("received_at", "registered_at", "reaction_due",
                                   "resolution_due")}


def test_arrival_is_capped_at_the_commit_and_bounded_in_age() -> None:
    now = START
    assert arrival(None, now) is None
    assert arrival(now - timedelta(hours=2), now) == now - timedelta(hours=2)
    assert arrival(now + timedelta(hours=1), now) == now  # a server clock ahead gains nothing
    assert arrival(datetime(2026, 11, 25, 7, 0), now) == datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    assert arrival(now - timedelta(days=2), now, timedelta(days=1)) is None


def test_backlog_processed_hours_later_keeps_the_clocks_of_arrival(database_url: str,
                                                                   tmp_path: Path) -> None:
    """A mail committed at 11:00 Moscow and processed at 14:00 is due as of 11:00."""
    engine, loaded, clock = setup(database_url, tmp_path)
    store_inputs(engine, [IncomingInput("email", make_mail())], clock)
    clock.advance(timedelta(hours=3))
    process_pending(engine, build_context(loaded, clock), 10)
    [ticket] = list_tickets(engine)
    assert clocks(ticket) == {"received_at": iso(START), "registered_at": iso(START),
                              **due_from(START, str(ticket["priority"]),
                                         str(ticket["request_type"]))}


def test_imap_internaldate_two_hours_back_starts_the_clocks(dovecot: Dovecot, relay_sink: Sink,
                                                            make_gateway) -> None:
    """APPENDed with an INTERNALDATE two hours before the fetch: received, registered and
    due as of that INTERNALDATE; one in the future counts as the fetch."""
    running: RunningGateway = make_gateway(relay_port=relay_sink.port,
                                           extra=dovecot.mailbox_config())
    fetch_at = START + timedelta(hours=4)  # 15:00 Moscow, a Wednesday
    running.clock.set(fetch_at)
    arrived = fetch_at - timedelta(hours=2)
    with dovecot.client() as client:
        client.append("INBOX", make_mail("earlier", message_id="<early@acme.example>"),
                      msg_time=arrived)
        client.append("INBOX", make_mail("ahead", message_id="<ahead@acme.example>"),
                      msg_time=fetch_at + timedelta(days=1))
    running.call(running.gateway.mailboxes[0].poll_once)
    running.settle()
    by_subject = {t["subject"]: t for t in list_tickets(running.gateway.db.engine)}
    early, ahead = by_subject["earlier"], by_subject["ahead"]
    assert clocks(early) == {"received_at": iso(arrived), "registered_at": iso(arrived),
                             **due_from(arrived, str(early["priority"]),
                                        str(early["request_type"]))}
    assert ahead["received_at"] == iso(fetch_at)


def test_call_event_time_is_its_arrival_capped_at_the_commit(make_gateway, relay_sink: Sink,
                                                             tmp_path: Path) -> None:
    """A call that started 20 minutes before the hook's commit is received then; a call
    claiming the future, or a time days back, is received at the commit."""
    extra, http = hook_config(tmp_path)
    running: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    started = START - timedelta(minutes=20)
    for call_id, at in (("c-past", started), ("c-future", START + timedelta(hours=1)),
                        ("c-old", START - timedelta(days=3))):
        response = post_call(running.http_url, call(call_id, started_at=iso(at),
                                                    subject=call_id), START)
        assert response.status_code == 202, response.text
    running.settle()
    received = {t["subject"]: t["received_at"] for t in list_tickets(running.gateway.db.engine)}
    assert received == {"c-past": iso(started), "c-future": iso(START), "c-old": iso(START)}


def test_ingest_uses_a_sane_date_header_and_acknowledges_only_when_asked(
        database_url: str, tmp_path: Path) -> None:
    """`ingest`: a Date an hour back is the arrival, one years back or missing is the import
    time; nothing is acknowledged unless --acknowledge."""
    config = tmp_path / "config.toml"
    config.write_text(config_text(database_url, tmp_path / "state", free_port()),
                      encoding="utf-8")
    before = datetime.now(UTC).replace(microsecond=0)
    hour_back = before - timedelta(hours=1)
    for name, date in (("recent", hour_back), ("ancient", before - timedelta(days=3000))):
        (tmp_path / f"{name}.eml").write_bytes(
            make_mail(name, headers={"Date": format_datetime(date)}))
    (tmp_path / "undated.eml").write_bytes(make_mail("undated"))
    result = cli("ingest", *(str(tmp_path / f"{n}.eml") for n in ("recent", "ancient",
                                                                   "undated")), config=config)
    assert "0 message(s) sent" in result.stdout
    tickets = {t["subject"]: t for t in json.loads(
        cli("tickets", "list", "--json", config=config).stdout)}
    assert tickets["recent"]["received_at"] == iso(hour_back)
    after = datetime.now(UTC)
    for name in ("ancient", "undated"):
        at = datetime.fromisoformat(str(tickets[name]["received_at"]).replace("Z", "+00:00"))
        assert before - timedelta(seconds=1) <= at <= after
    assert all(t["acknowledged_at"] is None for t in tickets.values())
    (tmp_path / "asked.eml").write_bytes(make_mail("asked"))
    asked = cli("ingest", "--acknowledge", str(tmp_path / "asked.eml"), config=config)
    assert "1 message(s) sent" in asked.stdout

