"""PBX and telephony providers over real HTTP: Zammad CTI, Zadarma, Twilio, mapped senders."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

from gateway.tickets.call_backs import CALL_BACK_NOTE
from gateway.tickets.view import list_tickets
from tests.conftest import START, RunningGateway, Sink
from tests.gateway.http.helpers import call, hook_config, post_call, secret_file

TOKEN = "pbx-path-token-77"
ZADARMA_SECRET = "zadarma-api-secret"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"


def pbx_hooks(tmp_path: Path) -> str:
    return (
        f'[[webhooks]]\nname = "pbx"\nprovider = "zammad-cti"\n'
        f'{secret_file(tmp_path, "pbx", TOKEN)}\n'
        f'[[webhooks]]\nname = "zd"\nprovider = "zadarma"\n'
        f'{secret_file(tmp_path, "zd", ZADARMA_SECRET)}\n'
        f'[[webhooks]]\nname = "tw"\nprovider = "twilio"\n'
        f'{secret_file(tmp_path, "tw", TWILIO_TOKEN)}\n'
        f'[[webhooks]]\nname = "uis"\nprovider = "mapped"\nallow_from = ["127.0.0.0/8"]\n'
        f'{secret_file(tmp_path, "uis", TOKEN)}'
        'mapping = { call_id = "call_session_id", caller = "contact_phone_number", '
        'subject = "comment", contact_email = "email" }\n\n'
        f'[[webhooks]]\nname = "far"\nprovider = "mapped"\nallow_from = ["10.0.0.0/8"]\n'
        f'{secret_file(tmp_path, "far", TOKEN)}\n')


@pytest.fixture
def running(make_gateway, relay_sink: Sink, tmp_path: Path) -> RunningGateway:
    extra, http = hook_config(tmp_path, pbx_hooks(tmp_path))
    gateway: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra, http=http)
    return gateway


def zammad(running: RunningGateway, token: str = TOKEN, as_json: bool = False,
           **fields: str) -> httpx.Response:
    url = f"{running.http_url}/hooks/pbx/{token}"
    if as_json:
        return httpx.post(url, json=fields)
    return httpx.post(url, data=fields)


def test_zammad_missed_call_registers_call_back(running, relay_sink: Sink) -> None:
    """newCall then hangup without answer from a customer's number: a "call back" ticket."""
    call_fields = {"from": "84951234567", "to": "74950000000", "direction": "in",
                   "callId": "z-1"}
    assert zammad(running, event="newCall", **call_fields).status_code == 202
    assert zammad(running, as_json=True, event="hangup", cause="cancel",
                  **call_fields).status_code == 202
    # The PBX retries an event: stored once.
    assert zammad(running, event="hangup", cause="cancel", **call_fields).status_code == 200
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["subject"] == "Missed call from 84951234567, call back"
    assert ticket["customer"] == "acme"
    assert ticket["requester"]["phone"] == "+74951234567"
    assert [m["X-Envelope-To"] for m in relay_sink.messages] == ["ivan@acme.example"]


def test_zammad_answered_call_is_logged_on_open_ticket(running) -> None:
    """An answered call of a customer with an open ticket becomes a call entry on it."""
    post_call(running.http_url, call("c-open"), START)
    running.settle()
    fields = {"from": "+7 (495) 123-45-67", "to": "100", "direction": "in", "callId": "z-2"}
    zammad(running, event="newCall", **fields)
    zammad(running, event="answer", user="Alice", **fields)
    zammad(running, event="hangup", cause="normalClearing", **fields)
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert [m["kind"] for m in ticket["messages"]] == [
        "request", "acknowledgement", "call", "call"]


def test_zammad_unknown_number_and_bad_tokens(running) -> None:
    """A missed call from an unknown number registers nothing; a wrong path token is 401."""
    fields = {"from": "+7 916 000 00 00", "to": "100", "direction": "in", "callId": "z-3"}
    assert zammad(running, event="hangup", cause="noAnswer", **fields).status_code == 202
    assert zammad(running, token="guess", event="newCall", **fields).status_code == 401
    missing = httpx.post(f"{running.http_url}/hooks/pbx", data={"event": "newCall", **fields})
    assert missing.status_code == 401
    bad = zammad(running, event="ring", **fields)
    assert (bad.status_code, bad.json()["field"]) == (422, "event")
    running.settle()
    assert list_tickets(running.gateway.db.engine) == []


def test_missed_call_from_unknown_number_registers_when_configured(
        make_gateway, relay_sink: Sink, tmp_path: Path) -> None:
    """With `missed_calls_from_unknown = "register"` an unknown caller gets a call-back ticket
    with customer null; with no address to write to, its notes say the call back is the
    reaction."""
    extra, http = hook_config(tmp_path, pbx_hooks(tmp_path))
    running = make_gateway(relay_port=relay_sink.port, extra=extra, http=http,
                           intake='missed_calls_from_unknown = "register"')
    fields = {"from": "+7 916 000 00 00", "to": "100", "direction": "in", "callId": "z-4"}
    assert zammad(running, event="hangup", cause="noAnswer", **fields).status_code == 202
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert (ticket["customer"], ticket["requester"]["phone"]) == (None, "+79160000000")
    assert ticket["subject"] == "Missed call from +7 916 000 00 00, call back"
    assert ticket["notes"] == [CALL_BACK_NOTE]
    assert relay_sink.messages == []


def zadarma_sign(params: dict[str, str]) -> str:
    signed = params["caller_id"] + params["called_did"] + params["call_start"]
    hex_digest = hmac.new(ZADARMA_SECRET.encode(), signed.encode(), hashlib.sha1).hexdigest()
    return base64.b64encode(hex_digest.encode()).decode()


def test_zadarma_echo_and_missed_call(running) -> None:
    """The URL check echoes zd_echo; a signed NOTIFY_END without answer is a call-back ticket."""
    echo = httpx.get(f"{running.http_url}/hooks/zd", params={"zd_echo": "a1b2c3"})
    assert (echo.status_code, echo.text) == (200, "a1b2c3")
    start = {"event": "NOTIFY_START", "call_start": "2026-11-25 11:00:00",
             "pbx_call_id": "in_0001", "caller_id": "79031112233", "called_did": "74950000000"}
    end = {**start, "event": "NOTIFY_END", "duration": "0", "disposition": "no answer",
           "status_code": "19", "is_recorded": "0"}
    url = f"{running.http_url}/hooks/zd"
    for params in (start, end):
        response = httpx.post(url, data=params, headers={"Signature": zadarma_sign(params)})
        assert response.status_code == 202, response.text
    forged = httpx.post(url, data={**end, "caller_id": "74951234567"},
                        headers={"Signature": zadarma_sign(end)})
    assert forged.status_code == 401
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["customer"] == "globex"
    assert ticket["subject"] == "Missed call from 79031112233, call back"
    # No e-mail to acknowledge: the call back is the reaction, and its clock runs (issue 23).
    assert ticket["notes"] == [CALL_BACK_NOTE]


def test_twilio_status_and_transcription(running) -> None:
    """Twilio callbacks signed by twilio's own RequestValidator: a missed call, then its
    voicemail transcription added to the same ticket; a bad signature is 401."""
    validator = RequestValidator(TWILIO_TOKEN)
    url = f"{running.http_url}/hooks/tw"
    status = {"CallSid": "CA0001", "AccountSid": "AC1", "From": "+74951234567",
              "To": "+74950000000", "CallStatus": "no-answer", "Direction": "inbound",
              "CallDuration": "0"}
    note = {"CallSid": "CA0001", "AccountSid": "AC1", "From": "+74951234567",
            "To": "+74950000000", "TranscriptionStatus": "completed",
            "TranscriptionText": "Hello, our mail server is down since the morning, please "
                                 "call us back as soon as possible."}
    for params in (status, note):
        signature = validator.compute_signature(url, params)
        response = httpx.post(url, data=params, headers={"X-Twilio-Signature": signature})
        assert response.status_code == 202, response.text
    forged = httpx.post(url, data={**status, "CallSid": "CA0002"},
                        headers={"X-Twilio-Signature": validator.compute_signature(url, status)})
    assert forged.status_code == 401
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert ticket["customer"] == "acme"
    assert [m["kind"] for m in ticket["messages"]] == ["request", "acknowledgement", "reply"]


def test_mapped_sender_with_token_and_allow_list(running) -> None:
    """A templated notification is mapped field by field; the token and the source network
    are its only credentials."""
    payload = {"call_session_id": 991, "contact_phone_number": "79031112233",
               "comment": "Please reset the admin password", "email": "boss@globex.example"}
    url = f"{running.http_url}/hooks/uis/{TOKEN}"
    assert httpx.post(url, json=payload).status_code == 202
    assert httpx.post(f"{running.http_url}/hooks/far/{TOKEN}", json=payload).status_code == 401
    bad = httpx.post(url, json={**payload, "email": "not-an-address"})
    assert (bad.status_code, bad.json()["field"]) == (422, "email")
    running.settle()
    [ticket] = list_tickets(running.gateway.db.engine)
    assert (ticket["customer"], ticket["subject"]) == ("globex", "Please reset the admin password")
    assert ticket["requester"]["email"] == "boss@globex.example"
