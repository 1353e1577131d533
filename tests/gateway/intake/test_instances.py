"""Instances sharing one database: one reads each mailbox and one runs the SLA clock at a
time, another takes over when it goes; a second daemon on one SQLite file is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from gateway.store.db import make_engine
from gateway.store.roles import InstanceRunning, Role, claim_sqlite
from tests.conftest import RunningGateway, make_mail
from tests.dovecot import Dovecot, dovecot_fixture  # noqa: F401 (fixture)
from tests.gateway.intake.test_imap import inputs_count, wait_until, worker


def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("one instance on SQLite: roles are PostgreSQL's")


def test_one_instance_reads_a_mailbox_and_another_takes_over(
        database_url: str, dovecot: Dovecot, make_gateway) -> None:
    """Two gateways on one PostgreSQL follow the same mailbox: only one reads it (each
    message stored once, fetched once); when that one stops, the other takes the mailbox
    within seconds and goes on from the checkpoint."""
    _postgres_only(database_url)
    config = dovecot.mailbox_config()
    first: RunningGateway = make_gateway(extra=config)
    second: RunningGateway = make_gateway(extra=config)
    for running in (first, second):
        running.call(running.gateway.start_mailboxes)
    wait_until(lambda: worker(first).owned or worker(second).owned, 30)
    reader, standby = (first, second) if worker(first).owned else (second, first)
    assert not worker(standby).owned
    for n in range(5):
        dovecot.append(make_mail(f"before {n}", message_id=f"<before{n}@acme.example>"))
    engine = reader.gateway.db.engine
    wait_until(lambda: inputs_count(engine) == 5, 60)
    assert (worker(reader).fetched, worker(standby).fetched) == (5, 0)

    reader.call(reader.gateway.stop)
    wait_until(lambda: worker(standby).owned, 60)
    for n in range(3):
        dovecot.append(make_mail(f"after {n}", message_id=f"<after{n}@acme.example>"))
    wait_until(lambda: inputs_count(standby.gateway.db.engine) == 8, 60)
    assert worker(standby).fetched == 3  # from the checkpoint, not the whole folder again


def test_a_role_passes_when_its_holder_dies(database_url: str) -> None:
    """A role is one instance's at a time; when the holder's database session ends (the
    instance killed), another instance takes it, and the old holder knows it lost it."""
    _postgres_only(database_url)
    one, two = make_engine(database_url), make_engine(database_url)
    first, second = Role(one, "sla-clock"), Role(two, "sla-clock")
    try:
        assert first.held() and not second.held()
        assert first.held()  # kept
        admin = create_engine(database_url)
        with admin.connect() as connection:
            killed = connection.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()")).scalar()
            connection.commit()
        admin.dispose()
        assert killed == 1
        wait_until(second.held, 30)
        assert not first.held()
        second.release()
        assert first.held()
    finally:
        first.release()
        second.release()
        one.dispose()
        two.dispose()


def test_a_second_daemon_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    """SQLite serves one instance: a second daemon on the same file stops at once, saying so
    and naming the first one's pid; after the first ends, a new one starts."""
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    engine = make_engine(url)
    held = claim_sqlite(engine)
    assert held is not None
    with pytest.raises(InstanceRunning, match=r"pid \d+.*PostgreSQL"):
        claim_sqlite(make_engine(url))
    import os

    os.close(held)
    again = claim_sqlite(make_engine(url))
    assert again is not None
    os.close(again)
    engine.dispose()
