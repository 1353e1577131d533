"""Replies to one ticket processed at once serialise on its row: no lost priority raise."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from gateway.daemon.service import build_context
from gateway.store.db import transaction
from gateway.store.models import Ticket
from gateway.tickets.replies import add_to_ticket
from parsers.email import parse_email
from rules.engine import Decision
from tests.conftest import START, make_mail
from tests.gateway.tickets.test_processing import _dispose_engines, ingest, setup

__all__ = ["_dispose_engines"]


def _waiting_for_a_lock(engine) -> bool:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).scalar())


@pytest.mark.parametrize("first, second, final", [
    ("critical", "high", "critical"),  # the later, lower raise must not overwrite the first
    ("high", "critical", "critical"),  # the later, higher one still raises it
])
def test_two_replies_at_once_do_not_lose_a_raise(database_url: str, tmp_path: Path,
                                                  first: str, second: str, final: str) -> None:
    """Two replies to a low ticket, each in its own transaction, the second having read the
    ticket before the first committed: the second waits on the ticket's row and decides on
    what the first committed, so the ticket ends at the higher of the two."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: its transactions cannot interleave")
    engine, loaded, clock = setup(database_url, tmp_path)
    ingest(engine, loaded, clock, make_mail("A question about the invoice layout",
                                            body="Could you tell me where the VAT line is?"))
    with Session(engine) as session:
        ticket = session.exec(select(Ticket)).one()
        ticket_id, number, start_priority = ticket.id, ticket.number, ticket.priority
    assert start_priority == "low"
    context = build_context(loaded, clock)
    first_holds, second_read = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def reply(priority: str, hold: bool) -> None:
        try:
            request = parse_email(make_mail(f"Re: [{number}] invoice", body=f"{priority} now"))
            with transaction(engine) as session:
                stale = session.get_one(Ticket, ticket_id)
                assert stale.priority == "low"
                if not hold:
                    second_read.set()
                    first_holds.wait(30)
                add_to_ticket(session, stale, request, input_id=None, received_at=START,
                              now=START, decision=Decision("incident", priority, []),
                              context=context)
                if hold:
                    first_holds.set()
                    second_read.wait(30)
                    deadline = time.monotonic() + 30
                    while not _waiting_for_a_lock(engine) and time.monotonic() < deadline:
                        time.sleep(0.05)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=reply, args=(first, True)),
               threading.Thread(target=reply, args=(second, False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    with Session(engine) as session:
        ticket = session.get_one(Ticket, ticket_id)
        assert ticket.priority == final
        assert ticket.reasons.count("raised from") == (1 if first == "critical" else 2)
