"""/metrics keeps a fixed number of time series however many tickets there are."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.store.outcomes import OUTCOME_KINDS
from tests.conftest import RunningGateway, make_mail

MakeGateway = Callable[..., RunningGateway]


def series(base: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    response = httpx.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200
    assert "SUP-" not in response.text
    return {(sample.name, tuple(sorted(sample.labels.items())))
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def send(gateway: RunningGateway, first: int, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=30) as client:
        for n in range(first, first + count):
            sender = f"user{n}@customer{n}.example"
            client.sendmail(sender, ["support@example.com"],
                            make_mail(f"Problem number {n}", sender=sender))


def test_series_count_stays_fixed_as_tickets_are_registered(
        make_gateway: MakeGateway) -> None:
    """No label carries a ticket number, an address or an id: ten tickets and forty tickets
    (each from its own sender, replies among them) give the same series."""
    gateway = make_gateway()
    send(gateway, 0, 10)
    gateway.settle()
    before = series(gateway.http_url)
    send(gateway, 10, 30)
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=30) as client:
        # A reply threads into a ticket: its outcome names the ticket too.
        client.sendmail("user1@customer1.example", ["support@example.com"],
                        make_mail("Re: [SUP-000002] Problem number 1",
                                  sender="user1@customer1.example"))
    gateway.settle()
    after = series(gateway.http_url)
    assert after == before | {("intake_inputs", (("channel", "email"),
                                                 ("outcome", "added_to_ticket")))}
    outcomes = {dict(labels)["outcome"] for name, labels in after if name == "intake_inputs"}
    assert outcomes <= set(OUTCOME_KINDS)
    assert outcomes == {"registered", "added_to_ticket"}
