"""IMAP faults with real peers: the daemon killed mid-import, Dovecot or the database away."""

from __future__ import annotations

import imaplib
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from gateway.intake.imap import load_checkpoint
from gateway.intake.imap_session import ImapSession
from tests.conftest import PG_ADMIN, config_text, free_port, make_mail
from tests.dovecot import Dovecot, dovecot_fixture  # noqa: F401 (fixture)
from tests.gateway.intake.test_imap import SEEN, inputs_count, poll, tickets, wait_until, worker
from tests.ops.daemon import count, start_daemon


def test_sigkill_during_import_registers_each_message_once(dovecot: Dovecot, database_url: str,
                                                           tmp_path: Path) -> None:
    """Killed three times at random moments while importing 300 messages: in the end every
    message is registered once, flagged \\Seen, and acknowledged once. A message leased for
    sending by a killed daemon is sent once its lease expires (5 s here, not 5 minutes); one
    whose send and record straddled a kill is sent again, and the maildir, which names a
    message by its content, keeps one copy."""
    total, kills = 300, 3
    state = tmp_path / "state"
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(database_url, state, free_port(),
                                  extra=dovecot.mailbox_config(poll_interval_s=0.2),
                                  outgoing_extra="lease_s = 5\n"))
    for n in range(total):
        # Senders differ: one sender gets at most 10 acknowledgements in 3 hours.
        dovecot.append(make_mail(f"Request {n}", sender=f"c{n}@acme.example",
                                 message_id=f"<kill{n}@acme.example>"))
    rng = random.Random(7)
    log = tmp_path / "daemon.log"
    for _ in range(kills):
        daemon = start_daemon(config, log)
        try:
            # Kill somewhere inside the import: after the first inputs are in, before the last.
            wait_until(lambda: count(database_url, "SELECT count(*) FROM inputs") > 0,
                       timeout=60)
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
    daemon = start_daemon(config, log)
    try:
        wait_until(lambda: count(database_url, "SELECT count(*) FROM outbox WHERE status = "
                                 "'sent'") == total, timeout=120)
        assert count(database_url, "SELECT count(*) FROM inputs") == total
        assert count(database_url, "SELECT count(*) FROM tickets") == total
        assert count(database_url, "SELECT count(DISTINCT ticket_id) FROM outbox") == total
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            assert daemon.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            if daemon.poll() is None:  # never leave a daemon (or its workers) behind
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
    sent = list((state / "outgoing" / "new").iterdir())
    assert len(sent) == total
    assert all(SEEN in flags for flags in dovecot.messages().values())


def test_database_outage_flags_nothing_and_loses_nothing(dovecot: Dovecot, database_url: str,
                                                         make_gateway) -> None:
    """PostgreSQL refuses connections for a while: nothing is flagged or lost meanwhile, and
    the mail flows in once it is back."""
    if not database_url.startswith("postgresql"):
        pytest.skip("an outage of a server database; SQLite is a file that cannot go away")
    running = make_gateway(extra=dovecot.mailbox_config())
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        try:
            for n in range(3):
                dovecot.append(make_mail(f"during outage {n}", message_id=f"<out{n}@a.example>"))
            with pytest.raises(Exception):  # noqa: B017 (any database error will do)
                poll(running)
            assert not any(SEEN in flags for flags in dovecot.messages().values())
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    wait_until(lambda: _poll_quietly(running) >= 0 and len(tickets(running)) == 3,
               running=running)
    assert all(SEEN in flags for flags in dovecot.messages().values())


def _poll_quietly(running) -> int:  # type: ignore[no-untyped-def]
    """One poll; a stale pooled connection may fail the first try after the outage."""
    try:
        return poll(running)
    except Exception:
        return -1


@pytest.mark.parametrize("step", ["_fetch_bodies", "after_import"])
def test_dovecot_stopped_mid_fetch_loses_nothing_and_registers_once(
        dovecot: Dovecot, make_gateway, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Dovecot stopped in the second of three batches, before its bodies are fetched or after
    they are committed but not yet flagged, then started again: every message is registered
    once and flagged, the first batch is not fetched again."""
    running = make_gateway(extra=dovecot.mailbox_config(extra="batch_size = 2"))
    for n in range(6):
        dovecot.append(make_mail(f"batch {n}", message_id=f"<mid-fetch{n}@acme.example>"))
    calls = 0
    real: Callable[..., Any] = getattr(ImapSession, step)

    def stop_at_second_batch(session: ImapSession, uids: list[int]) -> Any:
        # In the worker's thread, so the server is gone before the step's own command goes out.
        nonlocal calls
        calls += 1
        if calls == 2:
            dovecot.stop()
        return real(session, uids)

    monkeypatch.setattr(ImapSession, step, stop_at_second_batch)
    with pytest.raises((imaplib.IMAP4.abort, OSError)):
        poll(running)
    engine = running.gateway.db.engine
    # The first batch was committed, flagged and checkpointed; the second at most committed.
    assert inputs_count(engine) == (2 if step == "_fetch_bodies" else 4)
    checkpoint = load_checkpoint(engine, "support")
    assert checkpoint is not None and checkpoint.last_uid == 2

    dovecot.start()
    assert [SEEN in flags for flags in dovecot.messages().values()] == [True] * 2 + [False] * 4
    poll(running)
    running.settle()
    assert inputs_count(engine) == 6 and worker(running).imported == 6
    assert sorted(str(t["subject"]) for t in tickets(running)) == [f"batch {n}" for n in range(6)]
    assert [SEEN in flags for flags in dovecot.messages().values()] == [True] * 6
    checkpoint = load_checkpoint(engine, "support")
    assert checkpoint is not None and checkpoint.last_uid == 6
    # Fetched again: the second batch only when it had been committed before the stop.
    assert worker(running).fetched == (6 if step == "_fetch_bodies" else 8)
