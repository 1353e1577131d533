"""Lifecycle events and the SLA report over real HTTP, behind the bearer token."""

from __future__ import annotations

import httpx

from tests.gateway.http.helpers import admin
from tests.gateway.http.test_generic_hook import running  # noqa: F401 (fixture)


def open_ticket(running) -> str:  # type: ignore[no-untyped-def]  # noqa: F811
    request = {"request_id": "form-sla", "subject": "Metrics dashboard",
               "description": "The metrics collection dashboard has stopped updating, the rest "
                              "of the service works fine for everyone.",
               "contact_email": "petr@acme.example", "name": "Petr"}
    base = running.http_url
    assert httpx.post(f"{base}/api/v1/requests", json=request,
                      headers=admin()).status_code == 202
    running.settle()
    [ticket] = httpx.get(f"{base}/api/v1/tickets", headers=admin()).json()
    return str(ticket["number"])


def test_ticket_events_over_http(running) -> None:  # noqa: F811
    number = open_ticket(running)
    url = f"{running.http_url}/api/v1/tickets/{number}/events"
    raise_it = {"type": "priority_changed", "priority": "critical", "actor": "engineer-1",
                "reason": "Diagnosis: all users are affected"}
    assert httpx.post(url, json=raise_it).status_code == 401
    raised = httpx.post(url, json=raise_it, headers=admin())
    assert raised.status_code == 200
    assert raised.json()["ticket"]["priority"] == "critical"
    assert raised.json()["ticket"]["history"][-1]["event"] == "priority_changed"
    lower = {"type": "priority_changed", "priority": "high", "basis": "partial_restoration",
             "reason": "Partly restored"}
    refused = httpx.post(url, json=lower, headers=admin())
    assert refused.status_code == 409 and "agreement" in refused.json()["error"]
    agreed = httpx.post(url, json={**lower, "customer_agreed": True}, headers=admin())
    assert (agreed.status_code, agreed.json()["ticket"]["priority"]) == (200, "high")
    missing = httpx.post(f"{running.http_url}/api/v1/tickets/SUP-999999/events",
                         json={"type": "resolved"}, headers=admin())
    assert missing.status_code == 404
    bad = httpx.post(url, json={"type": "priority_changed"}, headers=admin())
    assert bad.status_code == 422 and bad.json()["field"]
    unreadable = httpx.post(url, content=b"{", headers={**admin(),
                                                         "content-type": "application/json"})
    assert (unreadable.status_code, unreadable.json()["field"]) == (422, "body")
    resolved = httpx.post(url, json={"type": "resolved"}, headers=admin())
    assert resolved.json()["ticket"]["status"] == "resolved"


def test_sla_report_over_http(running) -> None:  # noqa: F811
    open_ticket(running)
    url = f"{running.http_url}/api/v1/reports/sla"
    day = {"from": "2026-11-25", "to": "2026-11-25"}
    assert httpx.get(url, params=day).status_code == 401
    report = httpx.get(url, params=day, headers=admin())
    assert report.status_code == 200
    assert report.json()["total"]["requests"] == 1
    html = httpx.get(url, params={**day, "format": "html"}, headers=admin())
    assert html.headers["content-type"].startswith("text/html") and "<svg" in html.text
    csv = httpx.get(url, params={**day, "format": "csv"}, headers=admin())
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[-1].startswith("total,")
    pdf = httpx.get(url, params={**day, "format": "pdf"}, headers=admin(), timeout=60)
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    wrong = httpx.get(url, params={"from": "25.11.2026", "to": "2026-11-25"}, headers=admin())
    assert (wrong.status_code, wrong.json()["field"]) == (422, "from")
    backwards = httpx.get(url, params={"from": "2026-11-26", "to": "2026-11-25"},
                          headers=admin())
    assert backwards.status_code == 422
