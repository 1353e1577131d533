"""Turns at SQLite's one write lock: the intake door goes before processing, without sleeps."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Files:
    """One thread's own open lock files, closed when the thread (and its local data) ends."""

    def __init__(self, paths: tuple[str, str]) -> None:
        self.pid = os.getpid()
        self.writer = os.open(paths[0], os.O_RDWR | os.O_CREAT, 0o600)
        self.announce = os.open(paths[1], os.O_RDWR | os.O_CREAT, 0o600)
        self.depth = 0

    def __del__(self) -> None:
        # After a fork the child's copies are closed too; the parent's locks are its own.
        os.close(self.writer)
        os.close(self.announce)


class WriteTurns:
    """Two lock files beside one SQLite database, shared by every thread that writes to it.

    SQLite's own busy handler waits by sleeping (1, 2, 5 … 100 ms) and lets whoever asks first
    after a commit win, so a worker that registers inputs back to back starves the intake door,
    and every request waits for processing. Here a writer first waits its turn on a kernel lock
    (woken the moment the holder lets go), and an urgent writer (the door, whose commit someone
    is waiting on) announces itself on a second lock that ordinary writers let pass first.

    Each thread opens the files itself: flock belongs to an open file, so threads of one process
    then wait for each other in the kernel exactly as processes do, and the door announces
    itself even while another thread of the daemon (the outbox) is waiting for its own turn.
    """

    def __init__(self, database_path: str) -> None:
        self._paths = (f"{database_path}-writer.lock", f"{database_path}-urgent.lock")
        self._local = threading.local()

    def _files(self) -> _Files:
        files: _Files | None = getattr(self._local, "files", None)
        if files is None or files.pid != os.getpid():
            # A new process must open its own files, or it would share the parent's locks.
            files = self._local.files = _Files(self._paths)
        return files

    @staticmethod
    def _ordinary_turn(files: _Files) -> None:
        """Take the writer lock when no urgent writer is announced, before or while waiting."""
        while True:
            # Wait while an urgent writer is announced; never hold this while writing.
            fcntl.flock(files.announce, fcntl.LOCK_SH)
            fcntl.flock(files.announce, fcntl.LOCK_UN)
            fcntl.flock(files.writer, fcntl.LOCK_EX)
            try:
                # Announced while we waited for the writer lock: the kernel may have woken us
                # first, so let the urgent writer have it and queue behind it again.
                fcntl.flock(files.announce, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                fcntl.flock(files.writer, fcntl.LOCK_UN)
                continue
            fcntl.flock(files.announce, fcntl.LOCK_UN)
            return

    @contextmanager
    def turn(self, urgent: bool) -> Iterator[None]:
        """Hold the write turn for the block; URGENT turns go before waiting ordinary ones."""
        files = self._files()
        if files.depth:
            # Already this thread's turn (a nested unit of work): the lock is held.
            files.depth += 1
            try:
                yield
            finally:
                files.depth -= 1
            return
        if not urgent:
            self._ordinary_turn(files)
            with self._holding(files):
                yield
            return
        fcntl.flock(files.announce, fcntl.LOCK_EX)
        try:
            fcntl.flock(files.writer, fcntl.LOCK_EX)
            with self._holding(files):
                yield
        finally:
            fcntl.flock(files.announce, fcntl.LOCK_UN)

    def urgent_waiting(self) -> bool:
        """Whether an urgent writer has announced itself: a holder doing several units of
        work in one turn commits what it has and lets it in."""
        files = self._files()
        try:
            fcntl.flock(files.announce, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(files.announce, fcntl.LOCK_UN)
        return False

    @staticmethod
    @contextmanager
    def _holding(files: _Files) -> Iterator[None]:
        """The block runs with the writer lock taken; let go of it afterwards."""
        files.depth = 1
        try:
            yield
        finally:
            files.depth = 0
            fcntl.flock(files.writer, fcntl.LOCK_UN)
