"""The command line as an operator uses it: a real daemon process, config checks, imports."""

from __future__ import annotations

import json
import mailbox
import os
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import config_text, free_port, make_mail

CLI = [sys.executable, "-m", "gateway"]


def cli(*args: str, config: Path | None = None, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [*CLI, *(["--config", str(config)] if config else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})}, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(config_text(database_url, tmp_path / "state", free_port()), encoding="utf-8")
    return path


def wait_for(predicate, timeout_s: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Poll an observable condition; the daemon runs on its own, so there is nothing to await."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_daemon_registers_and_acknowledges_then_stops_cleanly(tmp_path: Path) -> None:
    """`run` on a config: mail in over SMTP -> `tickets list` shows it, the ack is in the maildir;
    SIGTERM stops the daemon with exit status 0."""
    port = free_port()
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    # The daemon runs on the wall clock: the 24/7 tier acknowledges at any hour.
    config.write_text(config_text(f"sqlite:///{tmp_path / 'intake.db'}", state, port,
                                  intake='unknown_customer_tier = "24/7"'),
                      encoding="utf-8")
    daemon = subprocess.Popen([*CLI, "--config", str(config), "run"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        def listening() -> bool:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
                return True
            except OSError:
                return False

        wait_for(listening)
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("ivan@acme.example", ["support@example.com"],
                            make_mail("First contact", message_id="<first@acme.example>"))
        wait_for(lambda: any((state / "outgoing" / "new").glob("*")))
        tickets = json.loads(cli("tickets", "list", "--json", config=config).stdout)
        assert [(t["number"], t["subject"]) for t in tickets] == [("SUP-000001", "First contact")]
        assert tickets[0]["acknowledged_at"] is not None or len(list(
            (state / "outgoing" / "new").iterdir())) == 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert events[0] == "gateway.ready" and events[-1] == "gateway.stopped"
    registered = next(line for line in lines if line["event"] == "ticket.registered")
    assert registered["ticket"] == "SUP-000001" and registered["input_id"] == 1


def test_check_config_reports_file_line_key(tmp_path: Path) -> None:
    """A bad config exits 2 with one `file:line: key: problem` line per problem."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp]\nlisten = "nowhere"\n\n[outgoing]\nport = 0\n'
                   'password_file = "/nonexistent/secret"\n', encoding="utf-8")
    result = cli("check-config", config=bad, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{bad}:6: outgoing.password_file: cannot read secret file: No such file or directory",
        f"{bad}:2: smtp.listen: expected host:port, got 'nowhere'",
        f"{bad}:5: outgoing.port: Input should be greater than 0",
    ]
    syntax = tmp_path / "syntax.toml"
    syntax.write_text("[smtp\n", encoding="utf-8")
    result = cli("check-config", config=syntax, check=False)
    assert result.returncode == 2 and result.stderr.startswith(f"{syntax}:1: TOML syntax")


def test_check_config_reads_secrets_from_file_and_env(tmp_path: Path) -> None:
    """Secrets come from *_file and *_env; a good config prints OK and exits 0."""
    secret = tmp_path / "smtp.password"
    secret.write_text("s3cret\n", encoding="utf-8")
    good = tmp_path / "good.toml"
    good.write_text('[outgoing]\nhost = "127.0.0.1"\npassword_file = "smtp.password"\n\n'
                    '[http]\nadmin_token_env = "IG_TOKEN"\n', encoding="utf-8")
    assert cli("check-config", config=good, env={"IG_TOKEN": "t"}).stdout.strip() == f"{good}: OK"
    missing = cli("check-config", config=good, check=False, env={"IG_TOKEN": ""})
    assert missing.returncode == 2
    assert "http.admin_token_env: environment variable IG_TOKEN is not set" in missing.stderr
    assert "s3cret" not in missing.stderr + missing.stdout


def test_embedded_defaults_are_valid() -> None:
    """With no config at all, check-config accepts the embedded defaults."""
    env = {"INTAKE_GATEWAY_CONFIG": ""}
    assert cli("check-config", env=env).stdout.strip() == "embedded defaults: OK"


def test_parse_prints_contract_keys(tmp_path: Path) -> None:
    """`parse --json` prints one object with the keys CONTRACT.md lists; nothing is registered."""
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_mail("Звонки обрываются", message_id="<p1@acme.example>",
                              headers={"Importance": "high"}))
    data = json.loads(cli("parse", str(eml), "--json").stdout)
    for key in ("from", "to", "cc", "subject", "message_id", "in_reply_to", "references", "date",
                "text", "attachments", "reply_text", "kind", "failed_recipients",
                "declared_priority"):
        assert key in data
    assert data["subject"] == "Звонки обрываются"
    assert data["message_id"] == "p1@acme.example"
    assert data["from"] == {"name": "Ivan Petrov", "address": "ivan@acme.example"}
    assert data["declared_priority"] == "high"
    missing = cli("parse", str(tmp_path / "absent.eml"), check=False)
    assert missing.returncode == 2 and "absent.eml" in missing.stderr


def test_ingest_eml_mbox_and_maildir(config: Path, tmp_path: Path) -> None:
    """`ingest` takes .eml files, an mbox and a maildir through the same door, once each."""
    eml = tmp_path / "one.eml"
    eml.write_bytes(make_mail("from eml", message_id="<e1@acme.example>"))
    box = mailbox.mbox(tmp_path / "archive.mbox")
    for index in range(3):
        box.add(make_mail(f"from mbox {index}", message_id=f"<mb{index}@acme.example>"))
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(make_mail("from maildir", message_id="<md@acme.example>"))
    maildir.add(make_mail("from eml", message_id="<e1@acme.example>"))  # the same message again

    result = cli("ingest", str(eml), str(tmp_path / "archive.mbox"), str(tmp_path / "Maildir"),
                 config=config)
    assert result.stdout.splitlines()[0] == (
        "stored 5 new input(s), 1 already known, 5 message(s) sent")
    subjects = sorted(t["subject"] for t in json.loads(
        cli("tickets", "list", "--json", config=config).stdout))
    assert subjects == ["from eml", "from maildir", "from mbox 0", "from mbox 1", "from mbox 2"]
    again = cli("ingest", str(eml), config=config)
    assert again.stdout.startswith("stored 0 new input(s), 1 already known")


def test_tickets_filters_and_show(config: Path, tmp_path: Path) -> None:
    """`tickets list` filters and limits; `tickets show` prints one ticket, or exits 1."""
    for index in range(3):
        (tmp_path / f"{index}.eml").write_bytes(make_mail(f"subject {index}"))
    cli("ingest", *(str(tmp_path / f"{i}.eml") for i in range(3)), config=config)
    limited = json.loads(cli("tickets", "list", "--json", "--limit", "2", config=config).stdout)
    assert [t["number"] for t in limited] == ["SUP-000003", "SUP-000002"]
    assert json.loads(cli("tickets", "list", "--json", "--status", "closed",
                          config=config).stdout) == []
    shown = json.loads(cli("tickets", "show", "SUP-000001", "--json", config=config).stdout)
    assert shown["subject"] == "subject 0"
    assert cli("tickets", "show", "SUP-999999", config=config, check=False).returncode == 1
    bad_since = cli("tickets", "list", "--since", "2026-11-25", config=config, check=False)
    assert bad_since.returncode == 2


def test_quarantine_list_and_retry(tmp_path: Path, database_url: str) -> None:
    """Held mail shows in `quarantine list`; `quarantine retry` releases and registers it."""
    path = tmp_path / "config.toml"
    path.write_text(config_text(database_url, tmp_path / "state", free_port(),
                                intake="hold_unknown_senders = true"), encoding="utf-8")
    (tmp_path / "x.eml").write_bytes(make_mail("stranger", sender="who@nowhere.example"))
    cli("ingest", str(tmp_path / "x.eml"), config=path)
    rows = json.loads(cli("quarantine", "list", "--json", config=path).stdout)
    assert [(r["id"], r["status"]) for r in rows] == [(1, "held")]
    assert "not a known customer" in rows[0]["error"]
    assert cli("quarantine", "retry", config=path, check=False).returncode == 2
    retried = cli("quarantine", "retry", "1", config=path).stdout
    assert retried.strip() == "retried 1: 1 processed, 0 failed again, 1 sent"
    assert json.loads(cli("quarantine", "list", "--json", config=path).stdout) == []
    [ticket] = json.loads(cli("tickets", "list", "--json", config=path).stdout)
    assert ticket["requester"]["email"] == "who@nowhere.example"
