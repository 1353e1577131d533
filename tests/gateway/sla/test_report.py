"""The SLA report: counts per customer, tier, priority and type; formats; HTML in Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from gateway.sla.policy import seed_policy
from gateway.sla.report import ReportQuery, SlaReport, build_report
from gateway.sla.report_render import render_text
from gateway.store.db import make_engine, migrate
from gateway.store.models import REACTION_MET, RESOLUTION_MET, Ticket
from gateway.tickets.registration import report_day

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DAY = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)


def add_tickets(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Insert tickets the way registration and the SLA clock leave them."""
    values = []
    for index, row in enumerate(rows, start=1):
        received = row.pop("received_at", DAY)
        row.setdefault("report_day", report_day(received, seed_policy()))
        row.setdefault("sla_outcome", outcome(received, row))
        values.append({
            "number": f"SUP-{index:06d}", "channel": "email", "status": "registered",
            "customer_id": "acme", "tier": "8/5", "request_type": "incident",
            "priority": "high", "subject": "s", "received_at": received,
            "registered_at": received, "reaction_due": received + H,
            "resolution_due": received + 8 * H, "acknowledged_at": None, "resolved_at": None,
            "reasons": "[]", "notes": "[]", **row})
    with engine.begin() as connection:
        connection.execute(insert(Ticket.__table__), values)  # type: ignore[attr-defined]


def outcome(received: datetime, row: dict[str, Any]) -> int:
    """The sla_outcome bits the outbox (acknowledgement) and lifecycle (resolution) set."""
    bits = 0
    if (acknowledged := row.get("acknowledged_at")) is not None:
        bits |= REACTION_MET if acknowledged <= row.get("reaction_due", received + H) else 2
    if (resolved := row.get("resolved_at")) is not None:
        bits |= RESOLUTION_MET if resolved <= row.get("resolution_due", received + 8 * H) else 8
    return bits


@pytest.fixture
def report(database_url: str) -> SlaReport:
    engine = make_engine(database_url)
    migrate(engine)
    add_tickets(engine, [
        # Within SLA: acknowledged and resolved in time.
        {"acknowledged_at": DAY + timedelta(seconds=5), "resolved_at": DAY + 2 * H,
         "status": "resolved"},
        # A late acknowledgement is a reaction miss, even though it was resolved in time.
        {"acknowledged_at": DAY + 2 * H, "resolved_at": DAY + 3 * H, "status": "closed"},
        # Open past its resolution deadline.
        {"acknowledged_at": DAY + timedelta(minutes=1)},
        # 24/7 critical, received at 01:30 Moscow time on the 26th; open, not due yet.
        {"customer_id": "night", "tier": "24/7", "priority": "critical",
         "received_at": datetime(2026, 11, 25, 22, 30, tzinfo=UTC),
         "acknowledged_at": datetime(2026, 11, 25, 22, 31, tzinfo=UTC),
         "resolution_due": NOW + H},
        # Waiting for the intake window: nothing decided yet.
        {"status": "pending_registration", "priority": "low", "request_type": "consultation",
         "received_at": NOW - H, "reaction_due": NOW + H, "resolution_due": NOW + 40 * H},
        # Before the period: not counted.
        {"received_at": datetime(2026, 11, 20, 8, 0, tzinfo=UTC)},
    ])
    built = build_report(engine, seed_policy(), ReportQuery(date(2026, 11, 24),
                                                            date(2026, 11, 27)), NOW)
    engine.dispose()
    return built


def test_counts_per_group_and_day(report: SlaReport) -> None:
    """Reaction and resolution met among decided tickets, open breached, against 90 %."""
    rows = {(r.customer, r.tier, r.priority, r.request_type): r.as_json() for r in report.rows}
    assert list(rows) == [("acme", "8/5", "high", "incident"),
                          ("acme", "8/5", "low", "consultation"),
                          ("night", "24/7", "critical", "incident")]
    high = rows[("acme", "8/5", "high", "incident")]
    assert (high["requests"], high["reaction_met"], high["reaction_missed"]) == (3, 2, 1)
    assert (high["resolution_met"], high["resolution_missed"], high["open_breached"]) == (2, 1, 1)
    # Shares are cut, never rounded up: a report must not claim more than was met.
    assert (high["reaction_met_pct"], high["resolution_met_pct"]) == (66.6, 66.6)
    assert (high["within"], high["breached"], high["within_sla"]) == (1, 2, "33.33%")
    assert (high["target_pct"], high["meets_target"]) == (90.0, False)
    pending = rows[("acme", "8/5", "low", "consultation")]
    assert (pending["requests"], pending["reaction_met_pct"], pending["meets_target"]) == (
        1, None, None)
    night = rows[("night", "24/7", "critical", "incident")]
    # Reaction met, resolution not due yet: not decided, so no verdict.
    assert (night["reaction_met_pct"], night["resolution_met_pct"], night["meets_target"]) == (
        100.0, None, None)
    assert report.total.requests == 5
    daily = report.as_json()["daily"]
    assert daily == [
        {"day": "2026-11-24", "within": 0, "breached": 0, "share_pct": None},
        {"day": "2026-11-25", "within": 1, "breached": 2, "share_pct": 33.3},
        {"day": "2026-11-26", "within": 0, "breached": 0, "share_pct": None},
        {"day": "2026-11-27", "within": 0, "breached": 0, "share_pct": None}]


def test_formats(report: SlaReport) -> None:
    """Table, JSON and CSV carry the same figures."""
    table = render_text(report, "table").splitlines()
    assert table[0] == "SLA report 2026-11-24 .. 2026-11-27 (times in Europe/Moscow)"
    assert table[2] == "Overall: 33.33% (1 of 3) within SLA, target 90%: NOT MET"
    row = next(line for line in table if line.startswith("acme  "))
    assert row.split() == ["acme", "8/5", "high", "incident", "3", "33.33%", "66.6%", "66.6%",
                           "1", "90%", "NOT", "MET"]
    total = next(line for line in table if line.startswith("total "))
    assert total.split() == ["total", "5", "33.33%", "75.0%", "66.6%", "1", "90%", "NOT", "MET"]
    assert json.loads(render_text(report, "json"))["rows"][0]["reaction_met_pct"] == 66.6
    parsed = list(csv.DictReader(io.StringIO(render_text(report, "csv"))))
    assert parsed[0]["customer"] == "acme" and parsed[0]["resolution_missed"] == "1"
    assert parsed[1]["reaction_met_pct"] == ""
    assert parsed[-1]["customer"] == "total" and parsed[-1]["requests"] == "5"


def test_html_renders_in_chromium(report: SlaReport, tmp_path: Path) -> None:
    """The HTML report is one self-contained page (no external resources) that headless
    Chromium renders; the screenshot is kept next to the page."""
    page = render_text(report, "html")
    assert "<svg" in page and "<table" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<script" not in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            raise AssertionError("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    html = tmp_path / "sla.html"
    html.write_text(page, encoding="utf-8")
    shot = tmp_path / "sla.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={shot}", "--window-size=1000,700",
                    html.as_uri()], check=True, capture_output=True, timeout=120)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_migration_backfills_tickets_stored_before(database_url: str) -> None:
    """Tickets from before revision 0005 (SLA clock) get their report day and reaction outcome."""
    from sqlalchemy import text

    engine = make_engine(database_url)
    migrate(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO tickets (number, channel, status, request_type, priority, subject, "
            "received_at, registered_at, reaction_due, resolution_due, acknowledged_at, "
            "reasons, notes) VALUES ('SUP-000001', 'email', 'registered', 'incident', 'high', "
            "'s', :received, :received, :due, :due, :late, '[]', '[]')"),
            {"received": datetime(2026, 11, 25, 22, 0), "due": datetime(2026, 11, 25, 23, 0),
             "late": datetime(2026, 11, 26, 1, 0)})
    migrate(engine)
    with engine.connect() as connection:
        day, bits = connection.execute(text(
            "SELECT report_day, sla_outcome FROM tickets")).one()
    engine.dispose()
    assert (day, bits) == (20261126, 2)
