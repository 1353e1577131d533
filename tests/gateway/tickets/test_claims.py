"""Inputs are claimed before they are parsed: two instances never take the same input."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.intake.door import IncomingInput, store_inputs
from gateway.tickets.claims import CLAIM_LEASE, claim_pending, instance_name, release_claims
from tests.conftest import START, make_mail
from tests.gateway.tickets.test_processing import _dispose_engines, setup

__all__ = ["_dispose_engines"]


def _stored(engine, clock, count: int) -> None:  # type: ignore[no-untyped-def]
    store_inputs(engine, [IncomingInput("email", make_mail(f"claim {n}")) for n in range(count)],
                 clock)


def test_instances_claiming_at_once_get_different_inputs(database_url: str,
                                                         tmp_path: Path) -> None:
    """Eight claimers asking at the same moment share 40 inputs without overlap; claimed
    inputs are not offered again until given back or their lease ends."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one instance, whose processor hands out each id once")
    engine, _, clock = setup(database_url, tmp_path)
    _stored(engine, clock, 40)
    start = threading.Barrier(8)
    taken: list[list[int]] = []

    def claimer(name: str) -> None:
        start.wait(30)
        taken.append(claim_pending(engine, 5, 0, START, name))

    threads = [threading.Thread(target=claimer, args=(f"host{n}:/state",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    everything = [i for ids in taken for i in ids]
    assert len(everything) == len(set(everything)) == 40
    assert claim_pending(engine, 50, 0, START, "other:/state") == []
    release_claims(engine, taken[0])
    assert claim_pending(engine, 50, 0, START, "other:/state") == sorted(taken[0])
    # A crashed instance's claims pass to the others when the lease ends.
    later = START + CLAIM_LEASE + timedelta(seconds=1)
    assert len(claim_pending(engine, 50, 0, later, "other:/state")) == 40


def test_a_restarted_instance_takes_back_its_own_claims_at_once(database_url: str,
                                                                 tmp_path: Path) -> None:
    """Killed with inputs claimed, an instance started again (same host and state directory)
    processes them at once; another instance waits for the lease."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one instance, whose processor hands out each id once")
    engine, _, clock = setup(database_url, tmp_path)
    _stored(engine, clock, 6)
    me = instance_name(tmp_path / "state")
    assert instance_name(tmp_path / "state") == me != instance_name(tmp_path / "other")
    first = claim_pending(engine, 6, 0, START, me)
    assert len(first) == 6
    assert claim_pending(engine, 6, 0, START, instance_name(tmp_path / "other")) == []
    assert claim_pending(engine, 6, 0, START + timedelta(seconds=1), me) == first


def test_sqlite_reads_the_pending_inputs_without_claiming(database_url: str,
                                                          tmp_path: Path) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL claims")
    engine, _, clock = setup(database_url, tmp_path)
    _stored(engine, clock, 3)
    first = claim_pending(engine, 10, 0, START)
    assert len(first) == 3 and claim_pending(engine, 10, 0, START) == first
