"""Processing from stored inputs: bad input, quarantine, replays and the startup sweep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, select

from gateway.clock import ManualClock
from gateway.config.settings import LoadedSettings, parse_settings
from gateway.daemon.context_files import build_context
from gateway.intake.door import IncomingInput, store_inputs
from gateway.store.db import make_engine, migrate
from gateway.store.models import Input, OutboxItem
from gateway.tickets.processing import process_pending
from gateway.tickets.view import list_tickets
from tests.conftest import START, config_text, free_port, make_mail


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    for engine in ENGINES:
        engine.dispose()
    ENGINES.clear()


ENGINES: list[Engine] = []


def setup(database_url: str, tmp_path: Path, extra: str = "", intake: str = "",
          customers: str | None = None) -> tuple[Engine, LoadedSettings, ManualClock]:
    if customers is not None:
        (tmp_path / "customers.toml").write_text(customers, encoding="utf-8")
        extra += '\n[files]\ncustomers = "customers.toml"\n'
    config = tmp_path / "config.toml"
    body = config_text(database_url, tmp_path / "state", free_port(), extra=extra, intake=intake)
    config.write_text(body, encoding="utf-8")
    loaded = LoadedSettings(parse_settings(body, config), config)
    engine = make_engine(database_url)
    ENGINES.append(engine)
    migrate(engine)
    return engine, loaded, ManualClock(START)


def ingest(engine: Engine, loaded: LoadedSettings, clock: ManualClock, *raws: bytes,
           channel: str = "email") -> None:
    store_inputs(engine, [IncomingInput(channel, raw) for raw in raws], clock)
    context = build_context(loaded, clock)
    while process_pending(engine, context, 50).processed:
        pass


def statuses(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    with Session(engine) as session:
        return [(i.status, i.outcome, i.last_error)
                for i in session.exec(select(Input).order_by(Input.id))]  # type: ignore[arg-type]


def test_bad_inputs_register_or_quarantine_and_lose_nothing(database_url: str,
                                                            tmp_path: Path) -> None:
    """Malformed MIME, no headers, NUL bytes, undecodable bytes, empty input: none is lost."""
    engine, loaded, clock = setup(database_url, tmp_path)
    bad = [
        b"",
        b"\x00\x00\x00 binary garbage \xff\xfe",
        b"no headers at all, just a line of text",
        (b"From: a@b.example\r\nSubject: broken\r\nContent-Type: multipart/mixed; "
         b"boundary=zzz\r\n\r\n--zzz\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n"
         b"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 never closed"),
        b"From: x@y.example\r\nSubject: =?koi8-r?B?8NLJ18XU?=\r\n\r\nbody \x00 with NUL\r\n",
    ]
    ingest(engine, loaded, clock, *bad)
    rows = statuses(engine)
    assert len(rows) == len(bad)
    for status, outcome, error in rows:
        assert status in ("processed", "failed")
        assert (outcome if status == "processed" else error)
    tickets = list_tickets(engine)
    assert len(tickets) == sum(1 for s, o, _ in rows if o and o.startswith("registered"))


def test_processing_error_is_quarantined_and_does_not_block(database_url: str,
                                                            tmp_path: Path) -> None:
    """An input that cannot be processed is failed with its error; the next one still registers."""
    engine, loaded, clock = setup(database_url, tmp_path)
    store_inputs(engine, [IncomingInput("fax", b"\x01\x02")], clock)
    ingest(engine, loaded, clock, make_mail("after the poison"))
    rows = statuses(engine)
    assert rows[0] == ("failed", None, "ValueError: no parser for channel 'fax'")
    assert rows[1][0] == "processed"
    assert [t["subject"] for t in list_tickets(engine)] == ["after the poison"]


def test_replayed_input_is_not_registered_twice(database_url: str, tmp_path: Path) -> None:
    """Processing again after everything is done changes nothing: one ticket, one ack queued."""
    engine, loaded, clock = setup(database_url, tmp_path)
    raw = make_mail()
    ingest(engine, loaded, clock, raw)
    ingest(engine, loaded, clock, raw)
    context = build_context(loaded, clock)
    assert process_pending(engine, context, 50).processed == 0
    assert len(list_tickets(engine)) == 1
    with Session(engine) as session:
        assert len(session.exec(select(OutboxItem)).all()) == 1


def test_message_without_message_id_is_deduplicated_by_content(database_url: str,
                                                               tmp_path: Path) -> None:
    """With no Message-ID, identical bytes are one input; different bytes are two."""
    engine, _, clock = setup(database_url, tmp_path)
    raw = b"From: a@b.example\r\nSubject: no id\r\n\r\nSame body words for the check here.\r\n"
    first = store_inputs(engine, [IncomingInput("email", raw)], clock)
    again = store_inputs(engine, [IncomingInput("email", raw), IncomingInput("email", raw + b"!")],
                         clock)
    assert again[0].input_id == first[0].input_id and again[0].duplicate
    assert not again[1].duplicate


def test_header_injection_in_subject_and_name(database_url: str, tmp_path: Path) -> None:
    """CR/LF smuggled into a subject or display name never becomes a header of ours."""
    engine, loaded, clock = setup(database_url, tmp_path)
    raw = (b"From: =?utf-8?q?Eve=0D=0ABcc=3A_victim=40evil=2Eexample?= <eve@acme.example>\r\n"
           b"Subject: =?utf-8?q?help=0D=0ABcc=3A_victim=40evil=2Eexample?=\r\n"
           b"Message-ID: <inj@acme.example>\r\n\r\n"
           b"Please help us with the broken delivery of many messages today.\r\n")
    ingest(engine, loaded, clock, raw)
    with Session(engine) as session:
        [item] = session.exec(select(OutboxItem)).all()
    head = item.message.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    assert b"\r\nBcc:" not in head and b"\nBcc:" not in head
    assert b"help Bcc: victim@evil.example" in head or b"=?utf-8?" in head


def test_unknown_sender_held_when_configured(database_url: str, tmp_path: Path) -> None:
    """hold_unknown_senders parks mail from strangers; known customers register with their tier."""
    customers = ('[[customer]]\nid = "acme"\nname = "ACME"\ntier = "premium"\nlanguage = "en"\n'
                 'domains = ["acme.example"]\n')
    engine, loaded, clock = setup(database_url, tmp_path, intake="hold_unknown_senders = true",
                                  customers=customers)
    ingest(engine, loaded, clock, make_mail(sender="stranger@else.example"),
           make_mail(sender="Boss <boss@ACME.example>"))
    rows = statuses(engine)
    assert rows[0][0] == "held"
    assert rows[0][1] == "held: sender stranger@else.example is not a known customer"
    [ticket] = list_tickets(engine)
    assert (ticket["customer"], ticket["tier"]) == ("acme", "premium")
    # Premium reacts within 15 minutes on the clock.
    assert ticket["reaction_due"] == (START + timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_short_request_is_low_priority(database_url: str, tmp_path: Path) -> None:
    """The seed's rule: a request without a detailed description is low; otherwise medium."""
    engine, loaded, clock = setup(database_url, tmp_path)
    ingest(engine, loaded, clock, make_mail("help", body="Broken."),
           make_mail("details", body="Since 9:00 no messages reach the Android users "
                                     "of our Moscow office; they use the web client for now."))
    by_subject = {t["subject"]: t for t in list_tickets(engine)}
    assert by_subject["help"]["priority"] == "low"
    assert any(r.startswith("rule-1-no-detail") for r in by_subject["help"]["reasons"])
    assert by_subject["details"]["priority"] == "medium"


def test_source_is_kept_with_the_input(database_url: str, tmp_path: Path) -> None:
    """The envelope a channel saw is stored with the raw input, for replays and audits, and
    an e-mail's content fingerprint (what tells a re-delivery from a reused Message-ID)."""
    from gateway.intake.mail_identity import content_fingerprint

    engine, _, clock = setup(database_url, tmp_path)
    raw = make_mail()
    store_inputs(engine, [IncomingInput("email", raw, {"mail_from": "x@y.example"})], clock)
    with engine.connect() as connection:
        source = json.loads(connection.execute(text("SELECT source FROM inputs")).scalar_one())
    assert source.pop("fingerprint") == content_fingerprint(raw)
    assert source == {"mail_from": "x@y.example"}


def test_failure_half_way_rolls_back_only_that_input(database_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An input that fails after its ticket was written leaves no trace; its neighbours in the
    same transaction register with gapless numbers."""
    import gateway.tickets.step as step

    real_render = step.render_acknowledgement

    def render_failing_on_poison(facts, sender, now, *rest):  # type: ignore[no-untyped-def]
        if facts.subject == "poison":
            raise RuntimeError("template exploded")
        return real_render(facts, sender, now, *rest)

    monkeypatch.setattr(step, "render_acknowledgement", render_failing_on_poison)
    engine, loaded, clock = setup(database_url, tmp_path)
    ingest(engine, loaded, clock, make_mail("first"), make_mail("poison"), make_mail("third"))
    rows = statuses(engine)
    assert [r[0] for r in rows] == ["processed", "failed", "processed"]
    assert rows[1][2] == "RuntimeError: template exploded"
    tickets = {t["subject"]: t["number"] for t in list_tickets(engine)}
    assert tickets == {"first": "SUP-000001", "third": "SUP-000002"}
    with Session(engine) as session:
        assert len(session.exec(select(OutboxItem)).all()) == 2


def test_processing_ends_its_transaction_when_the_door_waits(database_url: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """While the intake door waits for SQLite's write lock, processing commits after
    COMMIT_AT_LEAST inputs instead of after COMMIT_EVERY of them, and still registers every
    input once."""
    if not database_url.startswith("sqlite"):
        pytest.skip("write turns exist for SQLite only; PostgreSQL has no single writer")
    from sqlalchemy import event

    from gateway.store.write_turns import WriteTurns
    from gateway.tickets.processing import COMMIT_AT_LEAST, COMMIT_EVERY

    engine, loaded, clock = setup(database_url, tmp_path)
    commits: list[int] = []
    event.listen(engine, "commit", lambda connection: commits.append(1))
    count = COMMIT_EVERY * 2
    store_inputs(engine, [IncomingInput("email", make_mail(f"m{n}")) for n in range(count)],
                 clock)
    context = build_context(loaded, clock)
    commits.clear()
    monkeypatch.setattr(WriteTurns, "urgent_waiting", lambda self: True)
    result = process_pending(engine, context, count)
    assert (result.processed, result.failed) == (count, 0)
    reads = 1  # loading the pending inputs is a (read) transaction too
    assert len(commits) == reads + count // COMMIT_AT_LEAST
    monkeypatch.undo()
    store_inputs(engine, [IncomingInput("email", make_mail(f"n{n}")) for n in range(count)],
                 clock)
    commits.clear()
    assert process_pending(engine, context, count).processed == count
    assert len(commits) == reads + count // COMMIT_EVERY
    assert [r[0] for r in statuses(engine)] == ["processed"] * (count * 2)
    assert len(list_tickets(engine)) == count * 2


def test_acknowledgement_already_queued_is_not_queued_again(database_url: str,
                                                            tmp_path: Path) -> None:
    """If an input's acknowledgement is in the outbox already (a replay), registration keeps
    that one: the unique dedup key sends the batch down the careful path, not into an error."""
    engine, loaded, clock = setup(database_url, tmp_path)
    store_inputs(engine, [IncomingInput("email", make_mail("replayed"))], clock)
    with engine.begin() as connection:
        connection.execute(OutboxItem.__table__.insert(), {  # type: ignore[attr-defined]
            "dedup_key": "ack:input:1", "kind": "acknowledgement", "sender": "s@x.example",
            "recipient": "ivan@acme.example", "message_id": "old@x.example",
            "message": b"old", "status": "sent", "attempts": 1, "next_attempt_at": START,
            "created_at": START})
    result = process_pending(engine, build_context(loaded, clock), 10)
    assert (result.processed, result.failed, result.enqueued) == (1, 0, 0)
    [ticket] = list_tickets(engine)
    assert [m["kind"] for m in ticket["messages"]] == ["request"]
    with Session(engine) as session:
        assert [i.message_id for i in session.exec(select(OutboxItem))] == ["old@x.example"]


def test_migration_moves_stored_bodies_to_their_own_table(database_url: str,
                                                          tmp_path: Path) -> None:
    """Inputs stored before revision 0006 keep their bytes and are processed as before."""
    engine = make_engine(database_url)
    migrate(engine, "0005")
    raw = make_mail("Сервер не отвечает", message_id="<old-body@acme.example>")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO inputs (channel, idempotency_key, source, raw, size, received_at, "
            "status, attempts) VALUES ('email', 'msgid:old-body@acme.example', '{}', :raw, "
            ":size, :at, 'received', 0)"), {"raw": raw, "size": len(raw), "at": START})
    migrate(engine)
    with engine.connect() as connection:
        stored = connection.execute(text(
            "SELECT b.raw FROM input_bodies b JOIN inputs i ON i.id = b.input_id")).scalar_one()
        columns = {c["name"] for c in inspect(connection).get_columns("inputs")}
    assert bytes(stored) == raw and "raw" not in columns
    _, loaded, clock = setup(database_url, tmp_path)
    context = build_context(loaded, clock)
    assert process_pending(engine, context, 10).processed == 1
    tickets = list_tickets(engine)
    engine.dispose()
    assert [t["subject"] for t in tickets] == ["Сервер не отвечает"]
