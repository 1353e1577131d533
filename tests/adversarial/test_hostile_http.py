"""Odd but legal HTTP requests get 401 or 422 with a reason, never a 500 (issue 17)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import START, RunningGateway, Sink
from tests.gateway.http.helpers import admin, call, hook_config, signed_headers

pytestmark = pytest.mark.adversarial


@pytest.fixture
def running(make_gateway, relay_sink: Sink, tmp_path) -> RunningGateway:
    extra, http = hook_config(tmp_path, hooks=(
        '[[webhooks]]\nname = "zadarma"\nprovider = "zadarma"\n'
        f'secret_file = "{tmp_path / "callcenter.secret"}"\n\n'
        '[[webhooks]]\nname = "twilio"\nprovider = "twilio"\n'
        f'secret_file = "{tmp_path / "callcenter.secret"}"\n'))
    gateway: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    return gateway


def post(running: RunningGateway, path: str, body: bytes,
         headers: list[tuple[bytes, bytes]]) -> httpx.Response:
    # Raw header bytes: httpx would refuse to encode non-ASCII header values itself.
    return httpx.post(running.http_url + path, content=body, headers=headers, timeout=30)


BODY = call("hostile-1")
GOOD = signed_headers(BODY, START)
HOSTILE_HEADERS = {
    "non-ASCII signature": [(b"X-Timestamp", GOOD["X-Timestamp"].encode()),
                            (b"X-Signature", "sha256=подпись".encode()),
                            (b"Content-Type", b"application/json")],
    "latin-1 signature": [(b"X-Timestamp", GOOD["X-Timestamp"].encode()),
                          (b"X-Signature", b"sha256=\xe9\xe9"),
                          (b"Content-Type", b"application/json")],
    "superscript timestamp": [(b"X-Timestamp", "²".encode()),
                              (b"X-Signature", GOOD["X-Signature"].encode()),
                              (b"Content-Type", b"application/json")],
    "arabic-indic timestamp": [(b"X-Timestamp", "١٧٦٤٠٥٧٦٠٠".encode()),
                               (b"X-Signature", GOOD["X-Signature"].encode())],
}


@pytest.mark.parametrize("name", sorted(HOSTILE_HEADERS))
def test_hostile_signature_headers_are_401(running: RunningGateway, name: str) -> None:
    response = post(running, "/hooks/callcenter", BODY, HOSTILE_HEADERS[name])
    assert response.status_code == 401, response.text
    assert response.json()["error"]


@pytest.mark.parametrize("path", ["/hooks/zadarma", "/hooks/twilio"])
def test_non_ascii_provider_signatures_are_401(running: RunningGateway, path: str) -> None:
    body = b"event=NOTIFY_START&caller_id=%2B74951234567&called_did=74950000000&call_start=x"
    headers = [(b"Content-Type", b"application/x-www-form-urlencoded"),
               (b"Signature", "подпись".encode()), (b"X-Twilio-Signature", "подпись".encode())]
    assert post(running, path, body, headers).status_code == 401


@pytest.mark.parametrize("depth", [50, 5000, 200_000])
def test_deeply_nested_json_is_422(running: RunningGateway, depth: int) -> None:
    body = b'{"call_id": "deep", "extra": ' + b"[" * depth + b"]" * depth + b"}"
    response = post(running, "/hooks/callcenter", body,
                    [(k.encode(), v.encode()) for k, v in signed_headers(body, START).items()])
    assert response.status_code in (202, 422), response.text
    if depth > 50:
        assert response.status_code == 422


@pytest.mark.parametrize("path", ["/api/v1/rules/explain", "/api/v1/tickets/SUP-000001/events"])
def test_deeply_nested_json_to_the_api_is_422(running: RunningGateway, path: str) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    headers = [(b"Content-Type", b"application/json"),
               *((k.encode(), v.encode()) for k, v in admin().items())]
    response = post(running, path, body, headers)
    assert response.status_code in (404, 422), response.text


def test_a_non_ascii_bearer_token_is_401(running: RunningGateway) -> None:
    response = httpx.get(running.http_url + "/api/v1/tickets",
                         headers=[(b"Authorization", "Bearer жетон".encode())], timeout=30)
    assert response.status_code == 401


def test_lone_surrogates_and_bidi_controls_are_removed_from_what_is_stored_and_shown(
        running: RunningGateway, relay_sink: Sink) -> None:
    """JSON may carry "\\ud800" (no database stores it) and U+202E (which makes a subject read
    backwards): the ticket and the acknowledgement have neither; the description keeps its
    right-to-left marks, which are writing."""
    body = (b'{"call_id": "bidi-1", "caller": "+7 495 123-45-67", '
            b'"subject": "Invoice \\ud800 paid\\u202e fdp.exe\\u202c", '
            b'"contact_email": "ivan@acme.example", "contact_name": "Ivan \\u2066Petrov\\u2069", '
            b'"description": "\\u05e9\\u05dc\\u05d5\\u05dd\\u200f the printer \\udfff is broken."}')
    response = post(running, "/hooks/callcenter", body,
                    [(k.encode(), v.encode()) for k, v in signed_headers(body, START).items()])
    assert response.status_code == 202, response.text
    running.settle()
    from gateway.tickets.view import list_tickets

    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Invoice  paid fdp.exe"
    assert ticket["requester"]["name"] == "Ivan Petrov"
    [ack] = relay_sink.messages
    assert "\u202e" not in str(ack["Subject"]) and "fdp.exe" in str(ack["Subject"])
