"""The daemon under a supervisor: sd_notify order, watchdog pings, SIGHUP reload, SIGTERM drain."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import config_text, free_port, make_mail
from tests.ops.daemon import ROOT, supervised, wait_until

CUSTOMERS = '[[customer]]\nid = "acme"\ntier = "8/5"\ndomains = ["acme.example"]\n'
GLOBEX = '\n[[customer]]\nid = "globex"\ntier = "24/7"\ndomains = ["globex.example"]\n'


def write_config(tmp_path: Path, http_port: int, smtp_port: int) -> Path:
    (tmp_path / "customers.toml").write_text(CUSTOMERS, encoding="utf-8")
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(f"sqlite:///{tmp_path / 'intake.db'}", tmp_path / "state",
                                  smtp_port, http_port=http_port,
                                  http='admin_token = "ops-token"\n',
                                  extra='[files]\ncustomers = "customers.toml"\n'))
    return config


def ticket_customers(config: Path) -> dict[str, str | None]:
    """Subject -> customer id, through the command line an operator would use."""
    out = subprocess.run([sys.executable, "-m", "gateway", "--config", str(config), "tickets",
                          "list", "--json"], cwd=ROOT, capture_output=True, check=True,
                         timeout=60).stdout
    return {t["subject"]: t["customer"] for t in json.loads(out)}


def send(smtp_port: int, subject: str, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.sendmail(sender, ["support@example.com"], make_mail(subject, sender=sender))


def test_notify_order_watchdog_and_sighup_reload(tmp_path: Path) -> None:
    """READY=1 comes once SMTP and HTTP listen, WATCHDOG=1 keeps coming, SIGHUP reloads the
    customers (RELOADING=1 then READY=1), a broken file keeps the previous customers, and
    SIGTERM says STOPPING=1 and exits 0."""
    smtp_port, http_port = free_port(), free_port()
    config = write_config(tmp_path, http_port, smtp_port)
    with supervised(config, tmp_path, watchdog_usec=400_000) as (daemon, notify, log):
        ready = notify.wait_for("READY=1")
        assert notify.messages[0] == ["STATUS=starting"]
        # Listening by the time READY=1 is sent: no retry loop needed.
        socket.create_connection(("127.0.0.1", smtp_port), timeout=60).close()
        socket.create_connection(("127.0.0.1", http_port), timeout=60).close()
        # Pings keep coming (every 0.2 s for WATCHDOG_USEC=0.4 s) from the running loop.
        first = notify.wait_for("WATCHDOG=1")
        notify.wait_for("WATCHDOG=1", after=max(first, ready) + 1)
        notify.wait_for("WATCHDOG=1", after=len(notify.messages))

        (tmp_path / "customers.toml").write_text(CUSTOMERS + GLOBEX, encoding="utf-8")
        mark = len(notify.messages)
        daemon.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", after=mark)
        notify.wait_for("READY=1", after=reloading + 1)
        send(smtp_port, "after reload", "ann@globex.example")

        (tmp_path / "customers.toml").write_text("[[customer]\nbroken", encoding="utf-8")
        mark = len(notify.messages)
        daemon.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1", after=notify.wait_for("RELOADING=1", after=mark) + 1)
        send(smtp_port, "after bad reload", "bob@globex.example")
        wait_until(lambda: len(ticket_customers(config)) == 2, timeout=60)
        assert ticket_customers(config) == {"after reload": "globex",
                                            "after bad reload": "globex"}
        assert "reload.failed" in log.read_text()

        mark = len(notify.messages)
        daemon.send_signal(signal.SIGTERM)
        stopping = notify.wait_for("STOPPING=1", after=mark)
        assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
        assert not any("READY=1" in m for m in notify.messages[stopping:])


def test_sigterm_refuses_new_mail_and_finishes_requests_in_flight(tmp_path: Path) -> None:
    """While draining, an open SMTP session gets 421 for new mail, and an HTTP request that was
    in flight is still answered 202 (its input committed); then exit 0 and nothing is lost."""
    smtp_port, http_port = free_port(), free_port()
    config = write_config(tmp_path, http_port, smtp_port)
    body = json.dumps({"subject": "Sent while stopping", "contact_email": "ivan@acme.example",
                       "description": "Calls drop after ten seconds for all of our users."
                       }).encode()
    with supervised(config, tmp_path) as (daemon, notify, log):
        notify.wait_for("READY=1")
        client = smtplib.SMTP("127.0.0.1", smtp_port, timeout=30)
        client.ehlo()
        # A request whose body is still on its way when SIGTERM arrives holds the drain open.
        slow = socket.create_connection(("127.0.0.1", http_port), timeout=30)
        slow.sendall(b"POST /api/v1/requests HTTP/1.1\r\nHost: gw\r\n"
                     b"Authorization: Bearer ops-token\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.3)  # not for correctness: lets the headers reach the app first
        daemon.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        code = 0
        deadline = time.monotonic() + 60
        while code != 421 and time.monotonic() < deadline:
            code, _ = client.mail("ivan@acme.example")
            if code != 421:
                client.rset()
        assert code == 421
        assert daemon.poll() is None  # still draining: the request is not answered yet
        slow.sendall(body[10:])
        answer = slow.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 202"), answer
        assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
        client.close()
        slow.close()
    assert list(ticket_customers(config)) == ["Sent while stopping"]


def test_a_second_daemon_on_the_same_sqlite_file_stops_with_a_reason(tmp_path: Path) -> None:
    """`run` twice on one SQLite database: the second exits non-zero at once, naming the
    first's pid and PostgreSQL as the way to run several; the first goes on serving."""
    config = write_config(tmp_path, free_port(), free_port())
    with supervised(config, tmp_path) as (daemon, notify, _log):
        notify.wait_for("READY=1")
        other = tmp_path / "other"
        other.mkdir()
        second = write_config(other, free_port(), free_port())
        # The same database file as the first, other ports and state.
        second.write_text(second.read_text(encoding="utf-8").replace(
            str(other / "intake.db"), str(tmp_path / "intake.db")), encoding="utf-8")
        refused = subprocess.run([sys.executable, "-m", "gateway", "--config", str(second),
                                  "run"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1, refused.stderr
        assert f"(pid {daemon.pid})" in refused.stderr and "PostgreSQL" in refused.stderr
        assert daemon.poll() is None
