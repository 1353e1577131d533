"""Prepared statements on the driver's cursor store exactly what SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.db import open_migrated, transaction
from gateway.store.models import OutboxItem
from gateway.store.prepared import Prepared

_OUTBOX = OutboxItem.__table__  # type: ignore[attr-defined]
AT = datetime(2026, 11, 25, 8, 0, 1, 5, tzinfo=UTC)


def _row(key: str) -> dict[str, object]:
    return {"dedup_key": key, "ticket_id": None, "kind": "acknowledgement", "sender": "a@b.example",
            "recipient": "c@d.example", "message_id": "<m@b.example>", "message": b"data\r\n",
            "send_by": AT, "next_attempt_at": AT, "created_at": AT}


def test_prepared_and_core_inserts_store_the_same_values(database_url: str) -> None:
    """An insert on the driver's cursor fills the column defaults and converts the values as
    SQLAlchemy's own insert does, RETURNING included; the rows read back alike."""
    engine = open_migrated(database_url)
    prepared = Prepared(insert(_OUTBOX).returning(_OUTBOX.c.id))
    with transaction(engine) as session:
        fast_id = prepared.execute(session.connection(), _row("fast")).fetchone()[0]
        core_id = session.connection().execute(
            insert(_OUTBOX).returning(_OUTBOX.c.id), _row("core")).scalar_one()
    columns = [c for c in _OUTBOX.c if c.name not in ("id", "dedup_key")]
    with transaction(engine) as session:
        rows = {i: session.connection().execute(select(*columns).where(_OUTBOX.c.id == i)).one()
                for i in (fast_id, core_id)}
    assert rows[fast_id] == rows[core_id]
    assert rows[fast_id].status == "pending" and rows[fast_id].attempts == 0
    assert rows[fast_id].created_at == AT
    engine.dispose()


def test_prepared_statements_with_repeated_and_many_parameters(database_url: str) -> None:
    """A parameter used twice, literal values in the statement and executemany all bind."""
    engine = open_migrated(database_url)
    add = Prepared(insert(_OUTBOX))
    mark = Prepared(update(_OUTBOX).where(_OUTBOX.c.dedup_key == bindparam("key"))
                    .values(status="sent", sent_at=bindparam("at")))
    count = Prepared(select(_OUTBOX.c.id).where(
        (_OUTBOX.c.sent_at >= bindparam("at")) & (_OUTBOX.c.created_at <= bindparam("at"))))
    with transaction(engine) as session:
        connection = session.connection()
        add.executemany(connection, [_row("a"), _row("b"), _row("c")])
        mark.executemany(connection, [{"key": "a", "at": AT}, {"key": "b", "at": AT}])
        found = count.execute(connection, {"at": AT}).fetchall()
    assert len(found) == 2
    with transaction(engine) as session:
        statuses = session.connection().execute(
            select(_OUTBOX.c.dedup_key, _OUTBOX.c.status).order_by(_OUTBOX.c.dedup_key)).all()
    assert [tuple(r) for r in statuses] == [("a", "sent"), ("b", "sent"), ("c", "pending")]
    engine.dispose()


def test_prepared_rows_read_as_sqlalchemy_reads_them(database_url: str) -> None:
    """rows() gives each value as SQLAlchemy's own select does (timezone-aware datetimes,
    bytes, integers, NULLs), by attribute, in the statement's order."""
    engine = open_migrated(database_url)
    with transaction(engine) as session:
        Prepared(insert(_OUTBOX)).executemany(session.connection(), [_row("x"), _row("y")])
    statement = select(_OUTBOX).where(_OUTBOX.c.created_at <= bindparam("at")).order_by(
        _OUTBOX.c.dedup_key)
    with transaction(engine) as session:
        fast = Prepared(statement).rows(session.connection(), {"at": AT})
        core = session.connection().execute(statement, {"at": AT}).all()
    assert [tuple(r) for r in fast] == [tuple(r) for r in core] and len(fast) == 2
    assert fast[0].dedup_key == "x" and fast[1].created_at == AT
    assert fast[0].created_at.tzinfo is not None and fast[0].sent_at is None
    assert fast[0].message == b"data\r\n"
    engine.dispose()


def test_driver_errors_reach_callers_as_sqlalchemy_errors(database_url: str) -> None:
    """A duplicate key on the driver's cursor raises SQLAlchemy's IntegrityError, which the
    door and processing catch to redo their work one input at a time."""
    engine = open_migrated(database_url)
    add = Prepared(insert(_OUTBOX))
    with pytest.raises(IntegrityError), transaction(engine) as session:
        add.executemany(session.connection(), [_row("same"), _row("same")])
    engine.dispose()
