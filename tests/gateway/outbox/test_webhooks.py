"""Outbound webhooks against a real subscriber on loopback: signed, retried, in order per
ticket, dead letters and redelivery, and nothing lost when the daemon is killed mid-send."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.store.feed import read_events
from tests.conftest import RunningGateway, config_text, free_port, make_mail
from tests.gateway.outbox.test_outbox import submit
from tests.gateway.outbox.webhook_receiver import SECRET, Receiver, subscription
from tests.ops.daemon import count, start_daemon, wait_until


def config(tmp_path: Path, url: str, **extra: object) -> str:
    secret = tmp_path / "subscriber.secret"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    return subscription("tracker", url, str(secret), **extra)


def settle_until(running: RunningGateway, done: Callable[[], bool], rounds: int = 40) -> None:
    """Run the pipeline, an hour of the manual clock apart, until DONE (retries fall due)."""
    for _ in range(rounds):
        running.settle()
        if done():
            return
        running.clock.advance(timedelta(hours=1))
    raise AssertionError("not done after the retries")


def check_order(receiver: Receiver) -> None:
    """Each ticket's events first arrived in the feed's order."""
    seen: dict[str, list[int]] = {}
    for received in receiver.log:
        data = received.event["data"]
        if data["ticket_number"] and data["id"] not in seen.get(data["ticket_number"], []):
            seen.setdefault(data["ticket_number"], []).append(data["id"])
    for ids in seen.values():
        assert ids == sorted(ids), seen


def test_every_event_arrives_signed_through_failures_in_order(make_gateway,
                                                              tmp_path: Path) -> None:
    """Down, then 500, a timeout and a redirect: each event is retried until the subscriber
    says 2xx; every request verifies by the spec; per ticket the order holds; the event
    filter is applied."""
    receiver = Receiver(free_port(), stall_s=2.5)  # not listening yet: connection refused
    events = ["ticket.registered", "ticket.message_added", "sla.acknowledged"]
    running = make_gateway(extra=config(tmp_path, receiver.url, events=events, timeout_s=1,
                                        retry_base_s=1))
    submit(running, make_mail("First", message_id="<one@acme.example>"))
    submit(running, make_mail("Second", message_id="<two@acme.example>"))
    running.settle()
    submit(running, make_mail("Re: [SUP-000001] First", body="More details about it."))
    running.settle()
    wanted = [e["id"] for e in read_events(running.gateway.db.engine) if e["type"] in events]
    assert len(wanted) == 5
    running.clock.advance(timedelta(hours=1))
    running.settle()  # every first attempt: connection refused
    assert receiver.log == []

    receiver.script = ["500", "stall", "redirect", "500"]
    receiver.start()
    try:
        settle_until(running, lambda: set(receiver.delivered_ids()) >= set(wanted))
    finally:
        receiver.stop()
    assert all(r.signed for r in receiver.log)
    assert {r.event["type"] for r in receiver.log} <= set(events)
    assert {r.webhook_id for r in receiver.log} == {f"evt_{i}" for i in wanted}
    check_order(receiver)
    first = next(r for r in receiver.log if r.event["data"]["type"] == "ticket.registered")
    assert first.event["data"]["ticket"]["number"] in ("SUP-000001", "SUP-000002")


def cli(running: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    path = running.state.parent / "config0.toml"
    return subprocess.run([sys.executable, "-m", "gateway", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=120)


def test_dead_letter_is_visible_and_redelivered(make_gateway, tmp_path: Path) -> None:
    """After the last attempt a delivery is dead (listed with its error); `events redeliver
    --dead` and `events redeliver ID` send it again."""
    receiver = Receiver(free_port(), default="500")
    receiver.start()
    try:
        running = make_gateway(extra=config(tmp_path, receiver.url, max_attempts=2,
                                            events=["ticket.registered"], retry_base_s=1))
        submit(running, make_mail())
        settle_until(running, lambda: len(receiver.log) >= 2)
        running.clock.advance(timedelta(hours=1))
        running.settle()
        assert len(receiver.log) == 2
        dead = cli(running, "events", "deliveries", "--dead")
        assert "dead" in dead.stdout and "HTTP 500" in dead.stdout, dead.stderr

        receiver.default = "ok"
        assert cli(running, "events", "redeliver", "--dead").returncode == 0
        # The command queues for the real now; the gateway's manual clock catches up.
        running.clock.set(datetime.now(UTC) + timedelta(minutes=1))
        running.settle()
        assert receiver.log[-1].answered == "ok" and len(receiver.log) == 3
        event_id = receiver.log[-1].event["data"]["id"]
        again = cli(running, "events", "redeliver", str(event_id))
        assert again.returncode == 0, again.stderr
        running.clock.set(datetime.now(UTC) + timedelta(minutes=1))
        running.settle()
        assert [r.webhook_id for r in receiver.log[-2:]] == [f"evt_{event_id}"] * 2
        assert cli(running, "events", "redeliver", "999999").returncode == 1
        assert cli(running, "events", "redeliver").returncode == 2
    finally:
        receiver.stop()


def test_bad_subscription_config_is_refused(tmp_path: Path) -> None:
    """A secret not in whsec_ form, an unknown event or a non-HTTP URL: check-config exits 2
    naming the key, never echoing the secret."""
    bad_secret = tmp_path / "bad.secret"
    bad_secret.write_text("plain-password-123", encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(config_text("sqlite://", tmp_path, free_port()) + subscription(
        "tracker", "ftp://example.com/x", str(bad_secret), events=["ticket.exploded"]),
        encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "gateway", "--config", str(path),
                             "check-config"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "subscriptions" in result.stderr and "url" in result.stderr
    assert "ticket.exploded" in result.stderr and "whsec_" in result.stderr
    assert "plain-password-123" not in result.stderr


@pytest.mark.timeout(300)
def test_daemon_killed_mid_delivery_loses_nothing(database_url: str, tmp_path: Path) -> None:
    """The subscriber holds the first delivery open; the daemon is SIGKILLed then; after a
    restart every event arrives (the interrupted one again, under the same webhook-id)."""
    receiver = Receiver(free_port(), script=["hang"])
    receiver.start()
    smtp_port = free_port()
    path = tmp_path / "config.toml"
    path.write_text(config_text(database_url, tmp_path / "state", smtp_port, intake="workers = 0\n")
                    + config(tmp_path, receiver.url, timeout_s=2,
                             events=["ticket.registered"]), encoding="utf-8")
    log = tmp_path / "daemon.log"
    daemon = start_daemon(path, log)
    try:
        wait_until(lambda: _smtp_ready(smtp_port), 120)
        for n in range(3):
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
                client.sendmail("ivan@acme.example", ["support@example.com"],
                                make_mail(f"Request {n}"))
        receiver.wait_for(lambda: len(receiver.log) >= 1, 120)
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(120)
        receiver.release.set()
        daemon = start_daemon(path, log)
        wait_until(lambda: count(database_url, "SELECT count(*) FROM feed_events "
                                 "WHERE type = 'ticket.registered'") == 3, 120)
        receiver.wait_for(lambda: {r.event["data"]["id"] for r in receiver.log
                                   if r.answered == "ok"} >= _registered(database_url), 120)
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(60)
        receiver.stop()
    assert all(r.signed for r in receiver.log)
    ids = [r.webhook_id for r in receiver.log]
    assert ids.count(ids[0]) >= 2, ids  # the interrupted one came again
    assert count(database_url, "SELECT count(*) FROM deliveries "
                 "WHERE status <> 'delivered'") == 0


def _registered(url: str) -> set[int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {int(i) for i in connection.execute(text(
                "SELECT id FROM feed_events WHERE type = 'ticket.registered'")).scalars()}
    finally:
        engine.dispose()


def _smtp_ready(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5):
            return True
    except OSError:
        return False
