"""The IMAP channel against a real private Dovecot, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog
from imapclient.exceptions import LoginError
from sqlalchemy import Engine, text
from tenacity import AsyncRetrying, RetryCallState

from gateway.config.settings import MailboxSettings, parse_settings
from gateway.intake.door import IncomingInput, store_inputs
from gateway.intake.imap import MailboxWorker, load_checkpoint, reconnect_wait
from gateway.intake.imap_session import ImapSession
from gateway.store.db import transaction
from gateway.tickets.view import list_tickets
from tests.conftest import RunningGateway, Sink, make_mail
from tests.dovecot import Dovecot, dovecot_fixture, dovecot_tls_fixture  # noqa: F401 (fixtures)

SEEN, DELETED = b"\\Seen", b"\\Deleted"
# Indirect parameters of the `dovecot` fixture: a server lacking a capability, or one whose log
# shows the commands it answered.
COMMANDS_LOGGED = {"log_commands": True}
NO_IDLE = {"without_capabilities": frozenset({"IDLE"}), "log_commands": True}
NO_MOVE = {"without_capabilities": frozenset({"MOVE"}), "log_commands": True}


def worker(running: RunningGateway, index: int = 0) -> MailboxWorker:
    return running.gateway.mailboxes[index]


def poll(running: RunningGateway, index: int = 0) -> int:
    """One explicit round of the mailbox worker: catch up with the server."""
    return running.call(worker(running, index).poll_once)


def tickets(running: RunningGateway) -> list[dict[str, object]]:
    return list_tickets(running.gateway.db.engine)


def inputs_count(engine: Engine) -> int:
    with transaction(engine) as session:
        return len(session.exec(text("SELECT id FROM inputs")).all())  # type: ignore[call-overload]


def wait_until(condition: Callable[[], object], timeout: float = 120.0,
               running: RunningGateway | None = None) -> None:
    """Poll CONDITION (settling RUNNING's pipeline in between) until true or the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running is not None:
            running.settle()
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def test_appended_message_is_registered_and_acknowledged(dovecot: Dovecot, relay_sink: Sink,
                                                         make_gateway) -> None:
    """A message APPENDed to INBOX becomes a ticket with an acknowledgement, then is \\Seen."""
    running = make_gateway(relay_port=relay_sink.port, extra=dovecot.mailbox_config())
    dovecot.append(make_mail(message_id="<imap1@acme.example>"))
    assert poll(running) == 1
    running.settle()
    [ticket] = tickets(running)
    assert ticket["subject"] == "Messages are not delivered"
    [ack] = relay_sink.messages
    assert ack["In-Reply-To"] == "<imap1@acme.example>"
    assert ack["Subject"] == f"[{ticket['number']}] Messages are not delivered"
    assert [SEEN in flags for flags in dovecot.messages().values()] == [True]
    checkpoint = load_checkpoint(running.gateway.db.engine, "support")
    assert checkpoint is not None and checkpoint.last_uid == 1
    with transaction(running.gateway.db.engine) as session:
        [source] = session.exec(text("SELECT source FROM inputs")).one()  # type: ignore[call-overload]
    assert '"via": "imap"' in source and '"uid": 1' in source


@pytest.mark.parametrize("after_import", ["seen", "delete", "move:Done/Imported"])
def test_after_import_only_after_commit(dovecot: Dovecot, make_gateway, after_import: str) -> None:
    """Until the door commits the mailbox stays untouched; after the commit it is acted on."""
    running = make_gateway(extra=dovecot.mailbox_config(after_import=after_import))
    dovecot.append(make_mail(message_id="<commit@acme.example>"))
    engine = running.gateway.db.engine
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inputs RENAME TO inputs_away"))
    with pytest.raises(Exception, match="inputs"):
        poll(running)
    assert [SEEN in flags for flags in dovecot.messages().values()] == [False]
    assert dovecot.messages("Done.Imported") == {}
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE inputs_away RENAME TO inputs"))

    assert poll(running) == 1
    running.settle()
    assert len(tickets(running)) == 1
    left, moved = dovecot.messages(), dovecot.messages("Done.Imported")
    if after_import == "seen":
        assert [SEEN in flags for flags in left.values()] == [True]
    elif after_import == "delete":
        assert left == {} and moved == {}
    else:
        assert left == {} and len(moved) == 1
    assert poll(running) == 0


def test_checkpoint_survives_restart(dovecot: Dovecot, make_gateway) -> None:
    """After a restart only messages above the stored checkpoint are fetched; none re-registered."""
    config = dovecot.mailbox_config()
    first = make_gateway(extra=config)
    dovecot.append(make_mail("first", message_id="<r1@acme.example>"))
    assert poll(first) == 1
    first.settle()
    first.call(first.gateway.stop)

    second = make_gateway(extra=config)
    dovecot.append(make_mail("second", message_id="<r2@acme.example>"))
    assert poll(second) == 1
    second.settle()
    assert worker(second).fetched == 1  # the first message was not fetched again
    assert sorted(str(t["subject"]) for t in tickets(second)) == ["first", "second"]


def test_refetch_after_crash_between_commit_and_flag(dovecot: Dovecot, relay_sink: Sink,
                                                     make_gateway) -> None:
    """A message committed by a run that died before flagging it is flagged, not re-registered."""
    running = make_gateway(relay_port=relay_sink.port, extra=dovecot.mailbox_config())
    raw = make_mail(message_id="<crash@acme.example>")
    dovecot.append(raw)
    # What the dead run left: the input committed, the message unflagged, no checkpoint.
    store_inputs(running.gateway.db.engine, [IncomingInput("email", raw, {"via": "imap"})],
                 running.clock)
    running.settle()
    assert poll(running) == 0
    running.settle()
    assert len(tickets(running)) == 1 and len(relay_sink.messages) == 1
    assert [SEEN in flags for flags in dovecot.messages().values()] == [True]


def test_poison_message_in_a_batch_does_not_stop_the_rest(dovecot: Dovecot,
                                                           make_gateway) -> None:
    """Hostile bytes in the middle of a batch are stored like the rest; the others register."""
    running = make_gateway(extra=dovecot.mailbox_config())
    dovecot.append(make_mail("first", message_id="<p1@acme.example>"))
    dovecot.append(b"\xff\xfe\x01 no header at all \xc3\x28\r\n\r\n\xe2\x82")
    dovecot.append(make_mail("third", message_id="<p3@acme.example>"))
    assert poll(running) == 3
    running.settle()
    assert inputs_count(running.gateway.db.engine) == 3
    subjects = sorted(str(t["subject"]) for t in tickets(running))
    assert "first" in subjects and "third" in subjects
    assert [SEEN in flags for flags in dovecot.messages().values()] == [True] * 3
    checkpoint = load_checkpoint(running.gateway.db.engine, "support")
    assert checkpoint is not None and checkpoint.last_uid == 3


def test_uidvalidity_change_rescans_without_duplicates(dovecot: Dovecot, make_gateway) -> None:
    """A folder recreated with a new UIDVALIDITY is read again; only the new message registers."""
    running = make_gateway(extra=dovecot.mailbox_config(folder="Support"))
    old = [make_mail(f"old {i}", message_id=f"<old{i}@acme.example>") for i in range(2)]
    for raw in old:
        dovecot.append(raw, "Support")
    assert poll(running) == 2
    running.settle()
    engine = running.gateway.db.engine
    before = load_checkpoint(engine, "support")
    assert before is not None and before.last_uid == 2

    with dovecot.client() as client:
        client.delete_folder("Support")
        client.create_folder("Support")
    for raw in [*old, make_mail("new", message_id="<new@acme.example>")]:
        dovecot.append(raw, "Support")
    # The old session may be closed by the server when its folder goes: reconnect once.
    try:
        stored = poll(running)
    except Exception:
        stored = poll(running)
    assert stored == 1
    running.settle()
    after = load_checkpoint(engine, "support")
    assert after is not None and after.uidvalidity != before.uidvalidity
    assert after.last_uid == 3
    assert sorted(str(t["subject"]) for t in tickets(running)) == ["new", "old 0", "old 1"]
    assert [SEEN in flags for flags in dovecot.messages("Support").values()] == [True] * 3


def test_same_message_two_mailboxes_and_smtp_registers_once(dovecot: Dovecot, relay_sink: Sink,
                                                            make_gateway) -> None:
    """One message delivered to two mailboxes and over SMTP is one ticket, one acknowledgement."""
    config = (dovecot.mailbox_config("support", "support")
              + dovecot.mailbox_config("sales", "sales", after_import="delete"))
    running = make_gateway(relay_port=relay_sink.port, extra=config)
    raw = make_mail(message_id="<everywhere@acme.example>")
    dovecot.append(raw, user="support")
    dovecot.append(raw, user="sales")
    with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=30) as client:
        client.sendmail("ivan@acme.example", ["support@example.com"], raw)
    assert poll(running, 0) + poll(running, 1) == 0  # SMTP stored it first
    running.settle()
    assert len(tickets(running)) == 1 and len(relay_sink.messages) == 1
    assert inputs_count(running.gateway.db.engine) == 1
    # Both mailboxes were still told: the message is safe with us.
    assert [SEEN in flags for flags in dovecot.messages(user="support").values()] == [True]
    assert dovecot.messages(user="sales") == {}


def test_bad_password_does_not_stop_other_mailbox(dovecot: Dovecot, relay_sink: Sink,
                                                  make_gateway) -> None:
    """A mailbox that cannot log in is logged and retried while another mailbox flows."""
    config = (dovecot.mailbox_config("broken", "sales", password="wrong-password-123")
              + dovecot.mailbox_config("support", "support"))
    running = make_gateway(relay_port=relay_sink.port, extra=config)
    with structlog.testing.capture_logs() as logs:
        running.call(running.gateway.start_mailboxes)
        dovecot.append(make_mail(message_id="<flows@acme.example>"))
        wait_until(lambda: len(relay_sink.messages) == 1 and worker(running, 0).failures >= 2,
                   running=running)
    broken = worker(running, 0)
    assert not broken.connected and "AUTHENTICATIONFAILED" in str(broken.last_error)
    failures = [e for e in logs if e["event"] == "imap.mailbox_failed"]
    assert failures and all(e["mailbox"] == "broken" for e in failures)
    assert "wrong-password-123" not in repr(logs)
    assert worker(running, 1).connected and len(tickets(running)) == 1
    with pytest.raises(LoginError):
        poll(running, 0)


def test_idle_brings_new_mail_without_polling(dovecot: Dovecot, relay_sink: Sink,
                                              make_gateway) -> None:
    """With IDLE a message arrives within seconds although the poll interval is five minutes."""
    running = make_gateway(relay_port=relay_sink.port,
                           extra=dovecot.mailbox_config(poll_interval_s=300))
    running.call(running.gateway.start_mailboxes)
    wait_until(lambda: worker(running).connected)
    # Not for correctness (mail appended before IDLE begins is found by the first look or
    # reported when IDLE starts): only gives the worker time to enter IDLE, which nothing
    # outside the session can observe (Dovecot logs a command once it has finished).
    time.sleep(0.3)
    started = time.monotonic()
    dovecot.append(make_mail(message_id="<idle@acme.example>"))
    wait_until(lambda: len(relay_sink.messages) == 1, running=running)
    # Far sooner than the next poll (300 s), however busy the machine is.
    assert time.monotonic() - started < 120


def test_polling_without_idle(dovecot: Dovecot, make_gateway) -> None:
    """With idle = false the worker polls every poll_interval_s and still brings the mail in."""
    running = make_gateway(extra=dovecot.mailbox_config(extra="idle = false"))
    running.call(running.gateway.start_mailboxes)
    wait_until(lambda: worker(running).connected)
    dovecot.append(make_mail(message_id="<polled@acme.example>"))
    wait_until(lambda: len(tickets(running)) == 1, running=running)


@dataclass
class Waits:
    """What the worker asked of `ImapSession.wait_for_news`: seconds, and whether news came."""

    seconds: list[float] = field(default_factory=list)
    news: list[bool] = field(default_factory=list)


def record_waits(monkeypatch: pytest.MonkeyPatch,
                 before: Callable[[int], None] = lambda n: None) -> Waits:
    """Record every wait for news; BEFORE(n) runs in the worker's thread before the n-th."""
    waits = Waits()
    real = ImapSession.wait_for_news

    def wait_for_news(session: ImapSession, seconds: float) -> bool:
        waits.seconds.append(seconds)
        before(len(waits.seconds))
        news = real(session, seconds)
        waits.news.append(news)
        return news

    monkeypatch.setattr(ImapSession, "wait_for_news", wait_for_news)
    return waits


@pytest.mark.parametrize("dovecot", [NO_IDLE], ids=["no-IDLE"], indirect=True)
def test_polls_when_the_server_lacks_idle(dovecot: Dovecot, make_gateway,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With idle = true but no IDLE advertised the worker polls every poll_interval_s instead."""
    waits = record_waits(monkeypatch)
    running = make_gateway(extra=dovecot.mailbox_config(poll_interval_s=1))
    assert worker(running).settings.idle
    started = time.monotonic()
    running.call(running.gateway.start_mailboxes)
    wait_until(lambda: worker(running).connected)
    dovecot.append(make_mail(message_id="<no-idle@acme.example>"))
    wait_until(lambda: len(tickets(running)) == 1, running=running)
    # Each round is one NOOP; three of them show the worker keeps polling.
    wait_until(lambda: dovecot.commands().count("NOOP") >= 3)
    elapsed = time.monotonic() - started
    commands = dovecot.commands()
    assert "IDLE" not in commands
    # Rounds a poll_interval_s apart, not faster (the first round comes before any wait).
    assert commands.count("NOOP") <= elapsed / 1 + 2
    assert waits.seconds and set(waits.seconds) == {1} and not any(waits.news)


@pytest.mark.parametrize("dovecot", [COMMANDS_LOGGED], ids=["commands-logged"], indirect=True)
def test_idle_is_issued_again_after_idle_timeout(dovecot: Dovecot, make_gateway,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """IDLE ends after idle_timeout_s and is issued again; an IDLE after two such re-issues
    still reports new mail."""

    def deliver(n: int) -> None:
        # After two IDLEs that ran out and the round after them, so only the third IDLE can
        # find this message before its own timeout.
        if n == 3:
            dovecot.append(make_mail(message_id="<reissued@acme.example>"))

    waits = record_waits(monkeypatch, deliver)
    running = make_gateway(extra=dovecot.mailbox_config(
        poll_interval_s=300, extra="idle_timeout_s = 1"))
    running.call(running.gateway.start_mailboxes)
    wait_until(lambda: len(tickets(running)) == 1, running=running)
    assert waits.news[:3] == [False, False, True]
    assert set(waits.seconds) == {1}
    # Dovecot saw each IDLE end (DONE) before the next began.
    wait_until(lambda: dovecot.commands().count("IDLE") >= 3)


@pytest.mark.parametrize("dovecot", [NO_MOVE], ids=["no-MOVE"], indirect=True)
def test_move_without_move_capability_copies_then_expunges(dovecot: Dovecot,
                                                           make_gateway) -> None:
    """Without MOVE, move:Folder is COPY, \\Deleted and UID EXPUNGE: each message lands in the
    target once, leaves INBOX and registers once."""
    running = make_gateway(extra=dovecot.mailbox_config(after_import="move:Done/Imported"))
    ids = [f"<copied{n}@acme.example>" for n in range(3)]
    for n, message_id in enumerate(ids):
        dovecot.append(make_mail(f"copied {n}", message_id=message_id))
    assert poll(running) == 3
    assert poll(running) == 0
    running.settle()
    assert dovecot.messages() == {}
    moved = dovecot.messages("Done.Imported")
    assert len(moved) == 3 and not any(DELETED in flags for flags in moved.values())
    assert sorted(message_ids(dovecot, "Done.Imported")) == sorted(ids)
    assert len(tickets(running)) == 3 and inputs_count(running.gateway.db.engine) == 3
    # UID EXPUNGE, not EXPUNGE: only our messages go, not others someone flagged \\Deleted.
    wait_until(lambda: "UID EXPUNGE" in dovecot.commands())
    commands = dovecot.commands()
    assert "UID COPY" in commands
    assert not {"UID MOVE", "MOVE", "EXPUNGE"} & set(commands)


def message_ids(dovecot: Dovecot, folder: str) -> list[str]:
    """The Message-ID of every message in FOLDER."""
    with dovecot.client() as client:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    return [bytes(data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]).decode().split(":", 1)[1].strip()
            for data in fetched.values()]


def test_reconnect_wait_grows_exponentially_with_jitter_up_to_the_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Reconnect attempt n waits a random time up to 0.5 s * 2**(n-1), never above
    reconnect_max_s."""
    settings = MailboxSettings(name="m", host="imap.example.com", username="u",
                               reconnect_max_s=5)
    wait = reconnect_wait(settings)

    def attempt(number: int) -> RetryCallState:
        state = RetryCallState(AsyncRetrying(), None, (), {})
        state.attempt_number = number
        return state

    # (attempt, the longest wait): tenacity draws uniformly between 0 and it.
    table = [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (6, 5.0), (20, 5.0), (200, 5.0)]
    with monkeypatch.context() as patched:
        patched.setattr(random, "uniform", lambda low, high: high)
        assert [(n, wait(attempt(n))) for n, _ in table] == table
        patched.setattr(random, "uniform", lambda low, high: low)
        assert [wait(attempt(n)) for n, _ in table] == [0.0] * len(table)
    # Unpatched, the waits of one attempt spread over the whole window.
    for n, longest in table:
        samples = [wait(attempt(n)) for _ in range(200)]
        assert all(0 <= s <= longest for s in samples)
        assert max(samples) > 0.8 * longest and min(samples) < 0.2 * longest


def test_relative_ca_file_is_relative_to_the_config(tmp_path: Path) -> None:
    """A relative ca_file is read from beside the config file, like every other path in it."""
    text = ('[[mailboxes]]\nname = "m"\nhost = "imap.example.com"\nusername = "u"\n'
            'password = "s3cr3t-value"\nca_file = "certs/ca.pem"\n')
    settings = parse_settings(text, tmp_path / "gateway.toml")
    [mailbox] = settings.mailboxes
    assert mailbox.ca_file == tmp_path / "certs" / "ca.pem"
    assert mailbox.idle_timeout_s == 25 * 60 and "s3cr3t-value" not in repr(mailbox)


def test_reconnects_after_dovecot_restart(dovecot: Dovecot, make_gateway) -> None:
    """Dovecot stopped and started again: the worker reconnects and the mail flows on."""
    running = make_gateway(extra=dovecot.mailbox_config())
    running.call(running.gateway.start_mailboxes)
    dovecot.append(make_mail("before", message_id="<before@acme.example>"))
    wait_until(lambda: len(tickets(running)) == 1, running=running)
    dovecot.stop()
    wait_until(lambda: worker(running).failures >= 1 and not worker(running).connected)
    dovecot.start()
    dovecot.append(make_mail("after", message_id="<after@acme.example>"))
    wait_until(lambda: len(tickets(running)) == 2, running=running)
    assert sorted(str(t["subject"]) for t in tickets(running)) == ["after", "before"]
    assert worker(running).connected


def test_tls_and_starttls_verify_the_certificate(dovecot_tls: Dovecot, make_gateway) -> None:
    """TLS and STARTTLS work with the private CA in ca_file and fail without it."""
    ca_file = dovecot_tls.ca_file
    config = (dovecot_tls.mailbox_config("tls", folder="INBOX")
              + dovecot_tls.mailbox_config("starttls", starttls=True, after_import="delete"))
    dovecot_tls.ca_file = None  # a third mailbox that trusts only the system's CAs
    config += dovecot_tls.mailbox_config("untrusted")
    dovecot_tls.ca_file = ca_file
    running = make_gateway(extra=config)
    dovecot_tls.append(make_mail(message_id="<tls@acme.example>"))
    assert poll(running, 0) == 1
    assert poll(running, 1) == 0  # the same message, seen through STARTTLS: a duplicate
    assert dovecot_tls.messages() == {}
    with pytest.raises(ssl.SSLCertVerificationError):
        poll(running, 2)
    running.settle()
    assert len(tickets(running)) == 1
    assert inputs_count(running.gateway.db.engine) == 1
