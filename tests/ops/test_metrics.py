"""/metrics scraped from the running daemon and read with prometheus_client's own parser."""

from __future__ import annotations

import smtplib
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import config_text, free_port, make_mail
from tests.ops.daemon import supervised, wait_until

# Nothing listens on this mailbox's port: the mailbox stays down.
DEAD_MAILBOX = ('[[mailboxes]]\nname = "dead"\nhost = "127.0.0.1"\nport = {port}\n'
                'security = "none"\nusername = "support"\npassword = "x"\n'
                'poll_interval_s = 0.5\nreconnect_max_s = 1\n')


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{base}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def test_metrics_count_inputs_latencies_outbox_and_mailboxes(tmp_path: Path) -> None:
    smtp_port, http_port = free_port(), free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(f"sqlite:///{tmp_path / 'intake.db'}", tmp_path / "state",
                                  smtp_port, http_port=http_port,
                                  # The daemon runs on the wall clock: a 24/7 tier makes the
                                  # acknowledgements independent of the time of day.
                                  intake='unknown_customer_tier = "24/7"',
                                  extra=DEAD_MAILBOX.format(port=free_port())))
    base = f"http://127.0.0.1:{http_port}"
    with supervised(config, tmp_path) as (_daemon, notify, _log):
        notify.wait_for("READY=1")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            for n in range(3):
                client.sendmail(f"c{n}@acme.example", ["support@example.com"],
                                make_mail(f"metrics {n}", sender=f"c{n}@acme.example"))

        def acknowledged() -> bool:
            found = scrape(base)
            return found.get(("intake_acknowledgement_latency_seconds_count", ()), 0) == 3

        wait_until(acknowledged, timeout=60)
        metrics = scrape(base)
        assert sum(v for (name, labels), v in metrics.items()
                   if name == "intake_inputs" and ("channel", "email") in labels) == 3
        assert metrics[("intake_processing_latency_seconds_count", ())] == 3
        assert metrics[("intake_processing_latency_seconds_bucket", (("le", "+Inf"),))] == 3
        assert metrics[("intake_acknowledgement_reaction_ratio_count", ())] == 3
        # Acknowledged at once: far inside the reaction time.
        assert metrics[("intake_acknowledgement_reaction_ratio_bucket", (("le", "0.1"),))] == 3
        assert metrics[("intake_outbox_backlog", ())] == 0
        assert metrics[("intake_outbox_delivery_failures", (("kind", "permanent"),))] == 0
        assert metrics[("intake_quarantine_size", ())] == 0
        assert metrics[("intake_tickets_at_risk", ())] == 0
        assert metrics[("intake_mailbox_connected", (("mailbox", "dead"),))] == 0

        ready = httpx.get(f"{base}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json() == {"status": "mailbox down", "mailboxes": ["dead"]}
