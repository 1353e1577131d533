"""SIGHUP re-reads the config file too: safe keys at once, the rest named for a restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.conftest import config_text, free_port
from tests.ops.daemon import count, supervised, wait_until
from tests.ops.test_supervised_lifecycle import send


def write(config: Path, tmp_path: Path, smtp_port: int, http_port: int, intake: str = "",
          smtp: str = "") -> None:
    config.write_text(config_text(f"sqlite:///{tmp_path / 'intake.db'}", tmp_path / "state",
                                  smtp_port, http_port=http_port, intake=intake, smtp=smtp),
                      encoding="utf-8")


def logged(log: Path, event: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == event]


def test_sighup_applies_safe_config_keys_and_names_the_rest(tmp_path: Path) -> None:
    """After SIGHUP, hold_unknown_senders switched on in the config file holds the next mail
    from a stranger; a changed SMTP limit is logged as needing a restart; a config file
    broken afterwards keeps what runs."""
    smtp_port, http_port = free_port(), free_port()
    config = tmp_path / "gateway.toml"
    write(config, tmp_path, smtp_port, http_port)
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    with supervised(config, tmp_path) as (daemon, notify, log):
        notify.wait_for("READY=1")
        send(smtp_port, "before", "who@nowhere.example")
        wait_until(lambda: count(url, "SELECT count(*) FROM tickets") == 1, timeout=120)

        write(config, tmp_path, smtp_port, http_port, intake="hold_unknown_senders = true",
              smtp="max_message_bytes = 1000000")
        mark = len(notify.messages)
        daemon.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1", after=notify.wait_for("RELOADING=1", after=mark) + 1)
        [restart] = logged(log, "reload.needs_restart")
        assert restart["keys"] == ["smtp.max_message_bytes"]
        assert logged(log, "reload.done")[-1]["config"] == ["intake.hold_unknown_senders"]
        send(smtp_port, "after", "who@nowhere.example")
        wait_until(lambda: count(url, "SELECT count(*) FROM inputs WHERE status = 'held'") == 1,
                   timeout=120)

        config.write_text("[intake\nbroken", encoding="utf-8")
        mark = len(notify.messages)
        daemon.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1", after=notify.wait_for("RELOADING=1", after=mark) + 1)
        assert "TOML syntax" in str(logged(log, "reload.failed")[-1]["error"])
        send(smtp_port, "after a broken file", "who@nowhere.example")
        wait_until(lambda: count(url, "SELECT count(*) FROM inputs WHERE status = 'held'") == 2,
                   timeout=120)
        assert count(url, "SELECT count(*) FROM tickets") == 1
