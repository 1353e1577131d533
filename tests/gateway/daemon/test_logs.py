"""Log output: console lines on a terminal, JSON lines otherwise, and no secret values in either."""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gateway.daemon.logs import configure_logging
from tests.conftest import config_text, free_port
from tests.terminal import in_terminal

SECRET = "hunter2-never-printed"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back structlog's configuration and the root logger's handlers after the test, so
    no later test logs into this test's captured (and by then closed) stdout."""
    saved = structlog.get_config()
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    structlog.configure(**saved)
    logging.root.handlers[:], logging.root.level = handlers, level


def test_daemon_writes_console_lines_to_a_terminal(tmp_path: Path) -> None:
    """`run` with a terminal as stdout logs console lines (time, [level], event, key=value),
    not JSON."""
    smtp_port = free_port()
    config = tmp_path / "config.toml"
    # No worker processes: they are not what this test is about, and they take time to start.
    config.write_text(config_text(f"sqlite:///{tmp_path / 'intake.db'}", tmp_path / "state",
                                  smtp_port, intake="workers = 0"), encoding="utf-8")
    with in_terminal([sys.executable, "-m", "gateway", "--config", str(config), "run"]) as term:
        term.read_until("gateway.ready", timeout_s=60)
        term.process.send_signal(signal.SIGTERM)
        assert term.finish(timeout_s=30) == 0, term.text
    lines = term.text.splitlines()
    [ready] = [line for line in lines if "gateway.ready" in line]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[info\s*\] gateway\.ready\s+"
                        rf".*\bsmtp=127\.0\.0\.1:{smtp_port}\b.*", ready), ready
    assert "gateway.stopped" in lines[-1]
    assert not [line for line in lines if line.lstrip().startswith("{")]


def test_json_lines_when_stdout_is_not_a_terminal(capsys: pytest.CaptureFixture[str],
                                                  restore_logging: None) -> None:
    """With format "auto" and stdout not a terminal, each event is one JSON object."""
    assert not sys.stdout.isatty()
    configure_logging("info", "auto")
    structlog.get_logger("probe").info("probe.json", input_id=7, ticket="SUP-000001")
    [line] = capsys.readouterr().out.splitlines()
    event = json.loads(line)
    assert {k: event[k] for k in ("event", "level", "input_id", "ticket")} == {
        "event": "probe.json", "level": "info", "input_id": 7, "ticket": "SUP-000001"}
    assert event["timestamp"].endswith("Z")


@pytest.mark.parametrize("output_format", ["json", "console"])
def test_secret_values_never_reach_the_output(output_format: str,
                                              capsys: pytest.CaptureFixture[str],
                                              restore_logging: None) -> None:
    """A value under a key that names a password, secret or token (alone or as the end of the
    key) is printed as [redacted], whether given with the event, bound to the logger or bound
    to the context; other values are printed."""
    configure_logging("info", output_format)
    log = structlog.get_logger("probe").bind(secret=SECRET, webhook_secret=SECRET)
    with structlog.contextvars.bound_contextvars(token=SECRET):
        log.warning("probe.secrets", password=SECRET, smtp_password=SECRET,
                    admin_token=SECRET, api_token=SECRET, Authorization=f"Bearer {SECRET}",
                    user="ivan@acme.example", tokens=3)
    out = capsys.readouterr().out
    assert SECRET not in out, out
    assert "probe.secrets" in out and "ivan@acme.example" in out
    if output_format == "json":
        event = json.loads(out)
        hidden = {"secret", "webhook_secret", "token", "password", "smtp_password",
                  "admin_token", "api_token", "Authorization"}
        assert {key: event[key] for key in hidden} == dict.fromkeys(hidden, "[redacted]")
        # A key that merely contains such a word is not a secret.
        assert event["tokens"] == 3
