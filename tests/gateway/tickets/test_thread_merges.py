"""Threads that merge: any arrival order of the same messages gives the same grouping."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from gateway.sla.policy import seed_policy
from gateway.store.db import transaction
from gateway.store.models import Ticket
from gateway.tickets.mail_threads import find_ticket, link_ids, thread_ids
from gateway.tickets.registration import register
from gateway.tickets.replies import add_to_ticket
from gateway.tickets.thread_merge import surviving
from gateway.tickets.view import show_ticket
from parsers.email import parse_email
from parsers.model import Request
from rules.engine import Decision
from tests.conftest import CORPORA, START, make_mail
from tests.gateway.tickets.test_processing import _dispose_engines, ingest, setup

__all__ = ["_dispose_engines"]

THREADS = CORPORA / "threads"
DECISION = Decision("incident", "medium", [])


def group(engine: Engine, requests: dict[str, Request], order: list[str]) -> list[list[str]]:
    """Thread the messages in ORDER as the mail step does; the final tickets' groups."""
    with transaction(engine) as session:
        for table in ("ticket_events", "thread_ids", "ticket_messages", "tickets"):
            session.execute(text(f"DELETE FROM {table}"))
    ticket_of: dict[str, int] = {}
    for name in order:
        request = requests[name]
        with transaction(engine) as session:
            found = find_ticket(session, request, "SUP-", "merge", START)
            if found is None:
                new = register(session, request=request, customer=None, decision=DECISION,
                               prefix="SUP-", received_at=START, now=START, default_tier="8/5",
                               notes=[], policy=seed_policy())
                link_ids(session, new.id, thread_ids(request))
                ticket_of[name] = new.id
            else:
                add_to_ticket(session, found, request, input_id=None, received_at=START,
                              now=START, decision=None, context=None)
                ticket_of[name] = int(found.id or 0)
    groups: dict[int, list[str]] = {}
    with Session(engine) as session:
        for name, ticket_id in ticket_of.items():
            final = surviving(session, session.get_one(Ticket, ticket_id))
            groups.setdefault(int(final.id or 0), []).append(name)
    return sorted(sorted(g) for g in groups.values())


def orders(names: list[str], dated: list[str]) -> list[list[str]]:
    """Every order of a small folder; else date order, its reverse and seeded shuffles."""
    if len(names) <= 5:
        return [list(p) for p in itertools.permutations(names)]
    shuffles = []
    for seed in range(8):
        shuffled = list(names)
        random.Random(seed).shuffle(shuffled)
        shuffles.append(shuffled)
    return [dated, dated[::-1], *shuffles]


@pytest.mark.skipif(not THREADS.is_dir(), reason="../shared/corpora is absent (a user's checkout)")
@pytest.mark.parametrize("corpus", ["notmuch-default", "notmuch-threading", "notmuch-broken"])
def test_every_arrival_order_gives_the_expected_threads(database_url: str, tmp_path: Path,
                                                        corpus: str) -> None:
    engine, _, _ = setup(database_url, tmp_path)
    folder = THREADS / corpus
    expected = sorted(sorted(g) for g in json.loads(
        (folder / "threads.json").read_text())["threads"])
    requests = {p.name: parse_email(p.read_bytes()) for p in folder.glob("*.eml")}
    names = sorted(requests)
    dated = sorted(requests, key=lambda n: (requests[n].date or START, n))
    for order in orders(names, dated):
        assert group(engine, requests, order) == expected, order


def reply(message_id: str, *cited: str, subject: str = "Re: export") -> bytes:
    return make_mail(subject, message_id=f"<{message_id}>", headers={
        "In-Reply-To": f"<{cited[-1]}>", "References": " ".join(f"<{c}>" for c in cited)})


@pytest.mark.parametrize("policy", ["merge", "link"])
def test_a_message_joining_two_tickets_merges_or_links_them(database_url: str, tmp_path: Path,
                                                            policy: str) -> None:
    """B and C reply to A and B, A and B not seen yet: two tickets. When B arrives it belongs
    to both: the younger is merged into the older (both numbers still found, the history
    kept), or both are linked, as intake.thread_links says; each ticket says which."""
    engine, loaded, clock = setup(database_url, tmp_path, intake=f'thread_links = "{policy}"')
    ingest(engine, loaded, clock, reply("x1@acme.example", "a@acme.example"))
    ingest(engine, loaded, clock, reply("x2@acme.example", "b@acme.example"))
    ingest(engine, loaded, clock, reply("b@acme.example", "a@acme.example"))
    one, two = show_ticket(engine, "SUP-000001"), show_ticket(engine, "SUP-000002")
    assert one is not None and two is not None
    if policy == "merge":
        assert (two["status"], two["merged_into"]) == ("merged", "SUP-000001")
        assert two["notes"][-1] == ("merged into SUP-000001: <b@acme.example> belongs to both")
        assert one["notes"][-1] == ("SUP-000002 merged into this ticket: "
                                    "<b@acme.example> belongs to both")
        assert sorted(m["message_id"] for m in one["messages"] if m["direction"] == "in") == [
            "<b@acme.example>", "<x1@acme.example>", "<x2@acme.example>"]
        # A later reply citing only the younger ticket's message joins the older ticket.
        ingest(engine, loaded, clock, reply("x3@acme.example", "x2@acme.example"))
        again = show_ticket(engine, "SUP-000001")
        assert again is not None and len(again["messages"]) > len(one["messages"])
        assert show_ticket(engine, "SUP-000003") is None
    else:
        assert one["status"] == two["status"] == "registered"
        assert one["notes"][-1] == "linked with SUP-000002: <b@acme.example> belongs to both"
        assert two["notes"][-1] == "linked with SUP-000001: <b@acme.example> belongs to both"
