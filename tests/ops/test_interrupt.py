"""Ctrl-C in a terminal ends the daemon cleanly: its worker processes leave SIGINT to it."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, config_text, free_port, make_mail
from tests.ops.daemon import count, wait_for_listening


def test_ctrl_c_stops_the_daemon_and_its_workers_without_a_traceback(tmp_path: Path) -> None:
    """SIGINT to the whole process group (what a terminal's Ctrl-C does) drains and stops
    the daemon with status 0; no process prints a KeyboardInterrupt traceback, and the mail
    in flight is registered, not quarantined as if it had killed a worker."""
    smtp_port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(config_text(f"sqlite:///{tmp_path / 'intake.db'}", tmp_path / "state",
                                  smtp_port), encoding="utf-8")
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(config),
                                   "run"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        wait_for_listening(smtp_port, daemon, log)
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
            client.sendmail("ivan@acme.example", ["support@example.com"],
                            make_mail("Before Ctrl-C"))
        os.killpg(daemon.pid, signal.SIGINT)
        assert daemon.wait(120) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    output = log.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert '"event": "gateway.stopped"' in output
    # The mail accepted before Ctrl-C is registered (drained), not quarantined.
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    assert count(url, "SELECT count(*) FROM inputs WHERE status = 'processed'") == 1
    assert count(url, "SELECT count(*) FROM tickets") == 1
