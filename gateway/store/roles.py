"""Roles one instance plays at a time (a mailbox's reader, the SLA clock), by database locks."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from pathlib import Path

import structlog
from sqlalchemy import Connection, Engine, text

from gateway.store.db import is_sqlite

log = structlog.get_logger("gateway.roles")


class InstanceRunning(Exception):
    """Another daemon already serves this SQLite database."""


class Role:
    """A named role that at most one of the instances sharing a PostgreSQL database plays.

    Held as a session-level advisory lock on a connection of its own, kept open while the role
    is ours: an instance that dies (killed, its machine lost) drops the connection, and with
    it the lock, so another instance takes the role at its next try. On SQLite there is one
    instance (see `claim_sqlite`), which plays every role.
    """

    def __init__(self, engine: Engine, name: str) -> None:
        self.name = name
        self._engine = engine
        # pg_try_advisory_lock takes a bigint: the name's first 8 bytes of SHA-256.
        self._key = int.from_bytes(hashlib.sha256(f"intake-gateway:{name}".encode()).digest()[:8],
                                   "big", signed=True)
        self._connection: Connection | None = None
        self._guard = threading.Lock()  # tried from the database threads

    def held(self) -> bool:
        """Whether the role is ours now: kept if still held, else taken if free. Blocking."""
        if is_sqlite(self._engine):
            return True
        with self._guard:
            if self._connection is not None:
                try:
                    self._connection.execute(text("SELECT 1"))
                    return True
                except Exception as error:  # the database or our session went: so did the lock
                    log.warning("role.lost", role=self.name, error=str(error))
                    self._drop()
            connection = self._engine.connect()
            # Out of the pool: closing it must end the session (a pooled one would live on,
            # holding the lock, after the role was given up).
            connection.detach()
            try:
                taken = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                                {"key": self._key}).scalar())
                connection.commit()
            except Exception:
                connection.close()
                raise
            if not taken:
                connection.close()
                return False
            self._connection = connection
            log.info("role.taken", role=self.name, pid=os.getpid())
            return True

    def release(self) -> None:
        """Give the role up (a clean stop): another instance takes it at once."""
        with self._guard:
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()  # ends the session: the lock goes with it
            except Exception as error:
                log.warning("role.release_failed", role=self.name, error=str(error))
            self._connection = None


def claim_sqlite(engine: Engine) -> int | None:
    """For a daemon on SQLite: a lock on the database file's companion that a second daemon
    cannot take (SQLite serves one instance: several need PostgreSQL). The descriptor, held
    for the process's life; None for PostgreSQL and in-memory SQLite."""
    database = engine.url.database
    if not is_sqlite(engine) or not database or database == ":memory:":
        return None
    path = Path(database).resolve().with_name(Path(database).name + ".instance")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise InstanceRunning(
            f"another intake-gateway daemon (pid {holder}) already runs on {database}; "
            "SQLite serves one instance: run several on PostgreSQL") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd
