"""A time and memory budget for parsing one input, enforced inside a worker process."""

from __future__ import annotations

import resource
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from types import FrameType

# What parse_many wraps each input's parse in: no budget (the CLI, tests, workers = 0).
Guard = Callable[[], AbstractContextManager[None]]
NO_BUDGET: Guard = nullcontext


class OverBudget(BaseException):
    """Parsing one input ran past its time budget. A BaseException, so that no parser's
    `except Exception` can swallow it and carry on."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise OverBudget in this (main) thread once SECONDS have passed inside the block."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise OverBudget(f"parsing took longer than its budget of {seconds:g} s "
                         "(intake.parse_budget_s)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _data_bytes() -> int:
    """This process's data segment now (VmData: what RLIMIT_DATA counts), 0 if unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


_memory_limited: list[int] = []


def limit_memory(budget_mb: int) -> None:
    """Let this worker process grow by at most BUDGET_MB beyond what it holds now, once per
    process (and again if the budget changes): past it, an allocation raises MemoryError,
    which fails the one input being parsed instead of the kernel killing the worker."""
    if _memory_limited == [budget_mb]:
        return
    base = _data_bytes()
    if not base:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    wanted = base + budget_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (wanted, hard))
    _memory_limited[:] = [budget_mb]
