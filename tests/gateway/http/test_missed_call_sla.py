"""A missed call is an SLA request: a reaction deadline, an at-risk alert, the SLA report."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx

from gateway.sla.report import ReportQuery, build_report
from tests.conftest import RunningGateway, Sink
from tests.gateway.http.helpers import hook_config
from tests.gateway.http.test_russian_pbx import SIPUNI_KEY, russian_hooks, sipuni_end
from tests.gateway.sla.test_sla_clock import body, outbox
from tests.gateway.tickets.test_ticket_events import POLICY

# A Premium customer with a phone on file and no e-mail address: nobody can be acknowledged.
PREMIUM = """
[[customer]]
id = "initech"
name = "Initech"
tier = "premium"
phones = ["+7 916 222 33 44"]
"""


def _report_row(running: RunningGateway) -> tuple[int, int]:
    report = build_report(running.gateway.db.engine, running.gateway.context.policy,
                          ReportQuery(date(2026, 11, 25), date(2026, 11, 25)),
                          running.clock.now())
    [row] = report.rows
    return row.reaction_met, row.reaction_missed


def _start(make_gateway, relay_sink: Sink, tmp_path: Path) -> RunningGateway:
    (tmp_path / "policy.toml").write_text(POLICY, encoding="utf-8")
    extra, http = hook_config(tmp_path, russian_hooks(tmp_path), customers=PREMIUM,
                              files=f'policy = "{tmp_path / "policy.toml"}"\n')
    running: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    return running


def _missed(running: RunningGateway, call_id: str) -> None:
    answer = httpx.get(f"{running.http_url}/hooks/sipuni",
                       params={**sipuni_end(call_id, "NOANSWER", src_num="79162223344"),
                               "key": SIPUNI_KEY})
    assert answer.status_code == 200, answer.text
    running.settle()


def test_missed_premium_call_alerts_and_counts_late(make_gateway, relay_sink: Sink,
                                                    tmp_path: Path) -> None:
    """No acknowledgement can go out, yet the reaction clock runs: at half of it the duty
    address is told to call back, once; never called back, the report counts a miss."""
    running = _start(make_gateway, relay_sink, tmp_path)
    _missed(running, "p-1")
    assert outbox(running) == []
    running.clock.advance(timedelta(minutes=8))
    running.settle()
    [alert] = outbox(running)
    assert (alert.kind, alert.recipient) == ("alert", "duty@support.example")
    text = body(alert)
    assert "call the customer back at +79162223344" in text
    running.clock.advance(timedelta(minutes=5))
    running.settle()
    assert len(outbox(running)) == 1
    running.clock.advance(timedelta(hours=1))
    assert _report_row(running) == (0, 1)


def test_call_back_is_the_reaction(make_gateway, relay_sink: Sink, tmp_path: Path) -> None:
    """Our call back, answered within the reaction time, meets it; no alert follows."""
    running = _start(make_gateway, relay_sink, tmp_path)
    _missed(running, "p-2")
    running.clock.advance(timedelta(minutes=5))
    back = {**sipuni_end("p-3", "ANSWER", src_num="101", src_type="2", dst_num="79162223344",
                         dst_type="1")}
    assert httpx.get(f"{running.http_url}/hooks/sipuni",
                     params={**back, "key": SIPUNI_KEY}).status_code == 200
    running.settle()
    running.clock.advance(timedelta(minutes=30))
    running.settle()
    assert outbox(running) == []
    assert _report_row(running) == (1, 0)
