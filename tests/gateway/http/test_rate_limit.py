"""Requests per source per minute over real HTTP: 429 with Retry-After, probes exempt."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from structlog.testing import capture_logs

from gateway.http.rate import SourceRate
from tests.conftest import START, RunningGateway, Sink
from tests.gateway.http.helpers import call, hook_config, post_call


def test_requests_over_the_limit_get_429(make_gateway, relay_sink: Sink, tmp_path) -> None:
    """The fourth request in a minute from one address is 429 and stores nothing."""
    extra, http = hook_config(tmp_path)
    running: RunningGateway = make_gateway(
        relay_port=relay_sink.port, http=http,
        extra=extra + "\n[limits]\nhttp_requests_per_source_per_min = 3\n")
    for number in range(3):
        response = post_call(running.http_url, call(f"c-{number}"), START)
        assert response.status_code == 202, response.text
    with capture_logs() as logs:
        refused = post_call(running.http_url, call("c-over"), START)
    assert refused.status_code == 429
    assert refused.json() == {
        "error": "too many requests from 127.0.0.1: more than 3 per minute",
        "field": "http_requests_per_source_per_min"}
    # One request comes back every 20 s at 3 per minute.
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    assert [e["status"] for e in logs if e["event"] == "http.refused"] == [429]
    with running.gateway.db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM inputs")).scalar_one() == 3
    # Everything else from that address waits too, but the probes do not count.
    assert httpx.get(f"{running.http_url}/readyz").status_code == 429
    for _ in range(5):
        assert httpx.get(f"{running.http_url}/healthz").status_code == 200
        assert httpx.get(f"{running.http_url}/metrics").status_code == 200


def test_bucket_refills_over_the_minute() -> None:
    """Burst up to the limit, then one more request per 60/limit seconds; sources apart."""
    now = [100.0]
    rate = SourceRate(lambda: 6, now=lambda: now[0])
    assert [rate.retry_after("a") for _ in range(6)] == [None] * 6
    assert rate.retry_after("a") == 10
    assert rate.retry_after("b") is None
    now[0] += 10
    assert rate.retry_after("a") is None
    assert rate.retry_after("a") == 10
