"""The acknowledgement-at-risk alert goes out through [alerts], not the relay that fails."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import (
    SessionsController,
    Sink,
    SinkHandler,
    free_port,
    make_mail,
    stop_controller,
)
from tests.gateway.outbox.test_outbox import submit
from tests.gateway.sla.test_sla_clock import CUSTOMERS, outbox
from tests.gateway.tickets.test_ticket_events import MEDIUM_BODY, POLICY


@pytest.fixture
def alert_sink() -> Iterator[Sink]:
    """A second relay on loopback, for alerts only."""
    handler = SinkHandler()
    port = free_port()
    controller = SessionsController(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Sink(handler, port)
    finally:
        stop_controller(controller)


def test_at_risk_alert_bypasses_the_failing_relay(make_gateway, tmp_path: Path,
                                                 relay_sink: Sink, alert_sink: Sink) -> None:
    """With the customers' relay answering 451 to everything, the duty address still gets the
    alert, through the [alerts] relay, naming every request at risk."""
    relay_sink.handler.replies = ["451 4.3.0 try later"] * 100
    (tmp_path / "customers.toml").write_text(CUSTOMERS, encoding="utf-8")
    (tmp_path / "policy.toml").write_text(POLICY, encoding="utf-8")
    running = make_gateway(relay_port=relay_sink.port, extra=(
        f'[files]\ncustomers = "{tmp_path / "customers.toml"}"\n'
        f'policy = "{tmp_path / "policy.toml"}"\n\n'
        f'[alerts]\nfrom = "Intake alerts <alerts@support.example>"\nhost = "127.0.0.1"\n'
        f'port = {alert_sink.port}\nsecurity = "none"\ntimeout_s = 5\n'))
    for subject in ("Metrics dashboard", "Metrics export"):
        submit(running, make_mail(subject, body=MEDIUM_BODY))
    running.settle()
    running.clock.advance(timedelta(minutes=31))
    running.settle()
    assert len(alert_sink.messages) == 2
    subjects = sorted(str(m["Subject"]) for m in alert_sink.messages)
    assert all("ACK AT RISK" in s for s in subjects)
    assert {str(m["X-Envelope-To"]) for m in alert_sink.messages} == {"duty@support.example"}
    first = alert_sink.messages[0].get_body(("plain",))
    assert first is not None
    text = str(first.get_content())
    assert "SUP-000001" in text and "SUP-000002" in text and "451" in text
    # The customers' relay took nothing; the acknowledgements wait for it.
    assert relay_sink.messages == []
    assert sorted(o.status for o in outbox(running) if o.kind == "acknowledgement") == [
        "pending", "pending"]
