"""The intake door's write turns: urgent writers go before ordinary ones, threads included."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.store.write_turns import WriteTurns


def _take(turns: WriteTurns, urgent: bool, order: list[str], name: str,
          started: threading.Event) -> None:
    started.set()
    with turns.turn(urgent):
        order.append(name)


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_urgent_turn_goes_before_an_ordinary_writer_already_waiting(tmp_path: Path) -> None:
    # The daemon's outbox thread may already wait for the lock when the door arrives; the door
    # still goes first, as it does before the worker process.
    turns = WriteTurns(str(tmp_path / "intake.db"))
    order: list[str] = []
    with turns.turn(urgent=False):
        waiters = []
        for name, urgent in (("ordinary", False), ("urgent", True)):
            started = threading.Event()
            thread = threading.Thread(target=_take, args=(turns, urgent, order, name, started))
            thread.start()
            started.wait()
            if urgent:
                _until(turns.urgent_waiting, "the urgent writer never announced itself")
            else:
                # Not for correctness (an ordinary writer that comes later waits for the
                # announced urgent one all the same): lets it reach the kernel's queue first.
                time.sleep(0.2)
            waiters.append(thread)
        assert order == []
    for thread in waiters:
        thread.join(60)
    assert order == ["urgent", "ordinary"]


def test_a_nested_turn_reuses_the_lock_held_by_its_thread(tmp_path: Path) -> None:
    turns = WriteTurns(str(tmp_path / "intake.db"))
    with turns.turn(urgent=False), turns.turn(urgent=True):
        pass
    # Both released: another thread gets its turn at once.
    order: list[str] = []
    thread = threading.Thread(target=_take, args=(turns, True, order, "next", threading.Event()))
    thread.start()
    thread.join(60)
    assert order == ["next"]


def test_the_holder_of_a_turn_sees_an_urgent_writer_waiting(tmp_path: Path) -> None:
    # Processing asks between two registrations and ends its transaction early.
    turns = WriteTurns(str(tmp_path / "intake.db"))
    order: list[str] = []
    with turns.turn(urgent=False):
        assert not turns.urgent_waiting()
        started = threading.Event()
        thread = threading.Thread(target=_take, args=(turns, True, order, "urgent", started))
        thread.start()
        started.wait()
        _until(turns.urgent_waiting, "the urgent writer never announced itself")
        assert order == []
    thread.join(60)
    assert order == ["urgent"]
    assert not turns.urgent_waiting()
