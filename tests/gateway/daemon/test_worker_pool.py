"""WorkerPool: calls run in child interpreters; errors come back; a dead worker breaks the pool."""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from gateway.daemon.worker_pool import RemoteError, WorkerPool


def test_calls_run_in_another_process_and_return_their_results() -> None:
    pool = WorkerPool(2)
    try:
        assert pool.submit(os.getpid).result(timeout=60) != os.getpid()
        assert pool.submit(sorted, [3, 1, 2], reverse=True).result(timeout=60) == [3, 2, 1]
    finally:
        pool.shutdown()


def test_an_exception_in_a_worker_is_raised_to_the_caller_with_the_workers_traceback() -> None:
    pool = WorkerPool(1)
    try:
        with pytest.raises(ValueError, match="invalid literal") as raised:
            pool.submit(int, "not a number").result(timeout=60)
        assert isinstance(raised.value.__cause__, RemoteError)
        assert "ValueError" in str(raised.value.__cause__)
        # The worker survives its call's exception.
        assert pool.submit(abs, -2).result(timeout=60) == 2
    finally:
        pool.shutdown()


def test_a_worker_that_dies_breaks_the_pool_as_process_pool_executor_does() -> None:
    pool = WorkerPool(1)
    try:
        with pytest.raises(BrokenProcessPool):
            pool.submit(os._exit, 3).result(timeout=60)
        with pytest.raises(BrokenProcessPool):
            pool.submit(abs, -1)
    finally:
        pool.shutdown()


def test_the_event_loop_runs_calls_in_the_pool() -> None:
    async def main() -> list[int]:
        pool = WorkerPool(2)
        try:
            loop = asyncio.get_running_loop()
            return await asyncio.gather(*(loop.run_in_executor(pool, pow, 2, n)
                                          for n in range(50)))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    assert asyncio.run(main()) == [2 ** n for n in range(50)]


def test_shutdown_cancels_calls_no_worker_has_taken() -> None:
    pool = WorkerPool(1)
    started = pool.submit(time.sleep, 0.5)
    deadline = time.monotonic() + 60
    while not started.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting = [pool.submit(abs, -n) for n in range(20)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert started.result(timeout=60) is None  # the call a worker had taken completes
    assert all(future.cancelled() for future in waiting)
    with pytest.raises(RuntimeError):
        pool.submit(abs, -1)


def test_workers_run_at_the_niceness_they_are_given() -> None:
    """The daemon starts its workers at a lower priority than its own (`worker_niceness`)."""
    own = os.nice(0)
    pool = WorkerPool(1, niceness=5)
    try:
        assert pool.submit(os.nice, 0).result(timeout=60) == min(own + 5, 19)
    finally:
        pool.shutdown()
    plain = WorkerPool(1)
    try:
        assert plain.submit(os.nice, 0).result(timeout=60) == own
    finally:
        plain.shutdown()


def test_a_call_past_its_deadline_kills_its_worker_and_says_why() -> None:
    """The deadline is the backstop for a worker stuck where no in-process budget reaches."""
    pool = WorkerPool(1)
    try:
        started = time.monotonic()
        with pytest.raises(BrokenProcessPool) as broken:
            pool.submit_within(1, time.sleep, 120).result(timeout=60)
        assert time.monotonic() - started < 30
        assert isinstance(broken.value.__cause__, TimeoutError)
        assert "deadline of 1 s" in str(broken.value.__cause__)
    finally:
        pool.shutdown()


def test_calls_within_their_deadline_are_not_disturbed() -> None:
    pool = WorkerPool(1)
    try:
        assert [pool.submit_within(30, abs, -n).result(timeout=60) for n in range(5)] == [
            0, 1, 2, 3, 4]
    finally:
        pool.shutdown()
