"""The published OpenAPI description, exercised by schemathesis over HTTP: never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parsers.telephony import PROVIDERS, PayloadError, read_event
from tests.conftest import RunningGateway
from tests.gateway.http.helpers import admin, hook_config


@pytest.fixture
def running(make_gateway, tmp_path) -> RunningGateway:
    extra, http = hook_config(tmp_path)
    gateway: RunningGateway = make_gateway(extra=extra, http=http)
    return gateway


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_schemathesis_finds_no_server_error(running) -> None:
    """Every operation of /openapi.json, with generated parameters and bodies: no 5xx."""
    published = httpx.get(f"{running.http_url}/openapi.json").json()
    assert {"/hooks/{name}", "/api/v1/requests", "/api/v1/tickets",
            "/api/v1/tickets/{number}", "/healthz", "/readyz"} <= set(published["paths"])
    schema = schemathesis.openapi.from_url(f"{running.http_url}/openapi.json")
    seen = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def no_server_error(case: Any) -> None:
            if case.path == "/api/v1/events" and case.query:
                # A long poll holds its answer for `wait` seconds: longer than the client's
                # timeout, it would look like a hang; a second still exercises the loop.
                case.query["wait"] = min(float(case.query.get("wait") or 0), 1.0)
            response = case.call(headers=admin())
            assert response.status_code < 500, (case.method, case.formatted_path,
                                                 response.status_code, response.text)

        no_server_error()
        seen += 1
    assert seen >= 8


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=3),
    max_leaves=10)
FIELDS = st.sampled_from(["call_id", "caller", "subject", "description", "duration_s",
                          "started_at", "declared_priority", "contact_email", "customer",
                          "event", "callId", "direction", "pbx_call_id", "CallSid",
                          "CallStatus", "TranscriptionText", "request_id", "cause"])


@settings(max_examples=300, deadline=None)
@given(provider=st.sampled_from([*PROVIDERS, "web"]),
       payload=st.dictionaries(FIELDS, JSONISH, max_size=8))
def test_parsers_refuse_with_a_field_or_accept(provider: str, payload: dict[str, Any]) -> None:
    """Any JSON object is either an event or a PayloadError naming a field, never a crash."""
    body = json.dumps(payload).encode()
    try:
        event = read_event(provider, "hook", "application/json", body,
                           {"call_id": "call_id"}, "phone")
    except PayloadError as error:
        assert error.field
    else:
        assert event.hook == "hook"
