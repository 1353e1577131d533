"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL by URL; schema by Alembic."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from gateway.store.write_turns import WriteTurns

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for URL; SQLite gets WAL, a busy timeout and write-locking transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg"))
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide where transactions begin (savepoints work).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade;
        # read-only work begins deferred and never waits for writers (WAL).
        options = connection.get_execution_options()
        if options.get("read_only", False):
            connection.exec_driver_sql("BEGIN")
            return
        # WAL is written sequentially, so a FULL commit also makes every NORMAL one before
        # it durable.
        level = "FULL" if options.get("flush_to_disk", True) else "NORMAL"
        connection.exec_driver_sql(f"PRAGMA synchronous={level}")
        # The door's commits, which senders wait for, leave the WAL checkpoint (copying the WAL
        # into the database file, with an fsync of its own) to the other writers' commits, up
        # to a WAL ten times the usual size should nobody else write for a while.
        pages = 10000 if options.get("urgent", False) else 1000
        if connection.info.get("wal_autocheckpoint") != pages:
            connection.exec_driver_sql(f"PRAGMA wal_autocheckpoint={pages}")
            connection.info["wal_autocheckpoint"] = pages
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to REVISION, the newest by default (idempotent)."""
    # Imported here: worker processes never migrate, and alembic with mako is 3 MB in each.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def migrate_url(url: str) -> None:
    """`migrate` on a connection of its own (in a process started only for that)."""
    open_migrated(url).dispose()


def open_migrated(url: str) -> Engine:
    """An engine on URL whose schema is current: what every one-shot command starts with."""
    engine = make_engine(url)
    migrate(engine)
    return engine


@contextmanager
def transaction(engine: Engine, flush_to_disk: bool = True,
                urgent: bool = False) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back if it raises.

    FLUSH_TO_DISK=False (SQLite only) commits without waiting for the disk: safe against a
    crash of the process, and made durable by the next flushing commit. Use it only for work
    that can be redone from what is already on disk (processing a stored input, outbox
    bookkeeping); the intake door, which answers senders, always flushes.

    URGENT (SQLite) writers go before ordinary ones waiting for the write lock: the intake
    door, whose senders wait for the commit, takes precedence over processing.
    """
    bound = engine if flush_to_disk else _with_option(engine, "flush_to_disk", False)
    if urgent:
        bound = _with_option(bound, "urgent", True)
    turns = write_turns(engine)
    with (turns.turn(urgent) if turns is not None else nullcontext()), \
            Session(bound, expire_on_commit=False) as session, session.begin():
        yield session


@functools.lru_cache(maxsize=64)
def _turns_of(database: str) -> WriteTurns:
    return WriteTurns(database)


def write_turns(engine: Engine) -> WriteTurns | None:
    """The write turns of ENGINE's SQLite file; None for PostgreSQL and in-memory SQLite."""
    database = engine.url.database
    if not is_sqlite(engine) or not database or database == ":memory:":
        return None
    return _turns_of(_resolved(database, os.getcwd()))


@functools.lru_cache(maxsize=64)
def _resolved(database: str, cwd: str) -> str:
    # Every transaction asks: resolving walks the path with a syscall per component.
    return str((Path(cwd) / database).resolve())


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Session]:
    """A transaction that only reads: on SQLite it takes no write lock."""
    bound = _with_option(engine, "read_only", True)
    with Session(bound, expire_on_commit=False) as session, session.begin():
        yield session


@functools.lru_cache(maxsize=64)
def _with_option(engine: Engine, name: str, value: bool) -> Engine:
    """ENGINE with one execution option, made once: these are on every transaction's path."""
    return engine.execution_options(**{name: value})


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """The engine plus the thread that runs blocking database work for the event loop.

    SQLite allows one writer at a time, so one worker thread serialises our own writes
    (and the intake door's thread takes its turn first); PostgreSQL gets a few threads.
    """

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        workers = 1 if is_sqlite(self.engine) else 4
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")
        # The intake door's own thread: its commits, which senders wait for, never queue
        # behind the outbox's or the processor's database work.
        self._urgent = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-intake")

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    async def run_urgent(self, function: Callable[..., T], *args: Any) -> T:
        """Run FUNCTION on the intake thread (write it with `transaction(urgent=True)`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._urgent, functools.partial(function, *args))

    def close(self) -> None:
        self._urgent.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        self.engine.dispose()
