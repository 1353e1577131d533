"""Start-up sweep, concurrent numbering, log context, big mail and acknowledgement language."""

from __future__ import annotations

import threading
from email import message_from_bytes, policy
from pathlib import Path

import structlog
from sqlmodel import Session, select

from gateway.clock import ManualClock
from gateway.config.settings import LoadedSettings, parse_settings
from gateway.daemon.context_files import build_context
from gateway.daemon.service import Gateway
from gateway.intake.door import IncomingInput, store_inputs
from gateway.store.db import make_engine, migrate, transaction
from gateway.store.models import OutboxItem
from gateway.tickets.processing import process_pending
from gateway.tickets.registration import next_ticket_number
from gateway.tickets.view import list_tickets
from tests.conftest import START, LoopThread, config_text, free_port, make_mail


def loaded_settings(database_url: str, tmp_path: Path, customers: str | None = None,
                    intake: str = "") -> LoadedSettings:
    extra = ""
    if customers is not None:
        (tmp_path / "customers.toml").write_text(customers, encoding="utf-8")
        extra = '[files]\ncustomers = "customers.toml"\n'
    text = config_text(database_url, tmp_path / "state", free_port(), extra=extra, intake=intake)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return LoadedSettings(parse_settings(text, path), path)


def test_startup_sweep_processes_inputs_left_by_a_crash(database_url: str,
                                                        tmp_path: Path) -> None:
    """Inputs committed but never processed (the daemon died) are registered on the next start."""
    loaded = loaded_settings(database_url, tmp_path)
    engine = make_engine(database_url)
    migrate(engine)
    store_inputs(engine, [IncomingInput("email", make_mail(f"left {i}")) for i in range(3)],
                 ManualClock(START))
    engine.dispose()

    loop = LoopThread()
    try:
        gateway = loop.run(_new_gateway(loaded))
        loop.run(gateway.start(workers=False))
        loop.run(gateway.run_until_idle())
        assert sorted(t["subject"] for t in list_tickets(gateway.db.engine)) == [
            "left 0", "left 1", "left 2"]
        assert len(list((tmp_path / "state" / "outgoing" / "new").iterdir())) == 3
        loop.run(gateway.stop())
    finally:
        loop.close()


async def _new_gateway(loaded: LoadedSettings) -> Gateway:
    return Gateway(loaded, ManualClock(START))


def test_ticket_numbers_unique_under_concurrent_writers(database_url: str) -> None:
    """Four threads taking 25 numbers each get 1..100 exactly, with no gap or repeat."""
    engine = make_engine(database_url)
    migrate(engine)
    taken: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            with transaction(engine) as session:
                number = next_ticket_number(session, "SUP-")
            with lock:
                taken.append(number)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    engine.dispose()
    assert sorted(taken) == [f"SUP-{i:06d}" for i in range(1, 101)]


def test_log_events_carry_input_id_and_ticket(database_url: str, tmp_path: Path) -> None:
    """Every event of one unit of work names its input and, once known, its ticket."""
    loaded = loaded_settings(database_url, tmp_path)
    engine = make_engine(database_url)
    migrate(engine)
    clock = ManualClock(START)
    store_inputs(engine, [IncomingInput("email", make_mail())], clock)
    with structlog.testing.capture_logs() as events:
        structlog.contextvars.clear_contextvars()
        # capture_logs replaces the processors; merge contextvars the way production does.
        structlog.configure(processors=[structlog.contextvars.merge_contextvars,
                                        *structlog.get_config()["processors"]])
        process_pending(engine, build_context(loaded, clock), 10)
    engine.dispose()
    registered = [e for e in events if e["event"] == "ticket.registered"]
    assert registered and registered[0]["input_id"] == 1
    assert registered[0]["ticket"] == "SUP-000001"


def test_thirty_megabyte_message_is_registered(database_url: str, tmp_path: Path) -> None:
    """A 30 MB message that got past the size limit is stored and registered, not crashed on."""
    loaded = loaded_settings(database_url, tmp_path)
    engine = make_engine(database_url)
    migrate(engine)
    clock = ManualClock(START)
    body = ("Everything is slow and messages are late for all of our users.\n" * 480_000)
    raw = make_mail("Huge log inline", body=body)
    assert len(raw) > 30_000_000
    store_inputs(engine, [IncomingInput("email", raw)], clock)
    result = process_pending(engine, build_context(loaded, clock), 10)
    tickets = list_tickets(engine)
    engine.dispose()
    assert (result.processed, result.failed) == (1, 0)
    assert [t["subject"] for t in tickets] == ["Huge log inline"]


def test_acknowledgement_speaks_the_customer_language(database_url: str, tmp_path: Path) -> None:
    """A customer with language "en" gets English; unknown senders get Russian (the default)."""
    customers = ('[[customer]]\nid = "acme"\nname = "ACME"\ntier = "24/7"\nlanguage = "en"\n'
                 'emails = ["ivan@acme.example"]\n')
    loaded = loaded_settings(database_url, tmp_path, customers)
    engine = make_engine(database_url)
    migrate(engine)
    clock = ManualClock(START)
    store_inputs(engine, [IncomingInput("email", make_mail("english please")),
                          IncomingInput("email", make_mail("по-русски",
                                                           sender="petr@other.example"))], clock)
    process_pending(engine, build_context(loaded, clock), 10)
    with Session(engine) as session:
        items = session.exec(select(OutboxItem).order_by(OutboxItem.id)).all()  # type: ignore[arg-type]
        bodies = [message_from_bytes(i.message, policy=policy.default) for i in items]
    engine.dispose()
    english, russian = (b.get_body(("plain",)).get_content() for b in bodies)  # type: ignore[union-attr]
    assert english.startswith("Hello, Ivan Petrov,")
    assert "we have registered your request as SUP-000001." in english
    # 24/7 reacts within one hour on the clock: 08:00 UTC + 1 h = 12:00 Moscow time.
    assert "Reaction due:   2026-11-25 12:00 MSK" in english
    assert russian.startswith("Здравствуйте")
    assert "SUP-000002" in russian
