"""Signed call-centre tickets over real HTTP: stored before 202, registered, acknowledged."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from structlog.testing import capture_logs

from gateway.tickets.view import list_tickets
from tests.conftest import START, RunningGateway, Sink
from tests.gateway.http.helpers import SECRET, admin, call, hook_config, post_call, signed_headers


@pytest.fixture
def running(make_gateway, relay_sink: Sink, tmp_path) -> RunningGateway:
    extra, http = hook_config(tmp_path)
    gateway: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    return gateway


def test_signed_call_becomes_ticket_with_acknowledgement(running, relay_sink: Sink) -> None:
    """A signed call is 202 after the commit, then a phone ticket of the caller's customer."""
    response = post_call(running.http_url, call(contact_email="ivan@acme.example"), START)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    running.settle()

    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["channel"] == "phone"
    assert ticket["customer"] == "acme"
    assert ticket["tier"] == "24/7"
    assert ticket["subject"] == "Calls drop after 10 seconds"
    assert ticket["declared_priority"] == "high"
    assert ticket["requester"] == {"name": None, "email": "ivan@acme.example",
                                   "phone": "+74951234567"}
    assert [m["kind"] for m in ticket["messages"]] == ["request", "acknowledgement"]
    [ack] = relay_sink.messages
    assert ack["X-Envelope-To"] == "ivan@acme.example"
    assert ack["Subject"] == f"[{ticket['number']}] Calls drop after 10 seconds"
    assert ack["In-Reply-To"] is None


def test_repeated_call_id_returns_the_registered_ticket(running, relay_sink: Sink) -> None:
    """The same call id again is 200 naming the ticket, not a second ticket or e-mail."""
    assert post_call(running.http_url, call("c-1"), START).status_code == 202
    running.settle()
    again = post_call(running.http_url, call("c-1", subject="changed"), START)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["ticket"] == "SUP-000001"
    running.settle()
    assert len(list_tickets(running.gateway.db.engine)) == 1
    assert len(relay_sink.messages) == 1


def test_contact_on_file_and_unknown_caller(running, relay_sink: Sink) -> None:
    """Without a contact address the customer's address on file gets the acknowledgement; an
    unknown caller is registered with customer null and the ticket says why nobody was told."""
    post_call(running.http_url, call("c-2", caller="8-812-555-01-02"), START)
    post_call(running.http_url, call("c-3", caller="+7 999 000 00 00"), START)
    running.settle()
    by_customer = {t["customer"]: t for t in list_tickets(running.gateway.db.engine)}
    assert set(by_customer) == {"acme", None}
    assert by_customer["acme"]["requester"]["phone"] == "+78125550102"
    assert by_customer["acme"]["notes"] == [
        "acknowledgement sent to the customer's contact on file ivan@acme.example"]
    assert by_customer[None]["requester"]["phone"] == "+79990000000"
    assert by_customer[None]["notes"] == [
        "no acknowledgement: no contact e-mail address given or on file"]
    assert [m["X-Envelope-To"] for m in relay_sink.messages] == ["ivan@acme.example"]


def test_operator_names_the_customer(running) -> None:
    """The customer id an operator gives wins over the caller's number."""
    post_call(running.http_url, call("c-4", caller="+7 903 111-22-33", customer="acme"), START)
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["customer"] == "acme"


BAD = [
    ("no signature", lambda b, at: {"Content-Type": "application/json"}, 401, None),
    ("bad signature", lambda b, at: signed_headers(b, at, "wrong-secret"), 401, None),
    ("stale", lambda b, at: signed_headers(b, at - timedelta(seconds=301)), 401, None),
    ("future", lambda b, at: signed_headers(b, at + timedelta(seconds=301)), 401, None),
]


@pytest.mark.parametrize(("case", "headers", "status", "field"), BAD, ids=[b[0] for b in BAD])
def test_unauthenticated_calls_are_refused(running, case, headers, status, field) -> None:
    """Missing or wrong signatures and timestamps outside ±300 s get 401; nothing is stored."""
    body = call("c-bad")
    with capture_logs() as logs:
        response = post_call(running.http_url, body, START, headers=headers(body, START))
    assert response.status_code == status
    running.settle()
    assert list_tickets(running.gateway.db.engine) == []
    [refusal] = [e for e in logs if e["event"] == "http.refused"]
    assert refusal["status"] == 401 and refusal["reason"]
    assert SECRET not in json.dumps(logs, default=str)


def test_window_edge_is_accepted(running) -> None:
    """A timestamp exactly 300 s old still counts (the window is inclusive)."""
    body = call("c-edge")
    response = post_call(running.http_url, body, START,
                         headers=signed_headers(body, START - timedelta(seconds=300)))
    assert response.status_code == 202


MALFORMED = [
    (b"{not json", "body"),
    (b"[1, 2]", "body"),
    (b'{"subject": "x"}', "call_id"),
    (b'{"call_id": "c-9"}', "subject"),
    (b'{"call_id": 12.5, "subject": "x"}', "call_id"),
    (b'{"call_id": "c-9", "subject": "x", "duration_s": "long"}', "duration_s"),
    (b'{"call_id": "c-9", "subject": "x", "declared_priority": "urgent!"}', "declared_priority"),
    (b'{"call_id": "c-9", "subject": "x", "started_at": "yesterday"}', "started_at"),
    (b'{"call_id": "c-9", "subject": "x", "contact_email": "nobody"}', "contact_email"),
    (b'{"call_id": "c-9", "subject": "x", "caller": "call me maybe"}', "caller"),
    (b'{"call_id": "c-9", "subject": "x\\u0000"}', "subject"),
    (b"\xff\xfe", "body"),
]


@pytest.mark.parametrize(("body", "field"), MALFORMED)
def test_malformed_body_is_422_naming_the_field(running, body: bytes, field: str) -> None:
    """A signed but malformed body gets 422 with the wrong field; nothing is stored."""
    response = post_call(running.http_url, body, START)
    assert response.status_code == 422
    assert response.json()["field"] == field
    running.settle()
    assert list_tickets(running.gateway.db.engine) == []


def test_body_over_the_limit_is_413(running) -> None:
    """More than 1 MiB is refused with 413, declared or streamed without a length."""
    body = call("c-big", description="x" * (1024 * 1024))
    assert post_call(running.http_url, body, START).status_code == 413

    def chunks():
        yield body[:1000]
        yield body[1000:]

    streamed = httpx.post(f"{running.http_url}/hooks/callcenter", content=chunks(),
                          headers=signed_headers(body, START), timeout=30)
    assert streamed.status_code == 413
    running.settle()
    assert list_tickets(running.gateway.db.engine) == []


def test_web_request_and_ticket_endpoints(running, relay_sink: Sink) -> None:
    """POST /api/v1/requests needs the bearer token; the ticket is then served as JSON."""
    request = {"request_id": "form-1", "subject": "Cannot log in to the portal",
               "description": "Since the update none of our users can log in to the portal.",
               "contact_email": "petr@acme.example", "name": "Petr"}
    base = running.http_url
    assert httpx.post(f"{base}/api/v1/requests", json=request).status_code == 401
    assert httpx.post(f"{base}/api/v1/requests", json=request,
                      headers=admin("wrong")).status_code == 401
    response = httpx.post(f"{base}/api/v1/requests", json=request, headers=admin())
    assert response.status_code == 202
    bad = httpx.post(f"{base}/api/v1/requests", json={"description": "x"}, headers=admin())
    assert (bad.status_code, bad.json()["field"]) == (422, "subject")
    running.settle()
    again = httpx.post(f"{base}/api/v1/requests", json=request, headers=admin())
    assert (again.status_code, again.json()["ticket"]) == (200, "SUP-000001")

    assert httpx.get(f"{base}/api/v1/tickets").status_code == 401
    tickets = httpx.get(f"{base}/api/v1/tickets", headers=admin()).json()
    assert [(t["number"], t["channel"], t["customer"]) for t in tickets] == [
        ("SUP-000001", "web", "acme")]
    one = httpx.get(f"{base}/api/v1/tickets/SUP-000001", headers=admin())
    assert one.json()["requester"]["name"] == "Petr"
    assert httpx.get(f"{base}/api/v1/tickets/SUP-999999", headers=admin()).status_code == 404
    filtered = httpx.get(f"{base}/api/v1/tickets", params={"customer": "globex"},
                         headers=admin())
    assert filtered.json() == []
    since = httpx.get(f"{base}/api/v1/tickets", params={"since": "never"}, headers=admin())
    assert (since.status_code, since.json()["field"]) == (422, "since")
    assert [m["X-Envelope-To"] for m in relay_sink.messages] == ["petr@acme.example"]


def test_health_ready_and_503_while_stopping(running) -> None:
    """/healthz and /readyz answer; once stopping begins, intake gets 503 (retry later)."""
    base = running.http_url
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base}/readyz").status_code == 200
    running.gateway.http.close_intake()
    body = call("c-late")
    response = post_call(base, body, START)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert httpx.get(f"{base}/readyz").status_code == 503
    assert httpx.get(f"{base}/healthz").status_code == 200
