"""Bad input over real HTTP: the status and field, nothing stored, the reason logged safely."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select
from structlog.testing import capture_logs

from gateway.store.db import read_transaction
from gateway.store.models import Input
from tests.conftest import START, RunningGateway, Sink
from tests.gateway.http.helpers import SECRET, call, hook_config, post_call, signed_headers

TOKEN = "path-token-of-the-pbx-42"
LIMIT = 4096


@pytest.fixture
def running(make_gateway: Callable[..., RunningGateway], relay_sink: Sink,
            tmp_path: Path) -> RunningGateway:
    secret = tmp_path / "pbx.secret"
    secret.write_text(TOKEN, encoding="utf-8")
    hooks = (f'[[webhooks]]\nname = "pbx"\nprovider = "zammad-cti"\nsecret_file = "{secret}"\n\n'
             f'[[webhooks]]\nname = "uis"\nprovider = "mapped"\nsecret_file = "{secret}"\n'
             'mapping = { call_id = "call_session_id", caller = "contact_phone_number", '
             'subject = "comment", contact_email = "email" }\n\n')
    extra, http = hook_config(tmp_path, hooks)
    gateway: RunningGateway = make_gateway(relay_port=relay_sink.port, extra=extra,
                                           http=http + f"max_body_bytes = {LIMIT}\n")
    return gateway


def stored_inputs(running: RunningGateway) -> int:
    with read_transaction(running.gateway.db.engine) as session:
        return int(session.exec(select(func.count()).select_from(Input)).one())


def refusal(logs: list[dict[str, Any]]) -> dict[str, Any]:
    """The one refusal logged, after checking no secret of ours is anywhere in the logs."""
    text = json.dumps(logs, default=str)
    assert TOKEN not in text and SECRET not in text
    [refused] = [entry for entry in logs if entry["event"] == "http.refused"]
    return refused


def form(running: RunningGateway, hook: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{running.http_url}/hooks/{hook}/{TOKEN}", content=body, timeout=30,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})


# By test id: the hook, the body it gets, the field the 422 must name.
MALFORMED_FORMS = {
    "pbx-key-without-value": ("pbx", b"event=newCall&direction&callId=z-1", "body"),
    "pbx-not-utf8": ("pbx", b"event=newCall&direction=in&callId=z-1&from=\xff", "body"),
    "pbx-no-call-id": ("pbx", b"event=hangup&direction=in&from=84951234567&cause=cancel",
                       "callId"),
    "pbx-unknown-direction": ("pbx", b"event=newCall&direction=sideways&callId=z-1",
                              "direction"),
    "pbx-unknown-event": ("pbx", b"event=ring&direction=in&callId=z-1", "event"),
    "mapped-no-call-id": ("uis", b"contact_phone_number=79031112233&comment=Reset+the+password",
                          "call_session_id"),
    "mapped-bad-email": ("uis", b"call_session_id=991&email=not-an-address", "email"),
    "mapped-nul-in-text": ("uis", b"call_session_id=991&comment=x%00", "comment"),
}


@pytest.mark.parametrize(("hook", "body", "field"), list(MALFORMED_FORMS.values()),
                         ids=list(MALFORMED_FORMS))
def test_malformed_form_is_422_naming_the_field(running: RunningGateway, hook: str,
                                                body: bytes, field: str) -> None:
    """A form from a token-authenticated sender that cannot be used gets 422 naming the field
    as the sender spells it; nothing is stored, and the reason is logged without the token."""
    with capture_logs() as logs:
        response = form(running, hook, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    running.settle()
    assert stored_inputs(running) == 0
    refused = refusal(logs)
    assert (refused["status"], refused["field"]) == (422, field)
    assert refused["reason"] == response.json()["error"]
    assert refused["path"] == f"/hooks/{hook}/[redacted]"


@pytest.mark.parametrize("path", ["/hooks/nosuch", f"/hooks/nosuch/{TOKEN}"],
                         ids=["without-token", "with-token"])
def test_unknown_hook_is_404_and_stores_nothing(running: RunningGateway, path: str) -> None:
    """A hook name not configured gets 404, with or without a path token; nothing is stored,
    and the refusal is logged with its reason."""
    body = call("c-404")
    with capture_logs() as logs:
        response = httpx.post(f"{running.http_url}{path}", content=body,
                              headers=signed_headers(body, START), timeout=30)
    assert response.status_code == 404
    running.settle()
    assert stored_inputs(running) == 0
    refused = refusal(logs)
    assert (refused["status"], refused["reason"]) == (404, "no such hook")
    assert refused["path"].startswith("/hooks/nosuch")


@pytest.mark.parametrize("hook", ["callcenter", "uis"])
def test_body_over_the_limit_is_413_and_logged(running: RunningGateway, hook: str) -> None:
    """A body over `max_body_bytes` gets 413, to a signed hook or a token one; nothing is
    stored, and the reason is logged with neither the signing secret nor the path token."""
    body = call("c-big", description="x" * LIMIT)
    with capture_logs() as logs:
        if hook == "callcenter":
            response = post_call(running.http_url, body, START)
        else:
            response = httpx.post(f"{running.http_url}/hooks/uis/{TOKEN}", content=body,
                                  headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 413
    running.settle()
    assert stored_inputs(running) == 0
    refused = refusal(logs)
    assert (refused["status"], refused["reason"]) == (413, f"body larger than {LIMIT} bytes")


def test_malformed_signed_json_is_logged(running: RunningGateway) -> None:
    """A signed call-centre body with a wrong type is logged with the field and the reason,
    never the signing secret."""
    body = call("c-422", duration_s="long")
    with capture_logs() as logs:
        response = post_call(running.http_url, body, START)
    assert (response.status_code, response.json()["field"]) == (422, "duration_s")
    refused = refusal(logs)
    assert (refused["status"], refused["field"]) == (422, "duration_s")
    assert refused["reason"] == "expected a whole number of seconds"
    assert stored_inputs(running) == 0
