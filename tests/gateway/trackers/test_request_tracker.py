"""The Request Tracker connector against a real RT 5 (Debian's packages) on loopback: tickets,
replies and priorities go in once, RT's resolutions come back, and neither a crash nor RT
being down loses or doubles anything."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from gateway.store.models import Ticket, TrackerLink
from gateway.trackers.connector import TrackerConnector
from gateway.trackers.handover import claim
from tests.conftest import RunningGateway, config_text, free_port
from tests.gateway.http.helpers import CUSTOMERS
from tests.gateway.outbox.test_outbox import submit
from tests.gateway.trackers.rt_server import RtServer
from tests.ops.daemon import count, start_daemon, wait_until

LOG_BYTES = b"2026-11-25 07:59:58 queue stuck: 1200 messages deferred\n"


def tracker_config(tmp_path: Path, rt: RtServer, queue: str, token: str | None = None,
                   timeout_s: float = 15, **extra: object) -> str:
    """The [[trackers]] table. A generous timeout: a fresh RT worker's first answer takes a
    few seconds on a busy machine (a timeout after RT did the work is retried and adopted,
    as the crash test shows, but the tests here want the first attempt to go through)."""
    token_file = tmp_path / "rt.token"
    token_file.write_text((token or rt.token) + "\n", encoding="utf-8")
    lines = ["[[trackers]]", 'name = "rt"', f'url = "{rt.url}"', f'queue = "{queue}"',
             f'token_file = "{token_file}"', f"timeout_s = {timeout_s}", "retry_base_s = 1",
             "retry_cap_s = 2", "poll_interval_s = 1"]
    for key, value in extra.items():
        shown = ("{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + "}"
                 if isinstance(value, dict) else json.dumps(value))
        lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


def request_mail(subject: str, body: str, *, attachment: bytes | None = None,
                 reply_to: str | None = None, message_id: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = "Ivan Petrov <ivan@acme.example>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = message_id or f"<{os.urandom(8).hex()}@acme.example>"
    if reply_to:
        message["In-Reply-To"] = reply_to
        message["References"] = reply_to
    message.set_content(body)
    if attachment is not None:
        message.add_attachment(attachment, maintype="text", subtype="plain",
                               filename="server.log")
    return message.as_bytes(policy=policy.SMTP)


def connector(running: RunningGateway) -> TrackerConnector:
    connectors = running.gateway.trackers
    assert len(connectors) == 1
    return connectors[0]


def link_of(running: RunningGateway, number: str) -> TrackerLink:
    with Session(running.gateway.db.engine) as session:
        link = session.get(TrackerLink, ("rt", number))
        assert link is not None, f"{number} was not handed over"
        return link


def our_ticket(running: RunningGateway, number: str = "SUP-000001") -> Ticket:
    with Session(running.gateway.db.engine) as session:
        ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
        session.expunge(ticket)
        return ticket


def history_types(rt: RtServer, remote_id: str) -> list[str]:
    found = rt.request("GET", f"ticket/{remote_id}/history",
                       params={"per_page": 100, "fields": "Type"})
    return [item["Type"] for item in found["items"]]


def with_marker(rt: RtServer, remote_id: str, marker: str) -> list[dict[str, Any]]:
    """The messages we posted carrying MARKER (not RT's own notices quoting the subject)."""
    return [a for a in rt.attachments(remote_id)
            if marker in (a.get("Subject") or "") and a["Subject"].startswith("[SUP-")]


def test_ticket_reply_priority_and_resolution_round_trip(make_gateway, rt_server: RtServer,
                                                         tmp_path: Path) -> None:
    """A registered ticket becomes one RT ticket in the queue (requester, our number in the
    subject, the customer's text, the attachment, the mapped priority, the resolution
    deadline as Due); a reply becomes correspondence with its file; a priority change moves
    RT's priority; RT's resolve, reopen and reject come back as our lifecycle events."""
    queue = rt_server.new_queue()
    priority_map = {"critical": 99, "high": 77, "medium": 55, "low": 11}
    running = make_gateway(extra=tracker_config(tmp_path, rt_server, queue,
                                                priority_map=priority_map))
    first_id = "<first@acme.example>"
    submit(running, request_mail("Mail queue is stuck", "Since 08:00 no mail leaves the "
                                 "relay; the log is attached.", attachment=LOG_BYTES,
                                 message_id=first_id))
    running.settle()
    ours = our_ticket(running)
    tickets = rt_server.tickets(queue)
    assert len(tickets) == 1, tickets
    remote_id = str(tickets[0]["id"])
    assert link_of(running, ours.number).remote_id == remote_id
    shown = rt_server.ticket(remote_id)
    assert shown["Subject"] == f"[{ours.number}] Mail queue is stuck"
    assert [r["id"] for r in shown["Requestor"]] == ["ivan@acme.example"]
    assert int(shown["Priority"]) == priority_map[ours.priority]
    assert ours.resolution_due is not None
    assert shown["Due"] == ours.resolution_due.strftime("%Y-%m-%dT%H:%M:%SZ")
    files = {a["Filename"]: a for a in rt_server.attachments(remote_id) if a["Filename"]}
    # A collection's fields carry the content as it is (one attachment's resource: base64).
    assert files["server.log"]["Content"].encode() == LOG_BYTES
    created = rt_server.attachments(remote_id)
    texts = [a["Content"] for a in created
             if a["ContentType"] == "text/plain" and not a["Filename"] and a.get("Content")]
    assert any("no mail leaves the relay" in t and "Resolution due:" in t for t in texts), texts

    submit(running, request_mail(f"Re: [{ours.number}] Mail queue is stuck",
                                 "It got worse: now nothing is delivered at all.",
                                 attachment=b"second log\n", reply_to=first_id))
    running.settle()
    link = link_of(running, ours.number)
    replies = with_marker(rt_server, remote_id, f"message {link.last_message_id})")
    assert replies, rt_server.attachments(remote_id)
    assert "Correspond" in history_types(rt_server, remote_id)
    assert any(a["Filename"] == "server.log" and a["Content"] == "second log\n"
               for a in rt_server.attachments(remote_id))
    assert len(rt_server.tickets(queue)) == 1

    running.call(lambda: running.gateway.ticket_event(ours.number, {
        "type": "priority_changed", "priority": "critical", "reason": "all mail stopped"}))
    running.settle()
    assert int(rt_server.ticket(remote_id)["Priority"]) == priority_map["critical"]

    rt_server.request("PUT", f"ticket/{remote_id}", json={"Status": "resolved"})
    running.call(connector(running).poll_once)
    assert our_ticket(running).status == "resolved"
    running.settle()  # our status_changed, made by RT, is not sent back as a change
    assert rt_server.ticket(remote_id)["Status"] == "resolved"

    rt_server.request("PUT", f"ticket/{remote_id}", json={"Status": "open"})
    running.call(connector(running).poll_once)
    assert our_ticket(running).status == "registered"

    rt_server.request("PUT", f"ticket/{remote_id}", json={"Status": "rejected"})
    running.call(connector(running).poll_once)
    assert our_ticket(running).status == "closed"
    # Seen again (the next look starts where this one ended): nothing happens twice.
    running.call(connector(running).poll_once)
    assert our_ticket(running).status == "closed"


def test_our_resolution_reaches_rt(make_gateway, rt_server: RtServer, tmp_path: Path) -> None:
    """A ticket resolved here (the API's lifecycle event) is resolved in RT too."""
    queue = rt_server.new_queue()
    running = make_gateway(extra=tracker_config(tmp_path, rt_server, queue))
    submit(running, request_mail("Backups fail", "The nightly backup job fails."))
    running.settle()
    remote_id = link_of(running, "SUP-000001").remote_id
    running.call(lambda: running.gateway.ticket_event("SUP-000001", {"type": "resolved"}))
    running.settle()
    assert rt_server.ticket(remote_id)["Status"] == "resolved"


def test_rt_resolution_waits_for_our_registration(make_gateway, rt_server: RtServer,
                                                  tmp_path: Path) -> None:
    """A request that came outside intake hours is in RT at once; resolved there while ours
    still waits for the intake window, it is resolved here when the window opens (and RT
    is not set back to open by our registration)."""
    queue = rt_server.new_queue()
    running = make_gateway(extra=tracker_config(tmp_path, rt_server, queue))
    running.clock.advance(timedelta(hours=10))  # 21:00 in Moscow: intake is closed
    submit(running, request_mail("Certificate expired", "The site's certificate expired."))
    running.settle()
    assert our_ticket(running).status == "pending_registration"
    remote_id = link_of(running, "SUP-000001").remote_id
    rt_server.request("PUT", f"ticket/{remote_id}", json={"Status": "resolved"})
    running.call(connector(running).poll_once)
    assert our_ticket(running).status == "pending_registration"
    running.clock.advance(timedelta(hours=14))  # 11:00 the next working day
    running.settle()
    assert our_ticket(running).status == "resolved"
    assert rt_server.ticket(remote_id)["Status"] == "resolved"


def test_crash_after_rt_create_makes_no_second_ticket(make_gateway, rt_server: RtServer,
                                                      tmp_path: Path) -> None:
    """The handover reaches RT but its commit never happens (a crash): when the lease runs
    out the retry finds the RT ticket by our number and adopts it; a reply posted before
    another lost commit is not posted twice."""
    queue = rt_server.new_queue()
    running = make_gateway(extra=tracker_config(tmp_path, rt_server, queue))
    tracker = connector(running)
    engine = running.gateway.db.engine
    first_id = "<crash@acme.example>"
    submit(running, request_mail("Printer on fire", "It is on fire.", message_id=first_id))
    running.loop.run(running.gateway.process_once())
    owed = claim(engine, "rt", running.clock.now(), tracker.lease)
    assert [o.event_type for o in owed] == ["ticket.registered"]
    # RT creates the ticket; the process dies before recording it.
    lost = running.call(lambda: tracker.hand_over(owed[0]))
    assert lost.error is None and len(rt_server.tickets(queue)) == 1
    running.clock.advance(tracker.lease + timedelta(seconds=1))
    running.settle()
    tickets = rt_server.tickets(queue)
    assert len(tickets) == 1, tickets
    assert link_of(running, "SUP-000001").remote_id == str(tickets[0]["id"])

    submit(running, request_mail("Re: [SUP-000001] Printer on fire", "Now the paper too.",
                                 reply_to=first_id))
    running.loop.run(running.gateway.process_once())
    owed = claim(engine, "rt", running.clock.now(), tracker.lease)
    assert [o.event_type for o in owed] == ["ticket.message_added"]
    lost = running.call(lambda: tracker.hand_over(owed[0]))
    assert lost.error is None and lost.link is not None
    running.clock.advance(tracker.lease + timedelta(seconds=1))
    running.settle()
    marker = f"message {lost.link['last_message_id']})"
    assert len(with_marker(rt_server, str(tickets[0]["id"]), marker)) == 1
    assert link_of(running, "SUP-000001").last_message_id == lost.link["last_message_id"]


def test_refused_credentials_are_shown_and_retried(make_gateway, rt_server: RtServer,
                                                   tmp_path: Path) -> None:
    """A token RT refuses: the handover waits (retried with backoff), /readyz names the
    failing tracker without the token, /metrics shows it disconnected with a backlog."""
    queue = rt_server.new_queue()
    wrong = "1-99-0123456789abcdef0123456789abcdef"
    running = make_gateway(extra=tracker_config(tmp_path, rt_server, queue, token=wrong))
    submit(running, request_mail("Disk full", "The disk is full."))
    running.settle()
    assert rt_server.tickets(queue) == []
    ready = httpx.get(f"{running.http_url}/readyz", timeout=10)
    assert ready.status_code == 200
    body = ready.json()
    assert body["trackers"][0]["connected"] is False
    assert "refused the credentials" in body["warnings"][0]
    assert wrong not in ready.text
    metrics = httpx.get(f"{running.http_url}/metrics", timeout=10).text
    assert 'intake_tracker_connected{tracker="rt"} 0.0' in metrics
    assert 'intake_tracker_backlog{kind="retrying",tracker="rt"} 1.0' in metrics


def _smtp_ready(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5):
            return True
    except OSError:
        return False


def _http(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5, trust_env=False)
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rt_down_and_daemon_killed_lose_nothing(database_url: str, rt_server: RtServer,
                                               tmp_path: Path) -> None:
    """RT is down when the ticket is registered: /readyz and /metrics show it while the
    handover is retried; the daemon is killed meanwhile; once RT and the daemon are back
    the ticket is in RT exactly once, and RT's resolution comes back within the poll
    interval."""
    queue = rt_server.new_queue()
    smtp_port, http_port = free_port(), free_port()
    path = tmp_path / "config.toml"
    # Acme's tier takes requests around the clock: the ticket is registered at once,
    # whatever the hour the test runs at.
    (tmp_path / "customers.toml").write_text(CUSTOMERS, encoding="utf-8")
    path.write_text(config_text(database_url, tmp_path / "state", smtp_port,
                                http_port=http_port, intake="workers = 0\n",
                                extra=f'[files]\ncustomers = "{tmp_path / "customers.toml"}"\n')
                    # A short timeout keeps the lease (10 x timeout + 5 s) of a handover
                    # interrupted by the kill within the test's patience.
                    + tracker_config(tmp_path, rt_server, queue, timeout_s=5),
                    encoding="utf-8")
    log = tmp_path / "daemon.log"
    base = f"http://127.0.0.1:{http_port}"
    rt_server.stop()
    daemon = start_daemon(path, log)
    try:
        wait_until(lambda: _smtp_ready(smtp_port), 120)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail("ivan@acme.example", ["support@example.com"],
                            request_mail("VPN down", "Nobody can connect to the VPN."))

        def failing_shown() -> bool:
            ready = _http(f"{base}/readyz")
            metrics = _http(f"{base}/metrics")
            return (ready is not None and "tracker rt failing" in ready.text
                    and metrics is not None
                    and 'intake_tracker_backlog{kind="retrying",tracker="rt"} 1.0'
                    in metrics.text)

        wait_until(failing_shown, 60)
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(30)
        rt_server.start()
        daemon = start_daemon(path, log)
        wait_until(lambda: count(database_url, "SELECT count(*) FROM tracker_links") == 1, 120)
        tickets = rt_server.tickets(queue)
        assert len(tickets) == 1, tickets
        wait_until(lambda: 'intake_tracker_connected{tracker="rt"} 1.0' in (
            getattr(_http(f"{base}/metrics"), "text", "")), 30)
        rt_server.request("PUT", f"ticket/{tickets[0]['id']}", json={"Status": "resolved"})
        # poll_interval_s = 1: well within a minute, with room for a busy machine.
        wait_until(lambda: count(database_url, "SELECT count(*) FROM tickets "
                                 "WHERE status = 'resolved'") == 1, 30)
    except BaseException:
        print(log.read_text(errors="replace")[-6000:])
        raise
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
        if rt_server.process is None:
            rt_server.start()
    assert len(rt_server.tickets(queue)) == 1
    assert count(database_url, "SELECT count(*) FROM deliveries WHERE status <> 'delivered'") == 0
