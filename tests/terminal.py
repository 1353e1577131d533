"""A command whose stdin, stdout and stderr are a pseudo-terminal, as in an operator's shell."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

# Colours and cursor moves of a console renderer; the text between them is what a reader sees.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """The terminal's side of a running command: everything the command wrote to it, as text."""

    def __init__(self, process: subprocess.Popen[bytes], master: int) -> None:
        self.process = process
        self._master = master
        self._written = bytearray()
        self._closed = False

    @property
    def text(self) -> str:
        """What was written so far, without escape sequences, with plain newlines."""
        decoded = self._written.decode("utf-8", errors="replace").replace("\r\n", "\n")
        return _ESCAPES.sub("", decoded)

    def read_until(self, wanted: str, timeout_s: float) -> None:
        """Read until WANTED has been written (it may be split over escape sequences)."""
        deadline = time.monotonic() + timeout_s
        while wanted not in self.text:
            if not self._read_some(deadline - time.monotonic()):
                raise AssertionError(f"{wanted!r} not written within {timeout_s} s:\n{self.text}")

    def finish(self, timeout_s: float) -> int:
        """Read everything until the command exits; its exit status."""
        deadline = time.monotonic() + timeout_s
        while self._read_some(deadline - time.monotonic()):
            pass
        return self.process.wait(max(0.0, deadline - time.monotonic()))

    def _read_some(self, timeout_s: float) -> bool:
        """Read what is there within TIMEOUT_S; False once the command closed the terminal."""
        if self._closed or timeout_s <= 0:
            return False
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        if not ready:
            return False
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: Linux's answer once every holder of the other side closed it
            chunk = b""
        if not chunk:
            self._closed = True
            return False
        self._written += chunk
        return True


@contextmanager
def in_terminal(command: Sequence[str], env: dict[str, str] | None = None,
                columns: int = 120) -> Iterator[Terminal]:
    """Run COMMAND on a new pseudo-terminal; killed if still running when the block ends."""
    master, child_side = os.openpty()
    # A real terminal has a size, and progress bars and console renderers ask for it.
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    try:
        process = subprocess.Popen(list(command), stdin=child_side, stdout=child_side,
                                   stderr=child_side, env=env, start_new_session=True)
    finally:
        # Only the command holds it now: when the command exits, reading says so (EIO).
        os.close(child_side)
    try:
        yield Terminal(process, master)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(master)
