"""The command line as an operator uses it: a real daemon process, config checks, imports."""

from __future__ import annotations

import json
import mailbox
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.cli.quarantine import list_quarantine
from gateway.clock import SystemClock
from gateway.config.settings import load_settings
from gateway.daemon.context_files import build_context
from gateway.intake.door import IncomingInput, store_inputs
from gateway.store.db import open_migrated
from gateway.tickets.processing import process_pending
from gateway.tickets.view import list_tickets
from tests.conftest import RunningGateway, config_text, free_port, make_mail
from tests.gateway.intake.test_limits import with_attachments
from tests.ops.daemon import wait_for_listening
from tests.terminal import in_terminal

CLI = [sys.executable, "-m", "gateway"]
MakeGateway = Callable[..., RunningGateway]


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


def wait_for(predicate, timeout_s: float = 120.0) -> None:  # type: ignore[no-untyped-def]
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
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen([*CLI, "--config", str(config), "run"], stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        # As long as a busy machine needs; a daemon that exits or never listens fails the
        # test with its log.
        wait_for_listening(port, daemon, log)
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.sendmail("ivan@acme.example", ["support@example.com"],
                            make_mail("First contact", message_id="<first@acme.example>"))
        wait_for(lambda: any((state / "outgoing" / "new").glob("*")))
        tickets = json.loads(cli("tickets", "list", "--json", config=config).stdout)
        assert [(t["number"], t["subject"]) for t in tickets] == [("SUP-000001", "First contact")]
        assert tickets[0]["acknowledged_at"] is not None or len(list(
            (state / "outgoing" / "new").iterdir())) == 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(120)
    output = log.read_text(errors="replace")
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
    """`ingest` takes .eml files, an mbox and a maildir through the same door, once each, and
    draws no progress bar when its output is not a terminal."""
    eml = tmp_path / "one.eml"
    eml.write_bytes(make_mail("from eml", message_id="<e1@acme.example>"))
    box = mailbox.mbox(tmp_path / "archive.mbox")
    for index in range(3):
        box.add(make_mail(f"from mbox {index}", message_id=f"<mb{index}@acme.example>"))
    box.close()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(make_mail("from maildir", message_id="<md@acme.example>"))
    maildir.add(make_mail("from eml", message_id="<e1@acme.example>"))  # the same message again

    result = cli("ingest", "--acknowledge", str(eml), str(tmp_path / "archive.mbox"),
                 str(tmp_path / "Maildir"), config=config)
    assert result.stdout.splitlines()[0] == (
        "stored 5 new input(s), 1 already known, 5 message(s) sent")
    # A pipe: a bar's carriage-return redraws would only litter a log or a script's input.
    assert "storing" not in result.stderr
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


def test_tickets_list_for_people(tmp_path: Path) -> None:
    """`tickets list` has a header row and shows times in Moscow (the policy's report zone)
    unless --tz names another; an unknown --status is an error naming the valid ones.
    (SQLite only: what is tested is the command's text, not the database.)"""
    config = tmp_path / "config.toml"
    config.write_text(config_text(f"sqlite:///{tmp_path / 'intake.db'}", tmp_path / "state",
                                  free_port()), encoding="utf-8")
    eml = tmp_path / "dated.eml"
    eml.write_bytes(make_mail("Dated", headers={"Date": "Wed, 25 Nov 2026 07:00:00 +0000"}))
    cli("ingest", str(eml), config=config)
    header, row = cli("tickets", "list", config=config).stdout.splitlines()
    assert header.split() == ["NUMBER", "STATUS", "PRIORITY", "CUSTOMER", "RECEIVED", "SUBJECT"]
    assert row.startswith("SUP-000001") and "2026-11-25 10:00 MSK" in row
    assert row.endswith("Dated")
    utc = cli("tickets", "list", "--tz", "UTC", config=config).stdout.splitlines()[1]
    assert "2026-11-25 07:00 UTC" in utc
    bogus = cli("tickets", "list", "--status", "bogus", config=config, check=False)
    assert bogus.returncode == 2 and bogus.stdout == ""
    assert "invalid choice: 'bogus'" in bogus.stderr
    for status in ("pending_registration", "registered", "resolved", "closed", "merged"):
        assert status in bogus.stderr
    unknown_zone = cli("tickets", "list", "--tz", "Mars/Olympus", config=config, check=False)
    assert unknown_zone.returncode == 2 and "unknown time zone" in unknown_zone.stderr


def test_quarantine_list_and_retry(tmp_path: Path, database_url: str) -> None:
    """Held mail shows in `quarantine list`; `quarantine retry` releases and registers it."""
    path = tmp_path / "config.toml"
    path.write_text(config_text(database_url, tmp_path / "state", free_port(),
                                intake="hold_unknown_senders = true"), encoding="utf-8")
    (tmp_path / "x.eml").write_bytes(make_mail("stranger", sender="who@nowhere.example"))
    cli("ingest", "--acknowledge", str(tmp_path / "x.eml"), config=path)
    rows = json.loads(cli("quarantine", "list", "--json", config=path).stdout)
    assert [(r["id"], r["status"]) for r in rows] == [(1, "held")]
    assert "not a known customer" in rows[0]["error"]
    assert cli("quarantine", "retry", config=path, check=False).returncode == 2
    retried = cli("quarantine", "retry", "1", config=path).stdout
    assert retried.strip() == "retried 1: 1 processed, 0 failed again, 1 sent"
    assert json.loads(cli("quarantine", "list", "--json", config=path).stdout) == []
    [ticket] = json.loads(cli("tickets", "list", "--json", config=path).stdout)
    assert ticket["requester"]["email"] == "who@nowhere.example"


def test_ingest_shows_a_progress_bar_on_a_terminal(config: Path, tmp_path: Path) -> None:
    """On a terminal `ingest` draws a progress bar of the messages stored, then its summary."""
    box = mailbox.mbox(tmp_path / "archive.mbox")
    for index in range(30):
        box.add(make_mail(f"archived {index}", body="Short archived request."))
    box.close()
    command = [*CLI, "--config", str(config), "ingest", str(tmp_path / "archive.mbox")]
    with in_terminal(command) as terminal:
        assert terminal.finish(timeout_s=120) == 0, terminal.text
    redraws = [r.strip() for r in re.split(r"[\r\n]", terminal.text)]
    for step in ("storing", "processing"):
        assert any(re.fullmatch(rf"{step}: 100%\|█+\| 30/30 \[.*msg/s\]", r)
                   for r in redraws), terminal.text
    assert any(r.startswith("stored 30 new input(s), 0 already known, ") for r in redraws)
    assert "30 registered" in redraws


def test_ingest_summary_by_outcome_and_exit_status(tmp_path: Path) -> None:
    """Not on a terminal, `ingest` draws no bar; its summary counts the outcomes, and a
    message quarantined makes the exit status 1. (SQLite only: the outcomes' SQL runs on both
    databases in tests/gateway/http/test_metrics_labels.py.)"""
    strict, _relaxed = configs(tmp_path, f"sqlite:///{tmp_path / 'intake.db'}")
    files = {"request.eml": make_mail("A request", message_id="<req@acme.example>"),
             "reply.eml": make_mail("Re: A request",
                                    headers={"In-Reply-To": "<req@acme.example>"}),
             "auto.eml": make_mail("Out of office", headers={"Auto-Submitted": "auto-replied"}),
             "heavy.eml": with_attachments(3)}
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)
    result = cli("ingest", *(str(tmp_path / name) for name in files), config=strict,
                 check=False)
    assert result.returncode == 1, result.stderr
    assert "storing:" not in result.stderr and "msg/s" not in result.stderr
    assert result.stdout.splitlines() == [
        "stored 4 new input(s), 0 already known, 0 message(s) sent",
        "       1 registered",
        "       1 added to a ticket",
        "       1 stored, not registered (auto-replies, bounces, lists)",
        "       1 quarantined as failed (intake-gateway quarantine list)"]
    again = cli("ingest", str(tmp_path / "request.eml"), config=strict)
    assert again.stdout.splitlines() == [
        "stored 0 new input(s), 1 already known, 0 message(s) sent"]


def stored_and_processed(config: Path, *raws: bytes) -> None:
    """Store RAWS and process them once, as `ingest` does, in this process (no start-up of a
    command line), on the system clock the command line uses too."""
    loaded = load_settings(config)
    engine = open_migrated(loaded.settings.database_url())
    try:
        store_inputs(engine, [IncomingInput("email", raw) for raw in raws], SystemClock())
        process_pending(engine, build_context(loaded, SystemClock()), len(raws))
    finally:
        engine.dispose()


def configs(tmp_path: Path, database_url: str, intake: str = "") -> tuple[Path, Path]:
    """Two configs of one gateway (one database, one outgoing maildir): with a limit of two
    attachments per message, and with the default limits."""
    state, port = tmp_path / "state", free_port()
    strict, relaxed = tmp_path / "strict.toml", tmp_path / "relaxed.toml"
    strict.write_text(config_text(database_url, state, port, intake=intake,
                                  extra="[limits]\nattachments = 2\n"), encoding="utf-8")
    relaxed.write_text(config_text(database_url, state, port, intake=intake), encoding="utf-8")
    return strict, relaxed


def outcome(config: Path) -> tuple[list[str], list[str], int]:
    """Ticket subjects, quarantined statuses, acknowledgements written to the maildir."""
    loaded = load_settings(config)
    engine = open_migrated(loaded.settings.database_url())
    try:
        subjects = sorted(t["subject"] for t in list_tickets(engine))
        quarantined = [row["status"] for row in list_quarantine(engine)]
    finally:
        engine.dispose()
    maildir = loaded.settings.intake.state_dir / "outgoing" / "new"
    return subjects, quarantined, len(list(maildir.iterdir())) if maildir.is_dir() else 0


def test_quarantine_retry_of_a_failed_input(tmp_path: Path, database_url: str) -> None:
    """A failed input retried while its cause remains stays failed; retried once the cause is
    gone it registers and is acknowledged once; retried again, nothing happens."""
    strict, relaxed = configs(tmp_path, database_url)
    stored_and_processed(strict, with_attachments(3))
    assert outcome(strict) == ([], ["failed"], 0)
    still = cli("quarantine", "retry", "1", config=strict)
    assert still.stdout.strip() == "retried 1: 0 processed, 1 failed again, 0 sent"
    # Why it failed again is logged on stderr, out of the way of the command's answer.
    [failed] = [json.loads(line) for line in still.stderr.splitlines() if line.startswith("{")]
    assert (failed["event"], failed["input_id"], failed["error"]) == (
        "input.failed", 1, "LimitExceeded: attachments 3 exceeds the maximum 2")
    assert outcome(strict) == ([], ["failed"], 0)
    assert cli("quarantine", "retry", "1", config=relaxed).stdout.strip() == (
        "retried 1: 1 processed, 0 failed again, 1 sent")
    assert outcome(relaxed) == (["Logs attached"], [], 1)
    assert cli("quarantine", "retry", "1", config=relaxed).stdout.strip() == "nothing to retry"
    assert outcome(relaxed) == (["Logs attached"], [], 1)


def test_quarantine_retry_all_failed_and_held(tmp_path: Path, database_url: str) -> None:
    """`quarantine retry --all` registers every failed and held input once, and run again
    finds nothing to retry."""
    strict, relaxed = configs(tmp_path, database_url, intake="hold_unknown_senders = true")
    stored_and_processed(strict, with_attachments(3),
                         make_mail("stranger", sender="who@nowhere.example"))
    assert outcome(strict) == ([], ["failed", "held"], 0)
    assert cli("quarantine", "retry", "--all", config=relaxed).stdout.strip() == (
        "retried 2: 2 processed, 0 failed again, 2 sent")
    assert outcome(relaxed) == (["Logs attached", "stranger"], [], 2)
    assert cli("quarantine", "retry", "--all", config=relaxed).stdout.strip() == (
        "nothing to retry")
    assert outcome(relaxed) == (["Logs attached", "stranger"], [], 2)


def test_config_named_by_the_environment(config: Path, tmp_path: Path) -> None:
    """Without --config, check-config and `tickets list` use the file INTAKE_GATEWAY_CONFIG
    names; --config wins over it."""
    stored_and_processed(config, make_mail("found through the environment"))
    env = {"INTAKE_GATEWAY_CONFIG": str(config)}
    assert cli("check-config", env=env).stdout.strip() == f"{config}: OK"
    tickets = json.loads(cli("tickets", "list", "--json", env=env).stdout)
    assert [t["subject"] for t in tickets] == ["found through the environment"]
    broken = tmp_path / "broken.toml"
    broken.write_text('[smtp]\nlisten = "nowhere"\n', encoding="utf-8")
    env = {"INTAKE_GATEWAY_CONFIG": str(broken)}
    refused = cli("check-config", env=env, check=False)
    assert (refused.returncode, refused.stderr.splitlines()) == (
        2, [f"{broken}:2: smtp.listen: expected host:port, got 'nowhere'"])
    assert cli("check-config", config=config, env=env).stdout.strip() == f"{config}: OK"


GLOBEX = ('[[customer]]\nid = "acme"\ntier = "8/5"\ndomains = ["acme.example"]\n\n'
          '[[customer]]\nid = "globex"\ntier = "24/7"\ndomains = ["globex.example"]\n')


def test_tickets_list_by_customer_and_since(make_gateway: MakeGateway, tmp_path: Path) -> None:
    """`tickets list --customer ID` keeps that customer's tickets, `--since` those received at
    or after the instant (in any zone), and together both must hold; newest first."""
    (tmp_path / "customers.toml").write_text(GLOBEX, encoding="utf-8")
    running: RunningGateway = make_gateway(extra='[files]\ncustomers = "customers.toml"\n')

    def send(*mails: tuple[str, str]) -> None:
        with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
            for subject, sender in mails:
                client.sendmail(sender, ["support@example.com"],
                                make_mail(subject, sender=sender))
        running.settle()

    send(("acme early", "ivan@acme.example"))
    running.clock.advance(timedelta(hours=2))  # 10:00 UTC, 13:00 in Moscow
    send(("globex later", "ann@globex.example"), ("acme later", "ivan@acme.example"))
    config = running.gateway.loaded.path
    assert config is not None

    def subjects(*filters: str) -> list[str]:
        listed = cli("tickets", "list", "--json", *filters, config=config).stdout
        return [t["subject"] for t in json.loads(listed)]

    assert subjects("--customer", "acme") == ["acme later", "acme early"]
    # The instant the later two were received, written in Moscow time: included.
    assert subjects("--since", "2026-11-25T13:00:00+03:00") == ["acme later", "globex later"]
    assert subjects("--customer", "globex", "--since", "2026-11-25T10:00:01Z") == []
