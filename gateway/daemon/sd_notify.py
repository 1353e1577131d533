"""sd_notify: READY/STATUS/WATCHDOG/STOPPING datagrams to systemd's $NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog

log = structlog.get_logger("gateway.notify")


class Notifier:
    """Speaks the sd_notify protocol; without $NOTIFY_SOCKET every call does nothing.

    The protocol is one datagram of newline-separated KEY=VALUE lines; a libsystemd binding
    would add a C dependency for twenty lines of socket code.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace (leading NUL byte).
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = _watchdog_interval(env)
        self._socket: socket.socket | None = None
        if self.address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, *lines: str) -> bool:
        """Send one message; a supervisor that is away is logged, never fatal."""
        if self._socket is None:
            return False
        try:
            self._socket.sendto("\n".join(lines).encode("utf-8"), self.address)
        except OSError as error:
            log.warning("notify.failed", error=str(error), message=lines[0])
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets newer systemd match the reload to this message.
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    async def watchdog(self, status: Callable[[], str] | None = None) -> None:
        """Ping at half the watchdog interval for as long as this event loop runs; a hung
        loop stops the pings and systemd restarts the service. STATUS follows STATUS()."""
        if self.watchdog_s is None:
            return
        last = ""
        while True:
            lines = ["WATCHDOG=1"]
            if status is not None and (current := status()) != last:
                lines.append(f"STATUS={current}")
                last = current
            self.send(*lines)
            await asyncio.sleep(self.watchdog_s / 2)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """$WATCHDOG_USEC in seconds, when it is meant for this process ($WATCHDOG_PID)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
        pid = int(env.get("WATCHDOG_PID", "0") or 0)
    except ValueError:
        return None
    if usec <= 0 or (pid and pid != os.getpid()):
        return None
    return usec / 1_000_000


class _Running(Protocol):
    """What the status line reads from the gateway (kept structural: no import cycle)."""

    @property
    def mailboxes(self) -> Sequence[Any]: ...

    def reload(self) -> object: ...


def running_status(gateway: _Running) -> str:
    """The one-line STATUS systemctl shows: which mailboxes are connected."""
    if not gateway.mailboxes:
        return "running"
    up = sum(1 for mailbox in gateway.mailboxes if mailbox.connected)
    return f"running; mailboxes connected {up}/{len(gateway.mailboxes)}"


def reload_notified(gateway: _Running, notifier: Notifier) -> None:
    """SIGHUP: RELOADING=1, reload (a bad file keeps the old one), READY=1 again."""
    notifier.reloading()
    gateway.reload()
    notifier.ready(running_status(gateway))
