"""Turns at SQLite's one write lock: the intake door goes before processing, without sleeps."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WriteTurns:
    """Two lock files beside one SQLite database, shared by every process that writes to it.

    SQLite's own busy handler waits by sleeping (1, 2, 5 … 100 ms) and lets whoever asks first
    after a commit win, so a worker that registers inputs back to back starves the intake door,
    and every request waits for processing. Here a writer first waits its turn on a kernel lock
    (woken the moment the holder lets go), and an urgent writer (the door, whose commit someone
    is waiting on) announces itself on a second lock that ordinary writers let pass first.
    """

    def __init__(self, database_path: str) -> None:
        self._paths = (f"{database_path}-writer.lock", f"{database_path}-urgent.lock")
        self._pid = 0
        self._files: tuple[int, int] = (-1, -1)
        # Threads of this process queue here; the kernel lock is per process (open file).
        self._local = threading.RLock()
        self._depth = 0

    def _fds(self) -> tuple[int, int]:
        if self._pid != os.getpid():
            # A new process must open its own files, or it would share the parent's locks.
            self._files = (os.open(self._paths[0], os.O_RDWR | os.O_CREAT, 0o600),
                           os.open(self._paths[1], os.O_RDWR | os.O_CREAT, 0o600))
            self._pid = os.getpid()
        return self._files

    def __del__(self) -> None:
        if self._pid == os.getpid():
            for fd in self._files:
                os.close(fd)

    @contextmanager
    def turn(self, urgent: bool) -> Iterator[None]:
        """Hold the write turn for the block; URGENT turns go before waiting ordinary ones."""
        with self._local:
            if self._depth:
                # Already this thread's turn (a nested unit of work): the lock is held.
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            writer, announce = self._fds()
            if urgent:
                fcntl.flock(announce, fcntl.LOCK_EX)
            else:
                # Wait while an urgent writer is announced; never hold this while writing.
                fcntl.flock(announce, fcntl.LOCK_SH)
                fcntl.flock(announce, fcntl.LOCK_UN)
            try:
                fcntl.flock(writer, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(writer, fcntl.LOCK_UN)
            finally:
                if urgent:
                    fcntl.flock(announce, fcntl.LOCK_UN)
