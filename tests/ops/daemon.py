"""A real daemon subprocess under a stand-in supervisor: a NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]


class NotifyListener:
    """What systemd's end of sd_notify sees: one datagram per message, in order.

    A thread receives all the time, as systemd does: a datagram socket holds only a few
    unread messages, and a daemon that found it full (watchdog pings while a test waits on
    something else) would lose the next message, STOPPING=1 say."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        assert len(str(self.path)) < 100, "AF_UNIX paths are limited to 108 bytes"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.messages: list[list[str]] = []
        self.sock.settimeout(0.2)
        self._closed = False
        self._arrived = threading.Condition()
        self._receiver = threading.Thread(target=self._receive, daemon=True)
        self._receiver.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._arrived:
                self.messages.append(data.decode().split("\n"))
                self._arrived.notify_all()

    def wait_for(self, line: str, timeout: float = 60.0, after: int = 0) -> int:
        """Wait until a message (at index AFTER or later) holds LINE; its index."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for index in range(after, len(self.messages)):
                    if line in self.messages[index]:
                        return index
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {line!r} within {timeout} s: {self.messages}")
                self._arrived.wait(remaining)

    def close(self) -> None:
        self._closed = True
        self._receiver.join(5)
        self.sock.close()


def count(url: str, sql: str) -> int:
    """SQL's one number from the daemon's database; -1 while there is none to ask (the
    schema not created yet, the server restarting)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(sql)).scalar_one())
    except Exception:
        return -1
    finally:
        engine.dispose()


def start_daemon(config: Path, log: Path, env: dict[str, str] | None = None
                 ) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "gateway", "--config", str(config),
                                 "run"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)


@contextmanager
def supervised(config: Path, tmp_path: Path, watchdog_usec: int | None = None
               ) -> Iterator[tuple[subprocess.Popen[bytes], NotifyListener, Path]]:
    """Run the daemon with NOTIFY_SOCKET (and WATCHDOG_USEC); killed if a test leaves it."""
    listener = NotifyListener(tmp_path)
    log = tmp_path / "daemon.log"
    env = {"NOTIFY_SOCKET": str(listener.path)}
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    daemon = start_daemon(config, log, env)
    try:
        yield daemon, listener, log
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        listener.close()


def wait_until(condition: Callable[[], object], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_for_listening(port: int, daemon: subprocess.Popen[bytes], log: Path,
                       timeout: float = 120.0) -> None:
    """Wait until the daemon accepts connections on PORT, as long as a busy machine needs;
    if it exits or the deadline passes first, fail with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise AssertionError(f"the daemon exited with {daemon.returncode} before it "
                                 f"listened on {port}:\n{_log_text(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port} within {timeout} s:\n{_log_text(log)}")


def _log_text(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
